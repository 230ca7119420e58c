"""checkov (a field scanner's 1,000+ Kubernetes policies, locked in constraints/checkov-lock.txt)
over every example's rendered children and the install bundle: no failure but the skipped ones in
checkov-skips.yaml, each with its why, and no skip that no longer matches a failure.

Skips (with the reason) where `make checkov-venv` has not run, or without kubectl."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import REPO, kustomize_build

from render_helpers import example_crs
from reranker_devtools import checkov, peers
from reranker_operator.render.manifests import render_children

SKIPS_FILE = Path(__file__).with_name("checkov-skips.yaml")
INSTALL_BUNDLE = "install-bundle.yaml"


def load_skips() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(SKIPS_FILE.read_text())


def skipped_by(finding: checkov.Finding, skips: dict[str, dict[str, Any]]) -> str | None:
    """The resource pattern of the skip that covers `finding`, or None."""
    entry = skips.get(finding.check_id)
    if entry is None:
        return None
    return next((p for p in entry["resources"] if fnmatch.fnmatchcase(finding.resource, p)), None)


def write_manifests(directory: Path) -> list[str]:
    """Every example's children (one file per example) and the install bundle; the file names."""
    names = []
    for name, cr in example_crs().items():
        (directory / name).write_text(yaml.safe_dump_all(render_children(cr), sort_keys=False))
        names.append(name)
    (directory / INSTALL_BUNDLE).write_text(yaml.safe_dump_all(kustomize_build(), sort_keys=False))
    return [*names, INSTALL_BUNDLE]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> list[checkov.Finding]:
    try:
        checkov.executable()
    except peers.PeerUnavailable as exc:
        pytest.skip(f"checkov is not installed: {exc}")
    directory = tmp_path_factory.mktemp("checkov")
    names = write_manifests(directory)
    findings, summary = checkov.scan(directory)
    assert summary["checkov_version"] == checkov_version()
    assert summary["resource_count"] > 5 * len(names), summary  # every file was read
    assert summary["passed"] > 5 * summary["resource_count"], summary  # the policies ran
    return findings


def checkov_version() -> str:
    lock = (REPO / "constraints" / "checkov-lock.txt").read_text()
    [pin] = [ln for ln in lock.splitlines() if ln.startswith("checkov==")]
    return pin.split("==", 1)[1]


def test_no_failure_but_the_documented_skips(scan: list[checkov.Finding]) -> None:
    skips = load_skips()
    failures = [f for f in scan if skipped_by(f, skips) is None]
    assert not failures, (
        "checkov fails on these: fix them, or add the policy and the resource to "
        f"{SKIPS_FILE.relative_to(REPO)} with why it does not apply:\n"
        + "\n".join(sorted(map(str, failures)))
    )


def test_every_skip_still_matches_a_failure(scan: list[checkov.Finding]) -> None:
    """A skip whose policy now passes (a fix, a resource gone) is removed, not kept in reserve."""
    stale = [
        f"{check_id} {pattern}"
        for check_id, entry in load_skips().items()
        for pattern in entry["resources"]
        if not any(
            f.check_id == check_id and fnmatch.fnmatchcase(f.resource, pattern) for f in scan
        )
    ]
    assert not stale, f"stale entries in {SKIPS_FILE.name} (nothing fails there): {stale}"


def test_every_skip_says_why_and_where() -> None:
    for check_id, entry in load_skips().items():
        assert check_id.startswith(("CKV_K8S_", "CKV2_K8S_")), check_id
        assert set(entry) == {"name", "resources", "why"}, f"{check_id}: {sorted(entry)}"
        assert len(entry["why"].split()) >= 12, f"{check_id}: say why it does not apply"
        assert entry["resources"], f"{check_id}: name the resources it is skipped on"
        for pattern in entry["resources"]:
            kind, _, rest = pattern.partition(".")
            assert kind and rest and pattern.strip("*."), f"{check_id}: too broad: {pattern!r}"


def test_skip_matching_is_per_resource() -> None:
    """A skip covers its resources only: the same policy on another resource is a failure."""
    op = "Deployment.reranker-system.reranker-operator"
    skips = {"CKV_K8S_38": {"resources": [op]}}
    operator = checkov.Finding("CKV_K8S_38", "token", op, INSTALL_BUNDLE)
    server = checkov.Finding("CKV_K8S_38", "token", "Deployment.default.public-reranker", "x.yaml")
    other = checkov.Finding("CKV_K8S_40", "uid", op, INSTALL_BUNDLE)
    assert skipped_by(operator, skips) is not None
    assert skipped_by(server, skips) is None and skipped_by(other, skips) is None
