"""reranker_operator: the kopf operator that reconciles RerankerService resources."""

__version__ = "0.1.0"
