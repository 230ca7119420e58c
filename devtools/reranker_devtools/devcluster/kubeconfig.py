"""A kubeconfig pointing at the dev cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class KubeconfigFile:
    """A kubeconfig for one plain-HTTP API server (kubectl, the kubernetes client, kopf)."""

    def __init__(self, server: str, namespace: str = "default") -> None:
        self.server = server
        self.namespace = namespace

    def as_dict(self) -> dict[str, Any]:
        """The kubeconfig document."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "devcluster",
            "clusters": [{"name": "devcluster", "cluster": {"server": self.server}}],
            "users": [{"name": "devcluster", "user": {"token": "devcluster"}}],
            "contexts": [
                {
                    "name": "devcluster",
                    "context": {
                        "cluster": "devcluster",
                        "user": "devcluster",
                        "namespace": self.namespace,
                    },
                }
            ],
            "preferences": {},
        }

    def write(self, path: str | Path) -> Path:
        """Write it to `path`; returns the path."""
        path = Path(path)
        path.write_text(yaml.safe_dump(self.as_dict(), sort_keys=False))
        return path
