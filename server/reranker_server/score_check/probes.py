"""The probes the score check scores: the built-in set, and the resource's own from a file.

A built-in probe is a plain-English question with one document that answers it and unrelated
documents about other topics, so any trained reranker ranks the answer first by a wide margin.
User probes come from SCORE_PROBES_FILE (`reranker_contract.score_check`'s Probe shape); a
malformed file is reported by the check (failed, the field named), never by a crash: the
operator reads the report and the old pods keep serving.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_contract.score_check import ScoreCheckEnv

BUILTIN_PREFIX = "builtin-"


@dataclass(frozen=True)
class Expectation:
    """What a user probe expects: the top document, a best-to-worst order, scores."""

    top: int | None = None
    order: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    tolerance: float | None = None  # None: the contract's PROBE_SCORE_TOLERANCE


@dataclass(frozen=True)
class Probe:
    """A query and its documents; `answer` (built-in probes) is the document that answers it."""

    name: str
    query: str
    documents: tuple[str, ...]
    instruction: str | None = None
    answer: int | None = None
    expect: Expectation = field(default_factory=Expectation)

    @property
    def builtin(self) -> bool:
        return self.answer is not None


def _builtin(name: str, query: str, answer: str, *unrelated: str) -> Probe:
    return Probe(BUILTIN_PREFIX + name, query, (answer, *unrelated), answer=0)


BUILTIN_PROBES: tuple[Probe, ...] = (
    _builtin(
        "capital-france",
        "What is the capital of France?",
        "Paris is the capital and largest city of France.",
        "Bananas are rich in potassium and make a quick snack.",
        "The offside rule in football applies only in the opponent's half.",
        "To reset the router, hold the power button for ten seconds.",
    ),
    _builtin(
        "boiling-point",
        "At what temperature does water boil at sea level?",
        "At sea level, water boils at 100 degrees Celsius (212 degrees Fahrenheit).",
        "The Great Wall of China stretches across northern China.",
        "Shakespeare wrote Hamlet around the year 1600.",
    ),
    _builtin(
        "photosynthesis",
        "How do plants make their food?",
        "Plants make their food by photosynthesis, turning sunlight, water and carbon dioxide "
        "into sugar and oxygen.",
        "The stock market closed higher on Friday after a week of losses.",
        "A violin has four strings tuned in perfect fifths.",
    ),
)


class ProbeFileError(ValueError):
    """The probe file cannot be used; `field` names the offending JSON field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{source}: {field}: {problem}")


def _index(value: Any, n: int, where: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise ProbeFileError(source, where, f"must be a document index 0..{n - 1}, got {value!r}")
    return value


def _expectation(raw: Any, n: int, where: str, source: str) -> Expectation:
    if raw is None:
        return Expectation()
    if not isinstance(raw, dict):
        raise ProbeFileError(source, where, f"must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"top", "order", "scores", "tolerance"})
    if unknown:
        raise ProbeFileError(source, f"{where}.{unknown[0]}", "unknown field")
    top = None if raw.get("top") is None else _index(raw["top"], n, f"{where}.top", source)
    order_raw = raw.get("order", [])
    if not isinstance(order_raw, list):
        raise ProbeFileError(source, f"{where}.order", "must be a list of document indexes")
    order = tuple(_index(v, n, f"{where}.order[{i}]", source) for i, v in enumerate(order_raw))
    if len(set(order)) != len(order):
        raise ProbeFileError(source, f"{where}.order", f"repeats an index: {list(order)}")
    if len(order) == 1:
        raise ProbeFileError(source, f"{where}.order", "needs at least two indexes to compare")
    scores_raw = raw.get("scores", [])
    if not isinstance(scores_raw, list) or (scores_raw and len(scores_raw) != n):
        raise ProbeFileError(source, f"{where}.scores", f"must be a list of {n} numbers")
    scores: list[float] = []
    for i, v in enumerate(scores_raw):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ProbeFileError(source, f"{where}.scores[{i}]", f"must be in [0, 1], got {v!r}")
        scores.append(float(v))
    tolerance = raw.get("tolerance")
    if tolerance is not None and (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not (math.isfinite(tolerance) and tolerance >= 0)
    ):
        raise ProbeFileError(source, f"{where}.tolerance", f"must be >= 0, got {tolerance!r}")
    if top is None and not order and not scores:
        raise ProbeFileError(source, where, "expects nothing: give top, order or scores")
    return Expectation(top, order, tuple(scores), None if tolerance is None else float(tolerance))


def _text(raw: dict[str, Any], key: str, where: str, source: str, *, optional: bool = False):
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProbeFileError(source, f"{where}.{key}", f"must be a non-empty string, got {value!r}")
    return value


def parse_probes(data: Any, source: str) -> tuple[Probe, ...]:
    """Probes from the JSON of a probe file (a list of the contract's Probe objects)."""
    if not isinstance(data, list):
        raise ProbeFileError(source, "(top level)", "must be a JSON list of probes")
    probes: list[Probe] = []
    names: set[str] = set()
    for i, raw in enumerate(data):
        where = f"[{i}]"
        if not isinstance(raw, dict):
            raise ProbeFileError(source, where, "must be an object")
        unknown = sorted(set(raw) - {"name", "query", "documents", "instruction", "expect"})
        if unknown:
            raise ProbeFileError(source, f"{where}.{unknown[0]}", "unknown field")
        name = _text(raw, "name", where, source)
        if name in names or name.startswith(BUILTIN_PREFIX):
            problem = "is used twice" if name in names else f"must not start with {BUILTIN_PREFIX}"
            raise ProbeFileError(source, f"{where}.name", f"{name!r} {problem}")
        names.add(name)
        where = f"[{i}] ({name})"
        query = _text(raw, "query", where, source)
        docs = raw.get("documents")
        if not isinstance(docs, list) or len(docs) < 2:
            raise ProbeFileError(source, f"{where}.documents", "must list at least two documents")
        for j, doc in enumerate(docs):
            if not isinstance(doc, str) or not doc.strip():
                raise ProbeFileError(
                    source, f"{where}.documents[{j}]", "must be a non-empty string"
                )
        instruction = _text(raw, "instruction", where, source, optional=True)
        expect = _expectation(raw.get("expect"), len(docs), f"{where}.expect", source)
        probes.append(Probe(name, query, tuple(docs), instruction, expect=expect))
    return tuple(probes)


def load_probe_files(paths: Sequence[str]) -> tuple[Probe, ...]:
    """The probes of every file SCORE_PROBES_FILE lists (the resource's inline probes and its
    probes ConfigMap); a name used in two files is refused like one used twice in one."""
    probes: list[Probe] = []
    seen: dict[str, str] = {}
    for path in paths:
        for probe in load_probe_file(path):
            if probe.name in seen:
                raise ProbeFileError(
                    f"{ScoreCheckEnv.SCORE_PROBES_FILE} {path}",
                    f"({probe.name}).name",
                    f"{probe.name!r} is used twice (also in {seen[probe.name]})",
                )
            seen[probe.name] = path
            probes.append(probe)
    return tuple(probes)


def load_probe_file(path: str) -> tuple[Probe, ...]:
    """The probes of SCORE_PROBES_FILE; ProbeFileError names the file and the field."""
    source = f"{ScoreCheckEnv.SCORE_PROBES_FILE} {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProbeFileError(source, "(file)", f"cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"(line {exc.lineno}, column {exc.colno})"
        raise ProbeFileError(source, where, f"not JSON: {exc.msg}") from None
    return parse_probes(data, source)
