"""Pure batch planning: which pending pairs form the next forward pass.

Each call looks at the pending requests in arrival order and returns one batch that always
contains the oldest pending pair (so nothing starves):

* Prefix path: when the oldest request has a prefix and, counting all pending requests with the
  same `prefix_key`, at least `prefix_min_pairs` pairs wait, the batch is drawn from that prefix
  group only and scored from one KV cache of the prefix. Requests with different keys (other
  instruction, query or model) are never in the same prefix batch.
  A smaller group of >= 2 pairs also takes the prefix path when nothing else is pending (the tail
  of a large request), since there is nothing to pack it with.
* Full path: otherwise the batch packs pairs of every request not in a qualifying prefix group,
  each scored as the whole sequence `prefix + pair`.

In both paths the oldest `schedule_window` candidate pairs are sorted by length and cut greedily
into chunks under `max_batch_size` and `max_batch_tokens` (batch x longest whole sequence; on the
prefix path that is the key/value footprint B x (prefix + longest continuation), while the
compute reported in `padded_tokens` is prefix + B x longest continuation); the chunk holding the
oldest pair is returned. A backend that pads nothing (`unpadded`: the front of vLLM, which
packs sequences itself) gains nothing from sorting, and sorting would spread each request over
many batches, so that every request in the window finishes late: its batch is the oldest pairs
in arrival order, bounded by `max_batch_size` and the sum of their tokens.

The plan is what runs: `forwards` lists the model calls the batch makes (positions into
`items`). On the prefix path the prefix is computed once and the chunk's continuations are cut
into the length-sorted sub-batches that minimise padded tokens plus `overhead_tokens` per
forward (`sub_batches.split_by_length`), each one forward on the prefix cache; where the backend
packs continuations without padding (`packed_continuations`) the chunk is one forward; a full
batch is one forward.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from reranker_server.contracts import EncodedRequest
from reranker_server.engine.sub_batches import DEFAULT_OVERHEAD_TOKENS, split_by_length


@dataclass(eq=False)
class PendingRequest:
    """A request's scheduling state: which pair indices still wait for a batch."""

    rid: int
    encoded: EncodedRequest
    pending: list[int]  # pair indices not yet dispatched, in input order
    enqueued_at: float = 0.0

    @property
    def prefix_len(self) -> int:
        return len(self.encoded.prefix_ids)

    def pair_len(self, index: int) -> int:
        return len(self.encoded.pairs[index].input_ids)


@dataclass(frozen=True)
class Item:
    request: PendingRequest
    index: int  # pair index within the request


@dataclass
class PlannedBatch:
    kind: Literal["prefix", "full"]
    items: list[Item]
    prefix_ids: tuple[int, ...] = ()  # the shared prefix (prefix path only)
    prefix_key: Hashable | None = None  # prefix path only
    padded_tokens: int = 0  # batch x longest sequence (+ prefix once on the prefix path)
    real_tokens: int = 0  # tokens that are not padding
    forwards: list[list[int]] = field(default_factory=list)  # positions into items, per call


def prefix_group_sizes(queue: Sequence[PendingRequest]) -> dict[Hashable, int]:
    """Pending pairs per prefix key, over requests that have a non-empty prefix."""
    sizes: dict[Hashable, int] = {}
    for req in queue:
        if req.pending and req.encoded.prefix_ids:
            key = req.encoded.prefix_key
            sizes[key] = sizes.get(key, 0) + len(req.pending)
    return sizes


def _cut(items: list[Item], lengths: list[int], max_size: int, max_tokens: int) -> list[list[int]]:
    """Sort positions by length and cut greedily into chunks; each chunk holds >= 1 position."""
    order = sorted(range(len(items)), key=lambda k: lengths[k])
    chunks: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for k in order:
        n = len(current) + 1
        width = max(longest, lengths[k])
        if current and (n > max_size or n * width > max_tokens):
            chunks.append(current)
            current, longest = [], 0
            width = lengths[k]
        current.append(k)
        longest = width
    if current:
        chunks.append(current)
    return chunks


