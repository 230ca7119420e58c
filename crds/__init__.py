"""CustomResourceDefinitions; shipped in the wheel as `reranker_operator.crds`."""
