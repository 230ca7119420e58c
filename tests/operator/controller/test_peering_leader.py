"""Which peer works, read from a kopf peering object's status by kopf's own rule: the one whose
priority no other live peer reaches (a tie pauses both; a dead peer counts for nothing)."""

from __future__ import annotations

import datetime

from reranker_operator.controller.peering import leads

NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


def _peer(priority: int, seconds_ago: float = 1, lifetime: int = 60) -> dict:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_highest_live_priority_leads() -> None:
    status = {"a": _peer(200), "b": _peer(100)}
    assert leads(status, 200, NOW) is True
    assert leads(status, 100, NOW) is False


def test_a_tie_pauses_both() -> None:
    status = {"a": _peer(100), "b": _peer(100)}
    assert leads(status, 100, NOW) is False


def test_a_dead_peer_counts_for_nothing() -> None:
    status = {"a": _peer(200, seconds_ago=61), "b": _peer(100)}
    assert leads(status, 100, NOW) is True
    assert leads(status, 200, NOW) is None  # its own entry expired: not announced


def test_unknown_until_announced_and_malformed_entries_ignored() -> None:
    assert leads({}, 100, NOW) is None
    status = {"a": _peer(100), "junk": {"priority": 300}, "null": None}
    assert leads(status, 100, NOW) is True
    naive = {"a": {"priority": 5, "lifetime": 60, "lastseen": "2026-12-03T11:59:30"}}
    assert leads(naive, 5, NOW) is True  # kopf writes UTC