def plan_next_batch(
    queue: Sequence[PendingRequest],
    *,
    max_batch_size: int,
    max_batch_tokens: int,
    prefix_enabled: bool,
    prefix_min_pairs: int,
    window: int,
    overhead_tokens: int = DEFAULT_OVERHEAD_TOKENS,
    packed_continuations: bool = False,
    unpadded: bool = False,
) -> PlannedBatch | None:
    """The next batch for `queue` (arrival order), or None when nothing is pending.

    `packed_continuations`: the backend runs a prefix batch's continuations unpadded
    (`models.packed_decoder`), so padding costs nothing and the whole chunk is one forward.
    `unpadded`: the backend pads no batch at all; full batches are taken in arrival order."""
    live = [r for r in queue if r.pending]
    if not live:
        return None
    sizes = prefix_group_sizes(live) if prefix_enabled else {}

    def on_prefix_path(req: PendingRequest) -> bool:
        return (
            bool(req.encoded.prefix_ids)
            and sizes.get(req.encoded.prefix_key, 0) >= prefix_min_pairs
        )

    head = live[0]
    head_key = head.encoded.prefix_key
    alone = all(r.encoded.prefix_key == head_key for r in live)  # nothing else to pack with
    if (
        prefix_enabled
        and head.encoded.prefix_ids
        and (on_prefix_path(head) or (alone and sizes.get(head_key, 0) >= 2))
    ):
        key = head.encoded.prefix_key
        members = [r for r in live if r.encoded.prefix_ids and r.encoded.prefix_key == key]
        items = _window(members, window)
        lengths = [it.request.pair_len(it.index) for it in items]
        p = head.prefix_len
        # the budget bounds B x (P + longest continuation): the keys/values the batch holds
        footprint = [p + n for n in lengths]
        chosen = _chunk_with_first(items, footprint, max_batch_size, max_batch_tokens)
        seq = [lengths[k] for k in chosen]
        if packed_continuations:
            forwards = [sorted(range(len(seq)), key=lambda i: seq[i])]
            padded = p + sum(seq)
        else:
            forwards = split_by_length(seq, overhead_tokens=overhead_tokens)
            padded = p + sum(len(g) * max(seq[i] for i in g) for g in forwards)
        return PlannedBatch(
            kind="prefix",
            items=[items[k] for k in chosen],
            prefix_ids=tuple(head.encoded.prefix_ids),
            prefix_key=key,
            padded_tokens=padded,
            real_tokens=p + sum(seq),
            forwards=forwards,
        )
    members = [r for r in live if not (prefix_enabled and on_prefix_path(r))]
    items = _window(members, window)
    lengths = [it.request.prefix_len + it.request.pair_len(it.index) for it in items]
    if unpadded:
        chosen = _oldest(lengths, max_batch_size, max_batch_tokens)
    else:
        chosen = _chunk_with_first(items, lengths, max_batch_size, max_batch_tokens)
    seq = [lengths[k] for k in chosen]
    return PlannedBatch(
        kind="full",
        items=[items[k] for k in chosen],
        padded_tokens=sum(seq) if unpadded else len(seq) * max(seq),
        real_tokens=sum(seq),
        forwards=[list(range(len(seq)))],
    )


def _window(members: Sequence[PendingRequest], window: int) -> list[Item]:
    """The oldest `window` pending pairs of `members` (arrival order, then input order)."""
    items: list[Item] = []
    for req in members:
        for index in req.pending:
            items.append(Item(req, index))
            if len(items) >= window:
                return items
    return items


def _oldest(lengths: list[int], max_size: int, max_tokens: int) -> list[int]:
    """Positions 0..k-1: the oldest pairs whose count and summed tokens fit (at least one)."""
    total = 0
    for k, n in enumerate(lengths):
        total += n
        if k and (k + 1 > max_size or total > max_tokens):
            return list(range(k))
    return list(range(len(lengths)))


def _chunk_with_first(
    items: list[Item], lengths: list[int], max_size: int, max_tokens: int
) -> list[int]:
    """Positions (in `items`) of the length-sorted chunk that holds items[0], the oldest pair."""
    for chunk in _cut(items, lengths, max_size, max_tokens):
        if 0 in chunk:
            return chunk
    raise AssertionError("unreachable: every position is in a chunk")
