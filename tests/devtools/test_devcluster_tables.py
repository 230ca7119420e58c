"""meta.k8s.io Tables from the emulator: the JSONPath subset, ages, and `kubectl get` printing
the CRD's printer columns (and Name/Age for other kinds)."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from operator_helpers import EXAMPLES
from reranker_devtools.devcluster import RERANKERS, DevCluster
from reranker_devtools.devcluster.tables import (
    JsonPathError,
    evaluate,
    human_duration,
    printer_columns,
    render_table,
    table_version,
)

NS = "default"
CRD = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "crds" / "rerankerservices.yaml").read_text()
)
OBJ = {
    "metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"model": {"name": "m"}, "gpus": 2, "on": False},
    "status": {
        "conditions": [
            {"type": "Progressing", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "Available"},
        ]
    },
}


def test_jsonpath_subset() -> None:
    assert evaluate(".spec.model.name", OBJ) == ["m"]
    assert evaluate('.status.conditions[?(@.type=="Ready")].status', OBJ) == ["True"]
    assert evaluate(".status.conditions[?(@.type=='Progressing')].status", OBJ) == ["False"]
    assert evaluate(".status.conditions[1].reason", OBJ) == ["Available"]
    assert evaluate(".status.conditions[-1].type", OBJ) == ["Ready"]
    assert evaluate(".status.conditions[*].type", OBJ) == ["Progressing", "Ready"]
    assert evaluate(".status.missing.deeper", OBJ) == []
    assert evaluate(".status.conditions[5]", OBJ) == []
    with pytest.raises(JsonPathError, match="jsonPath"):
        evaluate(".spec..model", OBJ)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (130, "2m10s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_ages_print_like_kubernetes(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_accept_header_negotiation() -> None:
    kubectl = (
        "application/json;as=Table;v=v1;g=meta.k8s.io,"
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    )
    assert table_version(kubectl) == "v1"
    assert table_version("application/json;as=Table;v=v1beta1;g=meta.k8s.io") == "v1beta1"
    assert table_version("application/json") is None and table_version(None) is None


def test_table_cells_are_typed_per_column() -> None:
    columns = printer_columns(
        [
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
            {"name": "GPUs", "type": "integer", "jsonPath": ".spec.gpus", "priority": 1},
            {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]
    )
    now = datetime.datetime(2026, 1, 1, 0, 5, 10, tzinfo=datetime.UTC)
    table = render_table([OBJ], columns, resource_version="7", now=now)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Model",
        "GPUs",
        "On",
        "Missing",
        "Age",
    ]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 1, 0, 0, 0]
    assert table["rows"][0]["cells"] == ["x", "m", 2, False, None, "5m10s"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "x"
    assert (table["apiVersion"], table["kind"]) == ("meta.k8s.io/v1", "Table")
    default = render_table([OBJ], printer_columns(None), now=now)
    assert [c["name"] for c in default["columnDefinitions"]] == ["Name", "Age"]
    with pytest.raises(JsonPathError, match="jsonPath"):
        printer_columns([{"name": "Bad"}])


def _kubectl(kubeconfig: Path, *args: str) -> str:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    done = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
    assert "Warning" not in done.stderr, done.stderr
    return done.stdout


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_get_prints_the_printer_columns(tmp_path: Path) -> None:
    cr = yaml.safe_load((EXAMPLES / "qwen3-reranker-0.6b.yaml").read_text())
    name = cr["metadata"]["name"]
    with DevCluster() as dev:
        kubeconfig = dev.write_kubeconfig(tmp_path / "kubeconfig")
        dev.create(cr, NS)
        dev.patch(
            RERANKERS,
            NS,
            name,
            {
                "status": {
                    "replicaSummary": "1/2",
                    "endpoint": f"http://{name}.{NS}.svc:8080",
                    "conditions": [{"type": "Ready", "status": "False", "reason": "RollingOut"}],
                }
            },
            subresource="status",
        )
        [versions] = [v for v in CRD["spec"]["versions"] if v["served"]]
        columns = versions["additionalPrinterColumns"]
        main = [c["name"].upper() for c in columns if not c.get("priority")]
        wide = [c["name"].upper() for c in columns]

        header, row = _rows(_kubectl(kubeconfig, "get", "rerankers"))
        assert header == ["NAME", *main]
        assert {"MODEL", "READY", "ENDPOINT", "REPLICAS", "AGE"} <= set(header)
        cells = dict(zip(header, row))
        assert cells["NAME"] == name and cells["MODEL"] == cr["spec"]["model"]["name"]
        assert cells["REPLICAS"] == "1/2" and cells["READY"] == "False"
        assert cells["ENDPOINT"] == f"http://{name}.{NS}.svc:8080"
        assert cells["AGE"].endswith(("s", "m"))

        header, row = _rows(_kubectl(kubeconfig, "get", "rerankers", "-o", "wide"))
        assert header == ["NAME", *wide] and len(wide) > len(main)
        cells = dict(zip(header, row))
        assert cells["REASON"] == "RollingOut"
        assert cells["ENGINE"] == "transformers"  # the CRD's default, filled in on create
        assert cells["DTYPE"] == str(cr["spec"]["model"].get("dtype", "<none>"))

        header, row = _rows(_kubectl(kubeconfig, "get", "rerankers", "-A"))
        assert header[:2] == ["NAMESPACE", "NAME"] and row[:2] == [NS, name]

        # Other kinds: Name and Age.
        dev.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}, NS)
        header, row = _rows(_kubectl(kubeconfig, "get", "configmaps", "cm"))
        assert header == ["NAME", "AGE"] and row[0] == "cm"


def test_discovery_prefers_the_newest_stable_version() -> None:
    from reranker_devtools.devcluster.emulator import version_priority

    versions = ["v1alpha1", "v1", "v2beta2", "v2", "v1beta1", "v2beta1", "v10", "vfoo"]
    assert sorted(versions, key=version_priority) == [
        "v10",
        "v2",
        "v1",
        "v2beta2",
        "v2beta1",
        "v1beta1",
        "v1alpha1",
        "vfoo",
    ]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_lists_autoscaling_v2_objects(tmp_path: Path) -> None:
    """kubectl asks for a group's preferred version; objects the operator stores as
    autoscaling/v2 must be found there (the emulator keeps versions apart)."""
    import json
    import urllib.request

    with DevCluster() as dev:
        kubeconfig = dev.write_kubeconfig(tmp_path / "kubeconfig")
        with urllib.request.urlopen(f"{dev.url}/apis", timeout=10) as rsp:
            groups = {g["name"]: g for g in json.load(rsp)["groups"]}
        assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
        dev.create(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "h"},
                "spec": {
                    "maxReplicas": 2,
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                },
            },
            NS,
        )
        out = _kubectl(kubeconfig, "get", "deployments,horizontalpodautoscalers", "-o", "name")
        assert out.split() == ["horizontalpodautoscaler.autoscaling/h"]
