"""Calls of a backend's two forward methods in the shapes the tests use most."""

from __future__ import annotations

from collections.abc import Sequence


def score_full(backend, prefix_ids: Sequence[int], pairs: Sequence) -> list[float]:
    """Raw scores of `prefix + pair` for each pair, in one padded forward of whole sequences."""
    return backend.score_mixed([tuple(prefix_ids)] * len(pairs), pairs).raw_scores


def score_with_prefix(backend, prefix_ids: Sequence[int], pairs: Sequence) -> list[float]:
    """Raw scores from one KV cache of the prefix, all pairs in one forward on it."""
    return backend.score(prefix_ids, pairs, [list(range(len(pairs)))]).raw_scores
