"""Length-sorted sub-batch split: optimal against brute force, bounded, deterministic."""

from __future__ import annotations

import itertools
import random

import pytest

from reranker_server.engine.sub_batches import split_by_length, split_cost


def _brute_force(lengths: list[int], overhead: int, max_size: int) -> int:
    """Cheapest cost over every way to cut the sorted lengths into consecutive groups."""
    srt = sorted(lengths)
    n = len(srt)
    best = None
    for cuts in itertools.product([False, True], repeat=n - 1):
        groups, start = [], 0
        for k, c in enumerate(cuts, start=1):
            if c:
                groups.append(srt[start:k])
                start = k
        groups.append(srt[start:])
        if any(len(g) > max_size for g in groups):
            continue
        cost = sum(overhead + len(g) * max(g) for g in groups)
        best = cost if best is None else min(best, cost)
    return best


def test_hand_computed_examples():
    # one long outlier: alone it costs 10 + 100, with the rest 5 x 100 -> split
    assert split_by_length([10, 100, 11, 12, 10], overhead_tokens=10) == [[0, 4, 2, 3], [1]]
    # similar lengths: one forward (cost 10 + 3x12 = 46) beats splitting (>= 20 + 10 + 2x12 = 54)
    assert split_by_length([12, 10, 11], overhead_tokens=10) == [[1, 2, 0]]
    # max_size caps every group
    capped = split_by_length([1, 1, 1, 1, 1], overhead_tokens=100, max_size=2)
    assert sorted(len(g) for g in capped) == [1, 2, 2]  # three forwards, the fewest allowed
    assert split_by_length([], overhead_tokens=5) == []


def test_optimal_against_brute_force():
    rng = random.Random(7)
    for _ in range(60):
        n = rng.randint(1, 9)
        lengths = [rng.randint(1, 200) for _ in range(n)]
        overhead = rng.choice([0, 5, 50, 300])
        cap = rng.randint(1, n)
        groups = split_by_length(lengths, overhead_tokens=overhead, max_size=cap)
        assert sorted(i for g in groups for i in g) == list(range(n))  # a partition
        assert all(len(g) <= cap for g in groups)
        assert split_cost(lengths, groups, overhead) == _brute_force(lengths, overhead, cap)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="overhead_tokens"):
        split_by_length([1], overhead_tokens=-1)
    with pytest.raises(ValueError, match="max_size"):
        split_by_length([1], max_size=0)
