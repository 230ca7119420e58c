"""`reranker-operator loadtest`: size a reranker deployment the way its load is shaped.

A closed-loop load of rerank requests (concurrency, documents per request and their lengths,
query and instruction sizes, API shape) against one server or Service, with figures per pair and
token, the server's own queue time read from its `/metrics`, and `--target-p95` to find the load
one replica sustains and the replicas and `spec.autoscaling` values a peak needs.
"""
