"""`engine: vllm`: the `vllm serve` container, its flags, score template and monitoring."""
