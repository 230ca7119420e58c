"""The score check before /ready (`reranker_contract.score_check`): probes, checks, the runner."""

from __future__ import annotations

from reranker_server.score_check.options import ScoreCheckOptions
from reranker_server.score_check.report import ScoreCheckReport
from reranker_server.score_check.runner import run_score_check

__all__ = ["ScoreCheckOptions", "ScoreCheckReport", "run_score_check"]
