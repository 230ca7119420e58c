"""Back-off on failed authentication, per client address: guessing keys costs time.

Each address has a token bucket of `per_minute` failures, refilled continuously; every failed
authentication takes one. While it holds less than one, the address is refused before its
credential is looked at (checking it would tell a guesser which guess was right). Successful
authentications neither take nor give. At most `max_addresses` are remembered (least recently
seen dropped).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from reranker_server.auth.buckets import TokenBuckets


class BackedOff(Exception):
    """429: this address failed authentication too often; retry after `retry_after_s`."""

    def __init__(self, per_minute: int, retry_after_s: float) -> None:
        super().__init__(
            f"authorization: too many failed authentication attempts from this address "
            f"({per_minute} per minute); retry in {math.ceil(retry_after_s)} s"
        )
        self.retry_after_s = retry_after_s


class FailureBackoff:
    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._buckets = TokenBuckets(max_keys=max_addresses)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, address: str) -> None:
        """BackedOff when `address` has no failure left to spend; remembers nothing new."""
        if not self.enabled:
            return
        with self._lock:
            bucket = self._buckets.find(address, self.per_minute, self.clock())
            if bucket is not None and bucket.level < 1:
                raise BackedOff(self.per_minute, (1 - bucket.level) * 60.0 / self.per_minute)

    def failed(self, address: str) -> None:
        """Spend one of `address`'s failures."""
        if not self.enabled:
            return
        with self._lock:
            bucket = self._buckets.get(address, self.per_minute, self.clock())
            bucket.level = max(0.0, bucket.level - 1)
