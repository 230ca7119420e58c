"""Development tooling of reranker-operator, never shipped in an image or a `[server]` /
`[operator]` install: the Kubernetes API emulator (`devcluster`), `make demo` (`demo`), tiny
offline models (`tiny_models`) and the dependency drift report (`drift`)."""
