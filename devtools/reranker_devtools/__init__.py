"""Development tooling of reranker-operator, never shipped in an image or a `[server]` /
`[operator]` install: the Kubernetes API emulator (`devcluster`), `make demo` (`demo`), tiny
offline models (`tiny_models`), the dependency drift report (`drift`), and the generated files
(`generate`): the CRD (built by reranker_operator.api.crdgen) and its reference (`docgen`)."""

from pathlib import Path

# The checkout these tools run from (an editable install): examples/, crds/, build/ live there.
REPO = Path(__file__).resolve().parents[2]
