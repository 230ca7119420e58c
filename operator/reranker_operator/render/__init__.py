"""Rendering: a RerankerService to its child manifests, as data through jinja2 templates."""
