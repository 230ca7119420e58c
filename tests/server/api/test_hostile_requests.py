"""Hostile clients against the real server (uvicorn on a socket, tiny Qwen3): every malformed or
oversized request gets a 4xx naming what is wrong, the connection stays usable or is closed
cleanly, work is bounded per request and per pod, and a client that leaves takes its work with it.

Each case reproduces a finding of the hostile-client review (issue 25) that failed before the fix.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from reranker_server.app import settings_loader
from server_helpers import serving_app, settings_for

ROUTES = {  # path -> the body's documents field
    "/v1/rerank": "documents",
    "/v2/rerank": "documents",
    "/rerank": "documents",
    "/v1/rank": "docs",
}


def body(path: str, documents, **extra) -> dict:
    return {"query": "what is a reranker", ROUTES[path]: documents, **extra}


@pytest.fixture(scope="module")
def server(tiny_qwen3_path) -> Iterator[tuple[str, object]]:
    yield from serving_app(
        tiny_qwen3_path,
        max_client_batch_size=1000,
        max_request_bytes=64 * 1024,
        max_request_tokens=4096,
        header_timeout_seconds=1,
        body_timeout_seconds=1,
    )


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], timeout=30) as c:
        yield c


def _post_raw(client: httpx.Client, path: str, content: bytes, ct: str = "application/json"):
    return client.post(path, content=content, headers={"content-type": ct})


def _still_serves(client: httpx.Client) -> None:
    """The same pooled connection answers the next request (no reset, no stale socket)."""
    r = client.post("/v1/rerank", json=body("/v1/rerank", ["a reranker scores pairs"]))
    assert r.status_code == 200, r.text


LONE_SURROGATE = b'"\\ud800x"'


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize(
    "where",
    ["document", "query", "instruction"],
)
def test_lone_surrogate_is_422_naming_the_field(client, path, where) -> None:
    docs_field = ROUTES[path]
    fields = {"query": b'"q"', docs_field: b'["fine"]'}
    if where == "document":
        fields[docs_field] = b'["fine", ' + LONE_SURROGATE + b"]"
    elif where == "query":
        fields["query"] = LONE_SURROGATE
    else:
        fields["instruction"] = LONE_SURROGATE
    raw = b"{" + b",".join(b'"' + k.encode() + b'":' + v for k, v in fields.items()) + b"}"
    r = _post_raw(client, path, raw)
    expected = {"document": f"{docs_field}[1]", "query": "query", "instruction": "instruction"}
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == expected[where]
    assert "surrogate" in r.json()["error"]["message"]
    _still_serves(client)


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("deep nesting", b'{"query":"q","documents":' + b"[" * 20000 + b"]" * 20000 + b"}"),
        ("huge integer", b'{"query":"q","documents":["a"],"top_n":' + b"9" * 5000 + b"}"),
        ("NaN", b'{"query":"q","documents":["a"],"top_n":NaN}'),
        ("invalid UTF-8", b'{"query":"\xff\xfe","documents":["a"]}'),
        ("truncated", b'{"query":"q","docu'),
        ("empty", b""),
    ],
)
def test_malformed_json_is_400_on_every_route(client, path, name, raw) -> None:
    r = _post_raw(client, path, raw)
    assert r.status_code == 400, (name, r.status_code, r.text)
    assert r.json()["error"]["field"] == "body"
    _still_serves(client)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_only_json_bodies_are_scored(client, content_type) -> None:
    """What a cross-site form or a no-preflight fetch can send is refused, never scored."""
    raw = json.dumps(body("/rerank", ["a"])).encode()
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/rerank", content=raw, headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["field"] == "content-type"


def test_json_with_a_charset_or_a_json_suffix_is_accepted(client) -> None:
    raw = json.dumps(body("/rerank", ["a"])).encode()
    for ct in ("application/json; charset=utf-8", "application/vnd.api+json"):
        assert client.post("/rerank", content=raw, headers={"content-type": ct}).status_code == 200


def test_a_declared_oversized_body_is_refused_unread(server) -> None:
    """413 from the headers alone: the client sends no body and still gets its answer."""
    url = urlparse(server[0])
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100000000\r\n\r\n"
        )
        answer = s.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "max_request_bytes" in answer and "connection: close" in answer.lower()


def test_an_undeclared_oversized_body_is_cut_off(client) -> None:
    """Chunked transfer (no Content-Length): 413 as soon as the bytes go over the limit."""

    def chunks():
        for _ in range(200):
            yield b" " * 1024

    r = client.post("/v1/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["type"] == "request_too_large"
    assert r.headers["connection"] == "close"


def test_tokens_per_request_are_bounded(client) -> None:
    """Within the byte limit, a request whose tokens after truncation exceed
    max_request_tokens is refused before any forward, naming the field and the setting."""
    for path, field in ROUTES.items():
        r = client.post(path, json=body(path, ["word " * 200] * 40))
        assert r.status_code == 413, r.text
        err = r.json()["error"]
        assert err["field"] == field and err["setting"] == "max_request_tokens"
        assert err["tokens"] > err["limit"] == 4096
    # the same documents cut short by the client fit
    r = client.post(
        "/v1/rerank", json=body("/v1/rerank", ["word " * 200] * 40, max_tokens_per_doc=8)
    )
    assert r.status_code == 200, r.text


def test_queued_tokens_are_bounded_per_pod(server, client) -> None:
    """With the engine's queue holding work, a request that would take the queue past
    max_queued_tokens gets 429 (Retry-After) instead of waiting; one alone always fits."""
    engine = server[1].state.server.engine
    config = engine.config
    engine.pause()
    results: list[int] = []
    try:
        first = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    server[0] + "/v1/rerank",
                    json=body("/v1/rerank", ["word " * 10] * 20),
                    timeout=30,
                ).status_code
            )
        )
        first.start()
        deadline = time.monotonic() + 10
        while engine.queued_tokens == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = engine.queued_tokens
        assert 0 < queued <= config.max_request_tokens, (queued, results)
        object.__setattr__(config, "max_queued_tokens", queued + 10)  # room for a small one only
        r = client.post("/v1/rerank", json=body("/v1/rerank", ["word " * 10] * 20))
        assert r.status_code == 429, r.text
        assert r.json()["error"]["setting"] == "max_queued_tokens"
        assert "retry-after" in r.headers
    finally:
        object.__setattr__(config, "max_queued_tokens", 1_048_576)
        engine.resume()
        first.join(30)
    assert results == [200]


def test_unauthenticated_bodies_are_not_parsed(tiny_qwen3_path) -> None:
    """With a key required, a malformed body without the key is a 401 (read after auth), not 400."""
    for url, _app in serving_app(tiny_qwen3_path, api_key="k" * 16):
        with httpx.Client(base_url=url, timeout=30) as c:
            for path in ROUTES:
                r = _post_raw(c, path, b'{"query": nope')
                assert r.status_code == 401, (path, r.text)
            ok = c.post(
                "/v1/rerank",
                json=body("/v1/rerank", ["a"]),
                headers={"authorization": "Bearer " + "k" * 16},
            )
            assert ok.status_code == 200


def test_slow_headers_are_cut_off(server) -> None:
    """Slowloris: a connection that does not finish its headers within HEADER_TIMEOUT_SECONDS
    gets 408 and is closed, on a fresh connection and on a kept-alive one."""
    url = urlparse(server[0])
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(b"POST /v1/rerank HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        answer = s.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert time.monotonic() - started < 5
        assert s.recv(1) == b""  # closed
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # the next request, never finished
        answer = s.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 408"), answer


def test_oversized_headers_are_refused(server) -> None:
    url = urlparse(server[0])
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-forwarded-for: " + b"1" * 40000 + b"\r\n\r\n"
        )
        answer = s.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 431"), answer[:200]


def test_slow_bodies_are_cut_off(server) -> None:
    url = urlparse(server[0])
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"query":'
        )
        answer = s.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "BODY_TIMEOUT_SECONDS" in answer


def _metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_work_leaves_with_its_client(server, client) -> None:
    """A client that disconnects while its request waits: its pairs leave the queue at once
    and nobody waits behind them."""
    url = urlparse(server[0])
    engine = server[1].state.server.engine
    before = _metric(client, "reranker_requests_abandoned_total")
    engine.pause()
    try:
        raw = json.dumps(body("/v1/rerank", ["word " * 5] * 40)).encode()
        s = socket.create_connection((url.hostname, url.port), timeout=10)
        s.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(raw)).encode() + b"\r\n\r\n" + raw
        )
        deadline = time.monotonic() + 10
        while engine.pending_pairs < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.pending_pairs == 40
        s.close()  # the client gives up
        deadline = time.monotonic() + 5
        while engine.pending_pairs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.pending_pairs == 0, "the abandoned request's pairs are still queued"
    finally:
        engine.resume()
    assert _metric(client, "reranker_requests_abandoned_total") == before + 1
    _still_serves(client)


def test_an_unexpected_error_is_a_500_that_closes_the_connection(tiny_qwen3_path) -> None:
    """The last resort: an error no handler maps is answered (JSON, Connection: close), so a
    pooled client's next request goes out on a fresh connection instead of a dead one."""
    settings = settings_for(tiny_qwen3_path)

    def broken_loader():
        backend = settings_loader(settings)()

        def fail(*_a, **_k):
            raise RuntimeError("injected fault")

        backend.score_mixed = fail  # a fault injected into the real backend
        backend.score = fail
        return backend

    for url, _app in serving_app(tiny_qwen3_path, loader=broken_loader, warmup=False):
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.post("/v1/rerank", json=body("/v1/rerank", ["a"]))
            assert r.status_code == 500 and r.headers["connection"] == "close"
            assert r.json()["error"]["type"] == "internal_error"
            assert c.get("/healthz").status_code == 200  # a new connection, transparently


def test_a_client_leaving_mid_body_is_abandoned_not_an_error(server, client, caplog) -> None:
    url = urlparse(server[0])
    before = _metric(client, "reranker_requests_abandoned_total")
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/rerank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 1000\r\n\r\n{"query":'
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while _metric(client, "reranker_requests_abandoned_total") == before:
        assert time.monotonic() < deadline, "the disconnect was not counted"
        time.sleep(0.05)
    assert "internal error" not in caplog.text


def test_a_client_with_no_allowance_left_is_refused_before_its_body(tiny_qwen3_path) -> None:
    """Per-client limits are checked from the headers too: once a client has no pair left, its
    next request is a 429 before the body is read (a malformed body gives 429, not 400)."""
    for url, _app in serving_app(tiny_qwen3_path, rate_limit_pairs_per_minute=10):
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("/v1/rerank", json=body("/v1/rerank", ["a"] * 10)).status_code == 200
            r = _post_raw(c, "/v1/rerank", b'{"query": nope')
            assert r.status_code == 429, r.text
            assert r.json()["error"]["limit"] == "pairs" and "retry-after" in r.headers
