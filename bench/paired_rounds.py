"""How far a p95 ratio between two runs made of paired rounds can be trusted.

bench/hostile.py runs its clean, hostile and control rounds in turn, so round i of each run saw
the machine in about the same state. The machine's speed drifts from round to round (on a
shared 2-vCPU VM, capacity has moved from 7 to 12 requests/s within an hour), and latencies
within a round are not independent (a queue carries its wait from one request to the next), so
resampling single requests would understate the spread. The interval here resamples whole
round pairs (a block bootstrap): with few rounds it is wide, which is the honest answer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

LEVEL = 0.90  # a two-sided 90% interval: 5% of the draws below it, 5% above
DRAWS = 2000


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank: the ceil(q% x n)-th smallest) of a non-empty `values`."""
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) / 100)
    return ordered[min(len(ordered), max(1, rank)) - 1]


def p95_ratio(base_rounds: Sequence[Sequence[float]], rounds: Sequence[Sequence[float]]) -> float:
    """p95 of every latency of `rounds` / p95 of every latency of `base_rounds`."""
    return percentile([x for r in rounds for x in r], 95) / percentile(
        [x for r in base_rounds for x in r], 95
    )


def p95_ratio_interval(
    base_rounds: Sequence[Sequence[float]],
    rounds: Sequence[Sequence[float]],
    *,
    level: float = LEVEL,
    draws: int = DRAWS,
    seed: int = 0,
) -> tuple[float, float] | None:
    """(low, high): the `level` interval of `p95_ratio` over `draws` resamples, with
    replacement, of round indices, each draw taking round i of both runs together. None with
    fewer than 2 round pairs that both have latencies (one pair has no spread to resample)."""
    if len(base_rounds) != len(rounds):
        raise ValueError(f"{len(base_rounds)} base rounds against {len(rounds)} rounds")
    pairs = [(b, r) for b, r in zip(base_rounds, rounds) if b and r]
    if len(pairs) < 2:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        drawn = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        ratios.append(p95_ratio([b for b, _ in drawn], [r for _, r in drawn]))
    ratios.sort()
    tail = (1 - level) / 2
    low = ratios[int(tail * draws)]
    high = ratios[min(draws - 1, int((1 - tail) * draws))]
    return round(low, 3), round(high, 3)
