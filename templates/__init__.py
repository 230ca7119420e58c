"""Jinja2 templates of every child object; shipped in the wheel as `reranker_operator.templates`."""
