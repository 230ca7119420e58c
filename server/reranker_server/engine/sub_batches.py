"""Split sequences into length-sorted sub-batches that minimise padded compute.

A forward over a right/left-padded batch costs about `B x longest` tokens plus a fixed
per-forward overhead. Sorting by length and cutting the sorted list optimally (dynamic
programming over cut points, O(n^2)) removes most padding without many tiny forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

# per-forward overhead in token equivalents (dispatch cost of one more forward); 16-64 measured
# equal on the Qwen3 benchmark load (bench/run.py --quick --docs 32), 96-256 slower
DEFAULT_OVERHEAD_TOKENS = 32


def split_cost(widths: Sequence[int], groups: Sequence[Sequence[int]], overhead: int) -> int:
    """Total cost of `groups` (lists of positions): sum of overhead + size x widest member."""
    return sum(overhead + len(g) * max(widths[i] for i in g) for g in groups)


def split_by_length(
    lengths: Sequence[int],
    *,
    overhead_tokens: int = DEFAULT_OVERHEAD_TOKENS,
    max_size: int | None = None,
) -> list[list[int]]:
    """Positions of `lengths` in sub-batches of increasing length, minimising total cost.

    The cost of a sub-batch is `overhead_tokens + size x longest`; every sub-batch holds at most
    `max_size` positions (default: unbounded). Ties between equal lengths keep input order.
    """
    if overhead_tokens < 0:
        raise ValueError(f"overhead_tokens: must be >= 0, got {overhead_tokens!r}")
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size: must be >= 1, got {max_size!r}")
    n = len(lengths)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda k: lengths[k])
    srt = [lengths[k] for k in order]
    cap = n if max_size is None else max_size
    inf = float("inf")
    best = [0.0] + [inf] * n  # best[j]: cost of the first j sorted positions
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        width = srt[j - 1]  # the longest of any group ending at j (sorted)
        for i in range(max(0, j - cap), j):
            cost = best[i] + overhead_tokens + (j - i) * width
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        i = cut[j]
        groups.append(order[i:j])
        j = i
    groups.reverse()
    return groups
