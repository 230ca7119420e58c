"""The RerankerService API: spec models, field types, CEL rules, checks, the CRD."""
