"""The operator renders the bytes tests/golden/ recorded: every example under both engines, and
the CRD. Recorded before the layout change (tests/golden/record.py says how to re-record)."""

from __future__ import annotations

import pytest

from golden import record

CASES = dict(record.cases())


def test_every_recorded_case_is_still_rendered() -> None:
    recorded = {p.name for p in (record.GOLDEN / "render").glob("*.yaml")}
    assert recorded == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_is_byte_identical(name: str) -> None:
    assert CASES[name] == (record.GOLDEN / "render" / name).read_text()


def test_crd_is_byte_identical() -> None:
    text = record.crd_text()
    assert text == (record.GOLDEN / "crd.yaml").read_text()
    assert text == (record.ROOT / "crds" / "rerankerservices.yaml").read_text()
