"""Per-client token buckets: requests per minute and (query, document) pairs per minute.

A client is a key's name, a token's subject, or (no identity) its address: the peer's, or the
nearest untrusted hop of X-Forwarded-For when the peer is a trusted proxy. Buckets hold a
minute's allowance and refill continuously; at most `max_clients` are kept (least recently seen
dropped), so memory stays bounded whatever the client count.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int = 0  # 0: no limit
    pairs_per_minute: int = 0

    @property
    def enabled(self) -> bool:
        return self.requests_per_minute > 0 or self.pairs_per_minute > 0


class RateLimited(Exception):
    """429: `limit` ("requests" | "pairs") is spent for this client; retry after `retry_after_s`."""

    def __init__(self, limit: str, per_minute: int, retry_after_s: float) -> None:
        unit = "requests" if limit == "requests" else "pairs (query, document)"
        super().__init__(
            f"rate limit: {per_minute} {unit} per minute for this client; "
            f"retry in {math.ceil(retry_after_s)} s"
        )
        self.limit, self.per_minute, self.retry_after_s = limit, per_minute, retry_after_s


class TooBig(Exception):
    """A request larger than a whole minute's pairs allowance can never pass (413)."""


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level, self.stamp = level, stamp


class RateLimiter:
    def __init__(
        self,
        limits: Limits,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits, self.max_clients, self.clock = limits, max_clients, clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: tuple[str, str], capacity: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(capacity), now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.level = min(capacity, bucket.level + (now - bucket.stamp) * capacity / 60.0)
            bucket.stamp = now
        return bucket

    def admit(self, client: str, pairs: int) -> None:
        """Take one request and `pairs` pairs from the client's buckets, or raise RateLimited
        (nothing taken) / TooBig."""
        lim = self.limits
        if not lim.enabled:
            return
        if lim.pairs_per_minute and pairs > lim.pairs_per_minute:
            raise TooBig(
                f"documents: {pairs} pairs exceed this client's limit of "
                f"{lim.pairs_per_minute} pairs per minute"
            )
        with self._lock:
            now = self.clock()
            wanted = [
                (kind, cap, cost)
                for kind, cap, cost in (
                    ("requests", lim.requests_per_minute, 1),
                    ("pairs", lim.pairs_per_minute, pairs),
                )
                if cap > 0
            ]
            buckets = [
                (kind, cap, cost, self._bucket((client, kind), cap, now))
                for kind, cap, cost in wanted
            ]
            for kind, cap, cost, bucket in buckets:
                if bucket.level < cost:
                    raise RateLimited(kind, cap, (cost - bucket.level) * 60.0 / cap)
            for _kind, _cap, cost, bucket in buckets:
                bucket.level -= cost


def client_address(
    peer: str | None,
    forwarded_for: str | None,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The caller's address: the peer, or walking X-Forwarded-For from the right past trusted
    proxies when the peer is one of them."""

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not peer:
        return "unknown"
    if not forwarded_for or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8, 192.168.1.1' -> networks; ValueError naming the bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"trusted proxy {part!r} is not an address or CIDR") from None
    return tuple(out)
