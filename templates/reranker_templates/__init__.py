"""Jinja2 templates of every child object (one per kind); package data of the wheel."""
