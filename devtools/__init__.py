"""Development tooling of reranker-operator (never shipped in an image)."""
