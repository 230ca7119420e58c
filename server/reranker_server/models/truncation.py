"""Small token-list helpers shared by the backends."""

from __future__ import annotations

from collections.abc import Sequence


def cut(ids: Sequence[int], keep: int, direction: str) -> list[int]:
    """Keep `keep` tokens: the head for direction 'right' (cut the right end), the tail for 'left'."""
    if direction not in ("right", "left"):
        raise ValueError(f"truncation_direction: must be 'right' or 'left', got {direction!r}")
    if keep <= 0:
        return []
    ids = list(ids)
    return ids[:keep] if direction == "right" else ids[-keep:]


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
