"""reranker_server: the bundled reranker inference server (HTTP layer -> engine -> model backend)."""

__version__ = "0.1.0"
