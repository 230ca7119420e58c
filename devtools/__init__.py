"""Development tooling of reranker-operator, never shipped in an image or a `[server]` /
`[operator]` install: the Kubernetes API emulator (`devcluster`), `make demo` (`demo`), tiny
offline models (`tiny_models`), the dependency drift report (`drift`), and the generated files
(`generate`): the CRD from the spec models (`crdgen`, `crdfacts`) and its reference (`docgen`)."""
