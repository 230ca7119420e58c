"""The hostile clients of bench/hostile.py, on raw sockets, in a process of their own.

    python bench/hostile_clients.py URL SETTINGS_JSON OUT_JSON --duration S [--only K,K]
        [--slowloris N] [--rate R] [--mbps M] [--forwarded-for NETWORK]

SETTINGS_JSON holds the server's settings (/info's `settings`: the limits the bodies are sized
from). The process lowers its own priority (nice 19, and its session's autogroup's: on a small
machine its CPU must not crowd out the server being measured), prints "hostile: started", runs
every chosen kind for the duration and writes, per kind, how many times each answer came (a
status code, or `reset`, `closed`, `timeout`, `abandoned`, `open_at_end`), its attempts/s and
the MB/s it wrote, to OUT_JSON with its own CPU seconds.

Paced, not a flood: each client of a request kind starts at most `--rate` attempts a second
(a slow attempt delays the next, none are made up), and the big bodies (20 MB, chunked, near
the limit) are written at most at `--mbps` MB/s shared between their connections. A client
stops writing once the server answered (413 from the headers, or closed): what is measured is
the server's refusal, not the loopback's bandwidth. Slowloris connections stay open throughout.

With `--forwarded-for NETWORK` (the server trusting 127.0.0.1 as its ingress), each client is
one address of NETWORK, in order, and every request it sends ends its headers with
`X-Forwarded-For: <its address>`: what an ingress (HAProxy, nginx) appends for the peer it saw,
after whatever lines the client sent, so a spoofer's own lines come before it and name nobody.

With `--keys KEYS_JSON` (the server requiring API keys), KEYS_JSON maps a request kind to the keys
of its clients, in order: those clients send `Authorization: Bearer <their key>`, tenants with an
allowance of their own; every client of a kind it does not name sends a key of its own guessing,
an outsider (slowloris connections never get as far as the credential).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

NICE = 19
WORDS = "the of and to in is a capital city river country paris france berlin water model".split()
KINDS = frozenset(
    {
        "body_20mb",  # the original attack, Content-Length declared
        "body_20mb_chunked",  # the same without Content-Length
        "body_near_limit",  # just under MAX_REQUEST_BYTES, far over MAX_REQUEST_TOKENS
        "abandoned_large",  # a large admissible request, the connection closed after 50 ms
        "xff_spoofed",  # small valid requests with random X-Forwarded-For lines
        "slowloris",  # connections trickling headers
        "malformed",  # bodies no parser should choke on
    }
)


def request_head(
    host: str, length: int | None, content_type: str = "application/json", extra: str = ""
) -> bytes:
    """A POST /v1/rerank request line and headers; `length` None: chunked transfer."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
        f"{framing}\r\n{extra}Connection: close\r\n\r\n"
    ).encode()


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in HTTP/1.1 chunked framing."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def attack_bodies(max_request_bytes: int, max_docs: int) -> dict[str, bytes]:
    """The big bodies: the original 20 MB attack, and one just under the byte limit made of
    `max_docs` long documents (far over the tokens bound), and a large admissible request."""
    original = {"query": "q", "documents": ["word " * 4000] * 1000, "max_tokens_per_doc": 8}
    per_doc = (max_request_bytes - 64) // max_docs - 4  # quotes, comma, space
    near = {"query": "q", "documents": ["word " * (per_doc // 5)] * max_docs}
    rng = random.Random(1)
    large = {
        "query": "which city is the capital",
        "documents": [" ".join(rng.choice(WORDS) for _ in range(150)) for _ in range(200)],
    }
    out = {"original_20mb": json_bytes(original), "near_limit": json_bytes(near)}
    out["large"] = json_bytes(large)
    assert len(out["near_limit"]) <= max_request_bytes, len(out["near_limit"])
    return out


def malformed_requests(host: str) -> dict[str, bytes]:
    """Whole requests (head and body) that must each get a 4xx."""
    deep = b"[" * 100_000 + b"]" * 100_000
    bodies = {
        "lone_surrogate_doc": b'{"query": "q", "documents": ["ok", "\\ud800 bad"]}',
        "lone_surrogate_query": b'{"query": "\\udfff", "documents": ["a"]}',
        "lone_surrogate_key": b'{"query": "q", "documents": ["a"], "\\ud83d": 1}',
        "deep_nesting": deep,
        "deep_nesting_in_documents": b'{"query": "q", "documents": ' + deep + b"}",
        "huge_int": b'{"query": "q", "documents": ["a"], "top_n": ' + b"9" * 5000 + b"}",
        "huge_float": b'{"query": "q", "documents": ["a"], "top_n": 1e999}',
        "nan": b'{"query": "q", "documents": ["a"], "top_n": NaN}',
        "bad_utf8": b'{"query": "\xff\xfe", "documents": ["a"]}',
        "truncated": b'{"query": "q", "documents": ["a", ',
        "not_an_object": b'["q", "a"]',
    }
    out = {name: request_head(host, len(body)) + body for name, body in bodies.items()}
    plain = b'{"query": "q", "documents": ["a"]}'
    out["text_plain"] = request_head(host, len(plain), content_type="text/plain") + plain
    out["content_length_nan"] = (
        f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1e9\r\nConnection: close\r\n\r\n"
    ).encode() + plain
    out["oversize_headers"] = (
        request_head(host, len(plain), extra=f"X-Pad: {'a' * 65536}\r\n") + plain
    )
    return out


def with_header(request: bytes, name: str, value: str) -> bytes:
    """`request` with `name: value` as its last header."""
    head, end, body = request.partition(b"\r\n\r\n")
    return head + f"\r\n{name}: {value}".encode() + end + body


def forwarded_by_ingress(request: bytes, address: str) -> bytes:
    """`request` with `X-Forwarded-For: <address>` as its last header, as an ingress appends the
    peer it saw after the client's own lines."""
    return with_header(request, "X-Forwarded-For", address)


def outcome(line: asyncio.Future) -> str:
    """The status code of a finished status-line read, or what happened instead."""
    try:
        raw = line.result()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return "reset"
    if not raw:
        return "closed"
    parts = raw.split()
    return parts[1].decode() if len(parts) > 1 and raw.startswith(b"HTTP/") else "garbled"


async def exchange(
    host: str,
    port: int,
    data: bytes,
    *,
    abandon_after_s: float | None = None,
    timeout_s: float = 60.0,
    piece: int = 65536,
    bytes_per_s: float | None = None,
    written: list[int] | None = None,
) -> str:
    """Send `data` on a fresh connection and read the status line; stop sending as soon as an
    answer comes. With `abandon_after_s`, close the connection that long after the first byte
    unless an answer came first ("abandoned"). With `bytes_per_s`, write no faster than that.
    The bytes written are added to `written[0]`."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return "connect_failed"
    line = asyncio.ensure_future(reader.readline())

    async def send() -> None:
        started = time.monotonic()
        try:
            for i in range(0, len(data), piece):
                if line.done():
                    return
                chunk = data[i : i + piece]
                writer.write(chunk)
                await writer.drain()
                if written is not None:
                    written[0] += len(chunk)
                if bytes_per_s:
                    ahead = started + (i + len(chunk)) / bytes_per_s - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        except OSError:
            pass

    sending = asyncio.ensure_future(send())
    try:
        wait = abandon_after_s if abandon_after_s is not None else timeout_s
        await asyncio.wait([line], timeout=wait)
        if not line.done():
            return "abandoned" if abandon_after_s is not None else "timeout"
        return outcome(line)
    finally:
        sending.cancel()
        line.cancel()
        writer.transport.abort()


async def slowloris(host: str, port: int, trickle_s: float, deadline: float) -> list[str]:
    """One connection at a time sending a request line and then a header every `trickle_s`,
    never finishing the headers; reconnects when the server ends it. The answers it got."""
    answers = []
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            answers.append("connect_failed")
            await asyncio.sleep(trickle_s)
            continue
        line = asyncio.ensure_future(reader.readline())
        try:
            writer.write(f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\n".encode())
            n = 0
            while not line.done() and time.monotonic() < deadline:
                await asyncio.wait([line], timeout=trickle_s)
                if not line.done():
                    writer.write(f"X-Slow-{n}: {'z' * 8}\r\n".encode())
                    n += 1
            answers.append(outcome(line) if line.done() else "open_at_end")
        except OSError:
            answers.append("reset")
        finally:
            line.cancel()
            writer.transport.abort()
    return answers


def spoofed_forwarded_for(rng: random.Random) -> str:
    """Several X-Forwarded-For lines of random addresses, lists and junk."""

    def hop() -> str:
        kind = rng.randrange(4)
        if kind == 0:
            return ".".join(str(rng.randrange(256)) for _ in range(4))
        if kind == 1:
            return ":".join(f"{rng.randrange(65536):x}" for _ in range(8))
        if kind == 2:
            return f"unknown-{rng.randrange(10**9)}"
        return ", ".join(".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(40))

    return "".join(f"X-Forwarded-For: {hop()}\r\n" for _ in range(rng.randint(2, 5)))


@dataclass
class HostileMix:
    """How many of each hostile client run at once."""

    big_bodies: int = 1  # each kind: with Content-Length, chunked, just under the limit
    abandoners: int = 2
    spoofers: int = 2
    slowloris: int = 36
    malformed: int = 1
    trickle_s: float = 1.0
    kinds: frozenset[str] = KINDS
    rate_per_client: float = 2.0  # attempts a second, each client of a request kind
    big_body_mbps: float = 20.0  # MB/s written by all the big-body connections together
    forwarded_for: str | None = None  # a network: each client one address, behind an ingress
    # per kind, the API keys of its clients (tenants); with keys, every other client guesses one
    keys: dict[str, list[str]] | None = None

    def clients_per_kind(self) -> dict[str, int]:
        """How many clients each chosen request kind runs."""
        counts = {kind: self.big_bodies for kind in BIG_BODY_KINDS}
        counts |= {
            "abandoned_large": self.abandoners,
            "xff_spoofed": self.spoofers,
            "malformed": self.malformed,
            "slowloris": self.slowloris,
        }
        return {kind: n for kind, n in counts.items() if kind in self.kinds}


BIG_BODY_KINDS = ("body_20mb", "body_20mb_chunked", "body_near_limit")


async def run_hostile(url: str, settings: dict, mix: HostileMix, duration_s: float) -> dict:
    """Every hostile client for `duration_s`: per kind, the answers it got."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    bodies = attack_bodies(settings["max_request_bytes"], settings["max_client_batch_size"])
    original = bodies["original_20mb"]
    requests = {
        "body_20mb": request_head(host, len(original)) + original,
        "body_20mb_chunked": request_head(host, None) + chunked(original),
        "body_near_limit": request_head(host, len(bodies["near_limit"])) + bodies["near_limit"],
    }
    large = request_head(host, len(bodies["large"])) + bodies["large"]
    malformed = malformed_requests(host)
    started = time.monotonic()
    deadline = started + duration_s
    counts: dict[str, Counter] = {}
    written: dict[str, list[int]] = {}
    rng = random.Random(7)
    big_connections = mix.big_bodies * sum(kind in mix.kinds for kind in BIG_BODY_KINDS)
    big_bytes_per_s = mix.big_body_mbps * 1e6 / max(1, big_connections)

    network = ipaddress.ip_network(mix.forwarded_for) if mix.forwarded_for else None
    addresses: dict[str, list[str]] = {}
    credentials: dict[str, list[str]] = {}

    def unchanged(request: bytes) -> bytes:
        return request

    def own(kind: str, n: int, i: int) -> Callable[[bytes], bytes]:
        """The requests of client `n` (the `i`th of its kind) as it sends them (with its key, or
        a guessed one, when the server wants keys) and its ingress forwards them (its address
        appended, with a network)."""
        if kind == "slowloris":  # a slowloris's headers never end
            return unchanged
        key = None
        if mix.keys is not None:
            tenant = i < len(mix.keys.get(kind, ()))
            key = mix.keys[kind][i] if tenant else f"guess-{rng.getrandbits(64):016x}"
            credentials.setdefault(kind, []).append("key" if tenant else "guessed")
        address = None
        if network is not None:
            address = str(network[n + 1])
            addresses.setdefault(kind, []).append(address)

        def forward(request: bytes) -> bytes:
            if key is not None:
                request = with_header(request, "Authorization", f"Bearer {key}")
            return forwarded_by_ingress(request, address) if address else request

        return forward

    def count(kind: str, answer: str) -> None:
        counts.setdefault(kind, Counter())[answer] += 1

    def tally(kind: str) -> list[int]:
        return written.setdefault(kind.split(":")[0], [0])

    async def paced(attempt: Callable[[], Awaitable[None]]) -> None:
        """`attempt` at most `rate_per_client` times a second, from a random phase."""
        interval = 1.0 / mix.rate_per_client
        next_at = time.monotonic() + rng.uniform(0, interval)
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= deadline:
                return
            await attempt()
            next_at = max(next_at + interval, time.monotonic())

    async def loop(kind: str, send: Callable[[], Awaitable[str]]) -> None:
        async def attempt() -> None:
            count(kind, await send())

        await paced(attempt)

    async def spoofer(forward: Callable[[bytes], bytes]) -> None:
        body = json_bytes({"query": "q", "documents": ["a b c", "d e f"]})

        def spoof() -> Awaitable[str]:
            head = request_head(host, len(body), extra=spoofed_forwarded_for(rng))
            return exchange(host, port, forward(head + body), written=tally("xff_spoofed"))

        await loop("xff_spoofed", spoof)

    async def malformed_round(forward: Callable[[bytes], bytes]) -> None:
        names = iter(sorted(malformed) * int(duration_s * mix.rate_per_client + 1))

        async def attempt() -> None:
            name = next(names)
            data = forward(malformed[name])
            answer = await exchange(host, port, data, written=tally("malformed"))
            count(f"malformed:{name}", answer)

        await paced(attempt)

    async def loris(_forward: Callable[[bytes], bytes]) -> None:
        for answer in await slowloris(host, port, mix.trickle_s, deadline):
            count("slowloris", answer)

    def big(kind: str, request: bytes) -> Callable[[Callable[[bytes], bytes]], Awaitable[None]]:
        async def client(forward: Callable[[bytes], bytes]) -> None:
            data = forward(request)
            await loop(
                kind,
                lambda: exchange(
                    host, port, data, bytes_per_s=big_bytes_per_s, written=tally(kind)
                ),
            )

        return client

    async def abandoner(forward: Callable[[bytes], bytes]) -> None:
        data = forward(large)
        written = tally("abandoned_large")
        await loop(
            "abandoned_large",
            lambda: exchange(host, port, data, abandon_after_s=0.05, written=written),
        )

    Client = Callable[[Callable[[bytes], bytes]], Awaitable[None]]
    starts: dict[str, Client] = {kind: big(kind, data) for kind, data in requests.items()}
    starts |= {
        "abandoned_large": abandoner,
        "xff_spoofed": spoofer,
        "malformed": malformed_round,
        "slowloris": loris,
    }
    per_kind = mix.clients_per_kind()
    chosen = [(kind, i) for kind, n in per_kind.items() for i in range(n)]
    await asyncio.gather(*(starts[kind](own(kind, n, i)) for n, (kind, i) in enumerate(chosen)))
    elapsed = time.monotonic() - started
    attempts: Counter[str] = Counter()
    for kind, answers in counts.items():
        if kind != "slowloris":
            attempts[kind.split(":")[0]] += sum(answers.values())
    return {
        "answers": {kind: dict(answers) for kind, answers in sorted(counts.items())},
        "intensity": {
            kind: {
                "clients": per_kind[kind],
                "attempts_per_s": round(attempts[kind] / elapsed, 2),
                "mb_per_s": round(written.get(kind, [0])[0] / 1e6 / elapsed, 2),
            }
            for kind in sorted(mix.kinds)
        },
        "rate_per_client": mix.rate_per_client,
        "big_body_mbps_cap": mix.big_body_mbps,
        "big_body_connection_mbps_cap": round(big_bytes_per_s / 1e6, 2),
        "forwarded_for": mix.forwarded_for,
        "client_addresses": addresses,
        "credentials": credentials,
    }


def autogroup() -> str | None:
    """This process's scheduling autogroup and its nice value, None where there are none."""
    try:
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        return None


def lower_priority() -> None:
    """nice 19, for the process and, where the kernel groups processes by session
    (sched_autogroup: a session's processes share one weight against other sessions, so a
    process's own nice value counts only within its session), for its session's autogroup: the
    caller starts this process in a session of its own."""
    os.nice(NICE)
    try:
        Path("/proc/self/autogroup").write_text(str(NICE))
    except OSError:
        pass


def parse_kinds(text: str) -> frozenset[str]:
    """`--only`'s comma-separated kinds, each one of KINDS."""
    kinds = frozenset(k for k in text.split(",") if k)
    if not kinds or not kinds <= KINDS:
        raise argparse.ArgumentTypeError(
            f"unknown kind in {text!r}; choose from {', '.join(sorted(KINDS))}"
        )
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("settings", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--only", type=parse_kinds, default=KINDS)
    parser.add_argument("--slowloris", type=int, default=HostileMix.slowloris)
    parser.add_argument("--rate", type=float, default=HostileMix.rate_per_client)
    parser.add_argument("--mbps", type=float, default=HostileMix.big_body_mbps)
    parser.add_argument("--forwarded-for", type=ipaddress.ip_network, default=None)
    parser.add_argument("--keys", type=Path, default=None, help="JSON: kind -> its clients' keys")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.mbps <= 0:
        parser.error("--rate and --mbps must be positive")
    lower_priority()
    settings = json.loads(args.settings.read_text())
    mix = HostileMix(
        slowloris=args.slowloris,
        kinds=args.only,
        rate_per_client=args.rate,
        big_body_mbps=args.mbps,
        forwarded_for=str(args.forwarded_for) if args.forwarded_for else None,
        keys=json.loads(args.keys.read_text()) if args.keys else None,
    )
    print("hostile: started", flush=True)
    report = asyncio.run(run_hostile(args.url, settings, mix, args.duration))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        **report,
        "nice": os.nice(0),
        "autogroup": autogroup(),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
