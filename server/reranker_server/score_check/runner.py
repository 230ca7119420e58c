"""Run the score check: score every probe through the engine that serves requests, then check.

Probes go through the real request path (the engine's scheduler, batching, the shared-prefix
KV cache and the backend), never from the score cache: a document "scored alone" is computed
again, so `consistent` compares two real computations.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reranker_contract.score_check import BuiltinCheck, CheckState, ScoreCheckEnv
from reranker_server.contracts import RerankEngine, RerankInput, RerankOutput
from reranker_server.engine.scheduler import NonFiniteScoresError
from reranker_server.score_check.checks import (
    CheckResult,
    Parity,
    ScoredProbe,
    check_consistent,
    check_expectations,
    check_finite,
    check_parity,
    check_relevance,
    check_spread,
    consistent_tolerance,
)
from reranker_server.score_check.options import ScoreCheckOptions
from reranker_server.score_check.probes import (
    BUILTIN_PROBES,
    Probe,
    ProbeFileError,
    load_probe_files,
)
from reranker_server.score_check.report import ScoreCheckReport

log = logging.getLogger("reranker_server.score_check")

NOT_SELECTED = f"not in {ScoreCheckEnv.SCORE_CHECK_BUILTINS}"


class ProbeScoringError(Exception):
    """A probe could not be scored (the engine refused it); names the probe."""

    def __init__(self, probe: Probe, exc: BaseException) -> None:
        self.probe = probe
        self.cause = exc
        super().__init__(f"probe {probe.name} could not be scored: {type(exc).__name__}: {exc}")


def _scorer(engine: RerankEngine) -> Callable[[RerankInput], Any]:
    """The engine's cache-bypassing path (BatchingEngine.rerank_fresh); an engine without a
    score cache scores every request afresh through `rerank`."""
    return getattr(engine, "rerank_fresh", None) or engine.rerank


async def _score(engine: RerankEngine, probe: Probe, documents: Sequence[str]) -> list[float]:
    inp = RerankInput(query=probe.query, documents=list(documents), instruction=probe.instruction)
    try:
        output: RerankOutput = await _scorer(engine)(inp)
    except Exception as exc:  # noqa: BLE001 - any refusal fails the check, naming the probe
        raise ProbeScoringError(probe, exc) from exc
    return list(output.scores)


async def score_probes(
    engine: RerankEngine, probes: Sequence[Probe], *, alone: bool
) -> list[ScoredProbe]:
    """Each probe's documents in one request; with `alone`, also each document in a request of
    its own."""
    scored: list[ScoredProbe] = []
    for probe in probes:
        batched = await _score(engine, probe, probe.documents)
        singles = [(await _score(engine, probe, [d]))[0] for d in probe.documents] if alone else []
        scored.append(ScoredProbe(probe, tuple(batched), tuple(singles)))
    return scored


def builtin_results(
    options: ScoreCheckOptions, scored: Sequence[ScoredProbe], tolerance: float
) -> list[CheckResult]:
    """Every built-in check, run or skipped (not selected) in BuiltinCheck's order."""
    runs = {
        BuiltinCheck.FINITE: lambda: check_finite(scored),
        BuiltinCheck.SPREAD: lambda: check_spread(scored),
        BuiltinCheck.CONSISTENT: lambda: check_consistent(scored, tolerance),
        BuiltinCheck.RELEVANCE: lambda: check_relevance(scored),
    }
    return [
        runs[c]()
        if c in options.builtins
        else CheckResult(c, "builtin", None, skipped=NOT_SELECTED)
        for c in BuiltinCheck
    ]


def parity_against_record(
    options: ScoreCheckOptions,
    identity: dict[str, Any],
    setup: dict[str, Any],
    scored: Sequence[ScoredProbe],
) -> Parity:
    """Parity with the record at SCORE_RECORD_FILE (skipped when there is none)."""
    if options.record_file is None:
        why = f"{ScoreCheckEnv.SCORE_RECORD_FILE} not set"
        return Parity(CheckResult("parity", "parity", None, skipped=why))
    path = Path(options.record_file)
    if not path.exists():
        why = f"no record at {path} yet (the operator records a Ready revision's scores)"
        return Parity(CheckResult("parity", "parity", None, skipped=why))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("must be a JSON object")
    except (OSError, ValueError) as exc:
        message = f"{ScoreCheckEnv.SCORE_RECORD_FILE} {path}: unusable record: {exc}"
        return Parity(CheckResult("parity", "parity", False, message))
    return check_parity(record, identity, setup, scored, options.tolerance_overrides)


def _first_failure(checks: Sequence[CheckResult]) -> CheckResult | None:
    return next((c for c in checks if c.passed is False), None)


async def run_score_check(
    engine: RerankEngine,
    options: ScoreCheckOptions,
    *,
    identity: dict[str, Any],
    setup: dict[str, Any],
) -> ScoreCheckReport:
    """Score the probes and check them: the report (state passed or failed)."""
    started_wall, started = time.time(), time.perf_counter()
    checks: list[CheckResult] = []
    scored: list[ScoredProbe] = []
    parity = Parity(CheckResult("parity", "parity", None, skipped="not run"))
    try:
        user_probes = load_probe_files(options.probes_files)
    except ProbeFileError as exc:
        checks.append(CheckResult("probes", "probe", False, str(exc)))
        user_probes = ()
    try:
        builtins = await score_probes(
            engine, BUILTIN_PROBES, alone=BuiltinCheck.CONSISTENT in options.builtins
        )
        users = await score_probes(engine, user_probes, alone=False)
    except ProbeScoringError as exc:
        # the engine refuses NaN/inf scores (NonFiniteScoresError): that is `finite` failing
        name = BuiltinCheck.FINITE if isinstance(exc.cause, NonFiniteScoresError) else "scoring"
        checks.append(
            CheckResult(name, "builtin" if name == "finite" else "probe", False, str(exc))
        )
    else:
        scored = [*builtins, *users]
        tolerance = consistent_tolerance(str(setup.get("dtype")), str(setup.get("quantization")))
        checks.extend(builtin_results(options, builtins, tolerance))
        checks.extend(check_expectations(sp) for sp in users)
        parity = parity_against_record(options, identity, setup, scored)
        checks.append(parity.result)
    failure = _first_failure(checks)
    return ScoreCheckReport(
        state=CheckState.FAILED if failure else CheckState.PASSED,
        identity=identity,
        setup=setup,
        failed=failure.name if failure else None,
        message=failure.message if failure else "",
        checked_at=started_wall,
        duration_seconds=round(time.perf_counter() - started, 4),
        changes=parity.changes,
        tolerance=parity.tolerance,
        deviation=parity.deviation,
        checks=tuple(checks),
        probes=tuple(scored),
    )
