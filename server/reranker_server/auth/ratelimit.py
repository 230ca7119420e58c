"""Per-client token buckets: requests, (query, document) pairs and model tokens per minute.

Requests and pairs are taken when a request is admitted; tokens once it is tokenized (before
it is queued), since only then are they known: pairs alone do not bound a client's work (200
pairs of long documents cost the model hundreds of times what 200 short ones do). Each is
taken whether the request is then scored, refused or abandoned (its body was read, it was
tokenized): a bucket that held too little goes into debt, so a client cannot have the server
read, parse and tokenize requests bound to be refused for nothing. A body read until it passed
the byte limit is charged as the largest request the server admits (`charge`).

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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from reranker_server.auth.buckets import Bucket, TokenBuckets

# X-Forwarded-For hops examined from the right; past them the last trusted hop is the client.
MAX_FORWARDED_HOPS = 32
# The longest hop text that can be an address (IPv6 with an IPv4 tail is 45 characters).
_MAX_ADDRESS_TEXT = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int = 0  # 0: no limit
    pairs_per_minute: int = 0
    tokens_per_minute: int = 0

    @property
    def enabled(self) -> bool:
        return self.requests_per_minute > 0 or self.pairs_per_minute > 0 or self.counts_tokens

    @property
    def counts_tokens(self) -> bool:
        return self.tokens_per_minute > 0


class RateLimited(Exception):
    """429: `limit` ("requests" | "pairs" | "tokens") is spent for this client; retry after
    `retry_after_s`."""

    def __init__(self, limit: str, per_minute: int, retry_after_s: float) -> None:
        unit = {"pairs": "pairs (query, document)", "tokens": "tokens"}.get(limit, limit)
        super().__init__(
            f"rate limit: {per_minute} {unit} per minute for this client; "
            f"retry in {math.ceil(retry_after_s)} s"
        )
        self.limit, self.per_minute, self.retry_after_s = limit, per_minute, retry_after_s


class TooBig(Exception):
    """A request larger than a whole minute's pairs or tokens allowance can never pass (413);
    `limit`: "pairs" or "tokens"."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class RateLimiter:
    def __init__(
        self,
        limits: Limits,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits, self.clock = limits, clock
        self._buckets = TokenBuckets(max_keys=max_clients)
        self._lock = threading.Lock()

    def check_spent(self, client: Hashable) -> None:
        """RateLimited when the client has less than one request, pair or token left: no request
        can pass now, whatever its size, so it is refused before its body is read. Takes
        nothing and remembers no new client."""
        lim = self.limits
        with self._lock:
            now = self.clock()
            for kind, cap in (
                ("requests", lim.requests_per_minute),
                ("pairs", lim.pairs_per_minute),
                ("tokens", lim.tokens_per_minute),
            ):
                bucket = self._buckets.find((client, kind), cap, now) if cap > 0 else None
                if bucket is not None and bucket.level < 1:
                    raise RateLimited(kind, cap, (1 - bucket.level) * 60.0 / cap)

    def admit(self, client: Hashable, pairs: int) -> None:
        """Take one request and `pairs` pairs from the client's buckets (its body was read and
        parsed: they are taken even when it is refused, the buckets going into debt, so sending
        requests bound to be refused is not free), then raise RateLimited, with the time until
        the buckets hold them again, where one held fewer, or TooBig (more pairs than a minute
        allows: it can never pass). `client` is a short key (an Identity's `key`)."""
        lim = self.limits
        if not lim.enabled:
            return
        short = self._take_request(client, pairs)
        if lim.pairs_per_minute and pairs > lim.pairs_per_minute:
            raise TooBig(
                f"documents: {pairs} pairs exceed this client's limit of "
                f"{lim.pairs_per_minute} pairs per minute",
                "pairs",
            )
        if short:
            kind, cap, wait_s = max(short, key=lambda s: s[2])
            raise RateLimited(kind, cap, wait_s)

    def charge(self, client: Hashable, pairs: int) -> None:
        """Take one request and `pairs` pairs, refusing nothing: what the server did for a
        request refused on other grounds (a body read until it passed the byte limit)."""
        if self.limits.enabled:
            self._take_request(client, pairs)

    def _take_request(self, client: Hashable, pairs: int) -> list[tuple[str, int, float]]:
        """Take one request and `pairs` pairs; (kind, cap, seconds until it holds its cost
        again) of each bucket that held too little."""
        lim, short = self.limits, []
        with self._lock:
            now = self.clock()
            for kind, cap, cost in (
                ("requests", lim.requests_per_minute, 1),
                ("pairs", lim.pairs_per_minute, pairs),
            ):
                if cap <= 0:
                    continue
                wait_s = _take(self._buckets.get((client, kind), cap, now), cost, cap)
                if wait_s is not None:
                    short.append((kind, cap, wait_s))
        return short

    def charge_tokens(self, client: Hashable, tokens: int, *, refusable: bool = True) -> None:
        """Take `tokens` (a tokenized request's, before it is queued) from the client's tokens
        bucket. They were tokenized whatever the answer, so they are taken even when the bucket
        holds fewer (it goes below zero: the client waits until it has refilled); refusing must
        not make tokenizing free. `refusable`: then raise RateLimited, with the time until the
        bucket holds `tokens` again, or TooBig (more than a minute's allowance: it can never
        pass). Not `refusable` (its client left, or another limit refused it): take them only."""
        cap = self.limits.tokens_per_minute
        if cap <= 0:
            return
        with self._lock:
            wait_s = _take(self._buckets.get((client, "tokens"), cap, self.clock()), tokens, cap)
        if not refusable:
            return
        if tokens > cap:
            raise TooBig(
                f"documents: {tokens} tokens after truncation exceed this client's limit of "
                f"{cap} tokens per minute",
                "tokens",
            )
        if wait_s is not None:
            raise RateLimited("tokens", cap, wait_s)


def _take(bucket: Bucket, cost: float, per_minute: int) -> float | None:
    """Take `cost` from `bucket` whatever it holds (below zero: in debt). None when it held
    enough; else the seconds until it holds `cost` again, refilling at `per_minute`."""
    short = bucket.level < cost
    bucket.level -= cost
    return (cost - bucket.level) * 60.0 / per_minute if short else None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an address (IPv4-mapped IPv6 as IPv4, no IPv6 zone), or None when it is none."""
    if len(text) > _MAX_ADDRESS_TEXT:
        return None
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The caller's address, normalised: the peer, or, when the peer is a trusted proxy, the
    nearest hop of X-Forwarded-For (every line, joined in order) that is not one, walking from
    the right. A hop that is no address, or the end of the MAX_FORWARDED_HOPS examined, ends the
    walk at the last trusted hop: a client never names itself with text of its choosing."""
    if not peer:
        return "unknown"
    current = _address(peer)
    if current is None:  # not an IP transport (a test client, a Unix socket): as given
        return peer
    if not forwarded_for or not any(current in net for net in trusted):
        return current.compressed
    hops = forwarded_for.rsplit(",", MAX_FORWARDED_HOPS)[-MAX_FORWARDED_HOPS:]
    for text in reversed(hops):
        if not text.strip():
            continue
        hop = _address(text.strip())
        if hop is None:
            break
        current = hop
        if not any(hop in net for net in trusted):
            break
    return current.compressed


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.0/8, 192.168.1.1' -> networks; ValueError naming the bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"trusted proxy {part!r} is not an address or CIDR") from None
    return tuple(out)
