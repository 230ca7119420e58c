"""The score check's checks: pure functions from scored probes to `CheckResult`s.

Built-in checks (`BuiltinCheck`) need no labels and hold for every trained reranker; user
probes carry their own expectations; parity compares with the operator's record of a Ready
revision of the same model. Each result's message is one line naming the probe and its scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reranker_contract.score_check import (
    PARITY_TOLERANCES,
    PROBE_SCORE_TOLERANCE,
    BuiltinCheck,
    ScoreChange,
)
from reranker_server.score_check.probes import Probe

# Spread: the largest minus the smallest score of one built-in probe must exceed this. Its
# documents are an answer and text on unrelated topics: a trained reranker puts them tenths
# apart, and even a random-weight model differs by >1e-2 (tiny test models: >= 0.024). A
# model that ignores its input (lm_head rows of "yes" and "no" equal, a wrong score head, the
# 0.5-for-everything bug) gives exactly one value: only a float rounding's worth of spread.
MIN_SPREAD = 1e-4

# Consistent: how far a document's score alone may be from its score in its probe's batch
# (padding, the shared-prefix KV cache and the batch shape change only the reduction order).
# Measured on the tiny test models: <= 2.1e-7 in float32, <= 1.4e-3 in bfloat16. Broken
# batching (padding on the wrong side, a mask not applied, another row's token read) moves
# scores by tenths. Half precision keeps 8 (bf16) or 11 (fp16) mantissa bits, and two
# computations each a rounding error away from float32 may be twice that apart: on the bench's
# random Qwen3 (hidden 256, 4 layers) in bfloat16 the Hugging Face model's own forward scores a
# probe document 0.024 from its float32 score, and this server's prefix-cache batch and
# whole-sequence alone paths differ by up to 0.021 (eager) and 0.033 (compiled kernels), each
# path within 0.024 of float32 (AMD EPYC, 2026-12-05). 8/4-bit weights add their
# dequantization error.
CONSISTENT_TOLERANCES: dict[str, float] = {"float32": 1e-3, "half": 5e-2, "quantized": 5e-2}


@dataclass(frozen=True)
class CheckResult:
    """One entry of the report's `checks`."""

    name: str
    kind: str  # "builtin" | "probe" | "parity"
    passed: bool | None  # None: skipped
    message: str = ""
    skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "passed": self.passed,
            "skipped": self.skipped,
            "message": self.message,
        }


@dataclass(frozen=True)
class ScoredProbe:
    """A probe, its scores in one batch, and (built-in probes) each document scored alone."""

    probe: Probe
    scores: tuple[float, ...]
    alone: tuple[float, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.probe.name,
            "query": self.probe.query,
            "documents": list(self.probe.documents),
            "instruction": self.probe.instruction,
            "scores": list(self.scores),
        }


def fmt(scores: Sequence[float]) -> str:
    """Scores as the log and messages show them."""
    return "[" + ", ".join(f"{s:.6g}" for s in scores) + "]"


def consistent_tolerance(dtype: str, quantization: str) -> float:
    """CONSISTENT_TOLERANCES' entry for this precision."""
    if quantization not in ("", "none"):
        return CONSISTENT_TOLERANCES["quantized"]
    return CONSISTENT_TOLERANCES["float32" if dtype == "float32" else "half"]


def check_finite(scored: Sequence[ScoredProbe]) -> CheckResult:
    """Every score (batched and alone) is a finite number."""
    for sp in scored:
        if not all(math.isfinite(s) for s in (*sp.scores, *sp.alone)):
            message = f"probe {sp.probe.name} scored {fmt(sp.scores)}: not all finite"
            return CheckResult(BuiltinCheck.FINITE, "builtin", False, message)
    return CheckResult(BuiltinCheck.FINITE, "builtin", True, f"{_count(scored)} scores finite")


