"""bench/paired_rounds.py: the p95 ratio of two round-paired runs and its interval over
resampled round pairs, against figures worked out by hand."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import paired_rounds  # noqa: E402


def test_the_percentile_is_the_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]  # 1..100: the 95th of 100 is the 95th value
    assert paired_rounds.percentile(values, 95) == 95.0
    assert paired_rounds.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert paired_rounds.percentile([7.0], 95) == 7.0


def test_the_ratio_pools_every_round() -> None:
    base = [[1.0] * 19 + [2.0], [1.0] * 19 + [4.0]]  # 40 values: 38 ones, then 2 and 4
    run = [[3.0] * 20, [3.0] * 20]
    # pooled p95 of base: rank ceil(0.95 x 40) = 38 -> 1.0
    assert paired_rounds.p95_ratio(base, run) == 3.0


def test_a_run_slower_by_the_same_factor_in_every_round_has_a_tight_interval() -> None:
    rng = random.Random(1)
    base = [[rng.uniform(0.1, 1.0) * (1 + r) for _ in range(200)] for r in range(6)]
    run = [[x * 1.5 for x in rnd] for rnd in base]  # every round's machine state kept
    low, high = paired_rounds.p95_ratio_interval(base, run)
    assert low == pytest.approx(1.5) and high == pytest.approx(1.5)


def test_round_to_round_drift_widens_the_interval_around_the_ratio() -> None:
    rng = random.Random(2)
    speeds = [1.0, 2.5, 0.8, 1.7, 1.1, 3.0]  # the machine's drift: a round's latency scale
    base = [[rng.expovariate(1) * s for _ in range(150)] for s in speeds]
    run = [[rng.expovariate(1) * s * 1.2 for _ in range(150)] for s in speeds]
    point = paired_rounds.p95_ratio(base, run)
    low, high = paired_rounds.p95_ratio_interval(base, run)
    assert low < point < high
    assert high - low > 0.1  # a few rounds of a drifting machine cannot pin the ratio
    assert low < 1.2 < high


def test_no_interval_from_one_round_and_rounds_must_pair() -> None:
    assert paired_rounds.p95_ratio_interval([[1.0, 2.0]], [[2.0, 3.0]]) is None
    assert paired_rounds.p95_ratio_interval([[1.0], []], [[2.0], [3.0]]) is None  # one pair left
    with pytest.raises(ValueError, match="2 base rounds against 1 rounds"):
        paired_rounds.p95_ratio_interval([[1.0], [1.0]], [[1.0]])
