"""Token buckets by key, each holding a minute's allowance and refilling continuously. At most
`max_keys` are kept (least recently seen dropped), so memory stays bounded whatever the number of
keys. Not thread-safe: the owner holds its lock around a check and the take that follows it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level, self.stamp = level, stamp


class TokenBuckets:
    def __init__(self, *, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def find(self, key: Hashable, per_minute: int, now: float) -> Bucket | None:
        """The key's bucket refilled to `now` (and marked recently seen), or None when the key
        has none (it would be full)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            bucket.level = min(per_minute, bucket.level + (now - bucket.stamp) * per_minute / 60.0)
            bucket.stamp = now
        return bucket

    def get(self, key: Hashable, per_minute: int, now: float) -> Bucket:
        """The key's bucket refilled to `now`; a full one when it has none (the least recently
        seen key dropped past `max_keys`)."""
        bucket = self.find(key, per_minute, now)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(float(per_minute), now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return bucket