def check_spread(scored: Sequence[ScoredProbe]) -> CheckResult:
    """Each built-in probe's documents do not all get the same score (MIN_SPREAD)."""
    narrowest = math.inf
    for sp in scored:
        spread = max(sp.scores) - min(sp.scores)
        if not spread > MIN_SPREAD:
            message = (
                f"probe {sp.probe.name} scored {fmt(sp.scores)}: spread {spread:.3g} <= "
                f"{MIN_SPREAD:g}, the model scores unrelated documents alike"
            )
            return CheckResult(BuiltinCheck.SPREAD, "builtin", False, message)
        narrowest = min(narrowest, spread)
    return CheckResult(BuiltinCheck.SPREAD, "builtin", True, f"smallest spread {narrowest:.3g}")


def check_consistent(scored: Sequence[ScoredProbe], tolerance: float) -> CheckResult:
    """Each built-in document scored alone gets its score in its probe's batch (± tolerance)."""
    worst = 0.0
    for sp in scored:
        for i, (batched, alone) in enumerate(zip(sp.scores, sp.alone, strict=True)):
            deviation = abs(batched - alone)
            if not deviation <= tolerance:
                message = (
                    f"probe {sp.probe.name} document {i} scored {batched:.6g} in a batch "
                    f"{fmt(sp.scores)} but {alone:.6g} alone: {deviation:.3g} > {tolerance:g}"
                )
                return CheckResult(BuiltinCheck.CONSISTENT, "builtin", False, message)
            worst = max(worst, deviation)
    message = f"alone vs batched within {worst:.3g} (tolerance {tolerance:g})"
    return CheckResult(BuiltinCheck.CONSISTENT, "builtin", True, message)


def check_relevance(scored: Sequence[ScoredProbe]) -> CheckResult:
    """In each built-in probe the answering document scores above every unrelated one."""
    for sp in scored:
        answer = sp.probe.answer or 0
        others = [s for i, s in enumerate(sp.scores) if i != answer]
        if not sp.scores[answer] > max(others):
            message = (
                f"probe {sp.probe.name}: the answer (document {answer}) scored "
                f"{sp.scores[answer]:.6g}, not above the unrelated documents {fmt(sp.scores)}"
            )
            return CheckResult(BuiltinCheck.RELEVANCE, "builtin", False, message)
    message = f"the answer ranks first in {len(scored)} probes"
    return CheckResult(BuiltinCheck.RELEVANCE, "builtin", True, message)


def check_expectations(sp: ScoredProbe) -> CheckResult:
    """A user probe's expectations: top document, pairwise order, scores within tolerance."""
    expect, scores, name = sp.probe.expect, sp.scores, sp.probe.name
    problems: list[str] = []
    if expect.top is not None:
        if not all(scores[expect.top] > s for i, s in enumerate(scores) if i != expect.top):
            problems.append(f"document {expect.top} is not ranked first")
    for better, worse in zip(expect.order, expect.order[1:]):
        if not scores[better] > scores[worse]:
            problems.append(f"document {better} is not above document {worse}")
            break
    if expect.scores:
        tolerance = PROBE_SCORE_TOLERANCE if expect.tolerance is None else expect.tolerance
        for i, (got, want) in enumerate(zip(scores, expect.scores, strict=True)):
            if not abs(got - want) <= tolerance:
                expected = f"expected {want:g} ± {tolerance:g}"
                problems.append(f"document {i} scored {got:.6g}, {expected}")
                break
    if problems:
        message = f"probe {name} scored {fmt(scores)}: {'; '.join(problems)}"
        return CheckResult(name, "probe", False, message)
    return CheckResult(name, "probe", True, f"scored {fmt(scores)} as expected")


