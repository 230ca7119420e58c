"""The score check's report: what `GET SCORE_CHECK_PATH` returns, /ready and /info summarise,
and the metrics read (`reranker_contract.score_check` describes the JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reranker_contract.score_check import CheckState, ScoreChange
from reranker_server.score_check.checks import CheckResult, ScoredProbe


@dataclass(frozen=True)
class ScoreCheckReport:
    """One run of the check (or its pending/disabled placeholder)."""

    state: CheckState
    identity: dict[str, Any]
    setup: dict[str, Any] = field(default_factory=dict)
    failed: str | None = None
    message: str = ""
    checked_at: float | None = None
    duration_seconds: float | None = None
    changes: tuple[ScoreChange, ...] = ()
    tolerance: float | None = None
    deviation: float | None = None  # the largest parity deviation (None: not compared)
    checks: tuple[CheckResult, ...] = ()
    probes: tuple[ScoredProbe, ...] = ()

    @property
    def passed(self) -> bool | None:
        """True/False once run; None while pending or disabled."""
        if self.state in (CheckState.PASSED, CheckState.FAILED):
            return self.state == CheckState.PASSED
        return None

    @property
    def lets_ready(self) -> bool:
        """Whether /ready may answer 200: passed, or the check is off."""
        return self.state in (CheckState.PASSED, CheckState.DISABLED)

    def summary(self) -> dict[str, Any]:
        """state, failed and message: what /ready's body and /info show."""
        return {"state": self.state.value, "failed": self.failed, "message": self.message}

    def as_json(self) -> dict[str, Any]:
        """The full report (the contract's shape)."""
        return {
            **self.summary(),
            "checked_at": self.checked_at,
            "duration_seconds": self.duration_seconds,
            "identity": self.identity,
            "setup": self.setup,
            "changes": [c.value for c in self.changes],
            "tolerance": self.tolerance,
            "checks": [c.as_json() for c in self.checks],
            "probes": [p.as_json() for p in self.probes],
        }
