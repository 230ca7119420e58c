"""`reranker-operator diagnose NAME`: the deployment guides' bottleneck method as a command.

It reads one RerankerService's server metrics (from Prometheus, or by scraping a server's
`/metrics` twice a few seconds apart), computes what the method looks at (where the time goes:
queue, model, tokenization; how full and how padded the batches are; the request pattern) and
prints a verdict with its numbers and the remedy in the resource's terms, or "no bottleneck".
"""