def parse_tolerance_overrides(text: str | None) -> dict[ScoreChange, float]:
    """SCORE_PARITY_TOLERANCES' JSON {change kind: tolerance}; ValueError naming the key."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object {change kind: tolerance}")
    kinds = {k.value: k for k in ScoreChange}
    overrides: dict[ScoreChange, float] = {}
    for key, value in data.items():
        if key not in kinds:
            raise ValueError(f"{key!r} is not a change kind ({', '.join(kinds)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(f"{key}: must be a number >= 0, got {value!r}")
        overrides[kinds[key]] = float(value)
    return overrides


# which setup field changes which kind (the report's and the record's `setup`)
SETUP_CHANGES: dict[str, ScoreChange] = {
    "engine": ScoreChange.ENGINE,
    "image": ScoreChange.IMAGE,
    "dtype": ScoreChange.DTYPE,
    "quantization": ScoreChange.QUANTIZATION,
    "attention": ScoreChange.ATTENTION,
    "device": ScoreChange.DEVICE,
}


# setup fields compared only where both sides know them (the front of vLLM cannot see the
# processor vLLM runs on)
COMPARED_WHEN_KNOWN = frozenset({"device"})


def setup_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[ScoreChange]:
    """The change kinds between the record's setup and this pod's ([NONE] when nothing)."""
    changed = [
        kind
        for key, kind in SETUP_CHANGES.items()
        if recorded.get(key) != current.get(key)
        and not (key in COMPARED_WHEN_KNOWN and None in (recorded.get(key), current.get(key)))
    ]
    return changed or [ScoreChange.NONE]


def parity_tolerance(
    changes: Sequence[ScoreChange], overrides: Mapping[ScoreChange, float]
) -> float:
    """The largest tolerance of the changed kinds (an override replaces a kind's default)."""
    return max({**PARITY_TOLERANCES, **overrides}[kind] for kind in changes)


@dataclass(frozen=True)
class Parity:
    """Parity's result, with what the report and the metrics show."""

    result: CheckResult
    changes: tuple[ScoreChange, ...] = ()
    tolerance: float | None = None
    deviation: float | None = None  # the largest |this pod - record| over the compared probes


def _probe_key(p: Mapping[str, Any]) -> tuple:
    return (p.get("name"), p.get("query"), tuple(p.get("documents") or ()), p.get("instruction"))


def check_parity(
    record: Mapping[str, Any],
    identity: Mapping[str, Any],
    setup: Mapping[str, Any],
    scored: Sequence[ScoredProbe],
    overrides: Mapping[ScoreChange, float],
) -> Parity:
    """This pod's scores against the record's, probe by probe (same name, query, documents and
    instruction). A record of another model or revision is not compared (skipped, said so)."""
    recorded_identity = record.get("identity") or {}
    if (recorded_identity.get("model"), recorded_identity.get("revision")) != (
        identity.get("model"),
        identity.get("revision"),
    ):
        why = (
            f"the record is of model {recorded_identity.get('model')!r} revision "
            f"{recorded_identity.get('revision')!r}, this pod serves {identity.get('model')!r} "
            f"revision {identity.get('revision')!r}: not compared"
        )
        return Parity(CheckResult("parity", "parity", None, why, skipped=why))
    changes = setup_changes(record.get("setup") or {}, setup)
    tolerance = parity_tolerance(changes, overrides)
    kinds = ", ".join(changes)
    recorded = {_probe_key(p): p for p in record.get("probes") or () if isinstance(p, dict)}
    worst, compared = 0.0, 0
    failure: str | None = None
    for sp in scored:
        entry = recorded.get(_probe_key(sp.as_json()))
        if entry is None:
            continue
        compared += 1
        before = [float(s) for s in entry.get("scores") or ()]
        if len(before) != len(sp.scores):
            failure = failure or f"probe {sp.probe.name}: the record has {len(before)} scores"
            continue
        deviation = max(abs(a - b) for a, b in zip(sp.scores, before))
        worst = max(worst, deviation)
        if failure is None and not deviation <= tolerance:
            failure = (
                f"probe {sp.probe.name} scored {fmt(sp.scores)}, the record {fmt(before)}: "
                f"{deviation:.3g} > {tolerance:g} (changes: {kinds})"
            )
    if compared == 0:
        why = "the record holds none of this pod's probes: not compared"
        return Parity(CheckResult("parity", "parity", None, why, skipped=why), tuple(changes))
    if failure is not None:
        result = CheckResult("parity", "parity", False, failure)
    else:
        message = (
            f"{compared} probes within {worst:.3g} of the record "
            f"(tolerance {tolerance:g}, changes: {kinds})"
        )
        result = CheckResult("parity", "parity", True, message)
    return Parity(result, tuple(changes), tolerance, worst)


def _count(scored: Sequence[ScoredProbe]) -> int:
    return sum(len(sp.scores) + len(sp.alone) for sp in scored)
