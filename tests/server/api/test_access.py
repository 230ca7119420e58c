"""Access control against the real server: key rotation under load, JWT bearer tokens, per-client
rate limits, client addresses behind a proxy, /metrics on its own port."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reranker_server.app import create_app
from reranker_server.config import ConfigError
from server_helpers import serving, settings_for

BODY = {"query": "capital of France?", "documents": ["Paris is in France.", "Bananas."]}
KEY_A, KEY_B = "key-alpha-000111", "key-bravo-222333"


def _post(url: str, key: str | None, body=BODY, **headers) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{url}/v1/rerank", json=body, headers=headers, timeout=30)


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_rotating_a_key_while_a_client_loops_fails_no_request(tiny_qwen3_path, tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n")
    for url in serving(tiny_qwen3_path, api_keys_file=str(keys)):
        current = {"key": KEY_A}
        statuses: list[int] = []
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                statuses.append(_post(url, current["key"]).status_code)

        client = threading.Thread(target=loop)
        client.start()
        try:
            time.sleep(1.0)
            _replace(keys, f"{KEY_A}\n{KEY_B}\n")  # add the new key
            time.sleep(1.5)  # the server re-reads the file at most every second
            current["key"] = KEY_B  # the client moves to it
            time.sleep(1.0)
            _replace(keys, f"{KEY_B}\n")  # the old key is removed
            time.sleep(1.5)
        finally:
            stop.set()
            client.join(30)
        assert len(statuses) > 10 and set(statuses) == {200}, statuses
        assert _post(url, KEY_A).status_code == 401
        assert _post(url, KEY_B).status_code == 200


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwt_url(tiny_qwen3_path, tmp_path_factory, rsa_key):
    pub = rsa_key.public_key().public_numbers()

    def b64(n: int) -> str:
        return (
            base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))
            .rstrip(b"=")
            .decode()
        )

    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "n": b64(pub.n), "e": b64(pub.e)}]})
    )
    yield from serving(
        tiny_qwen3_path,
        jwt_jwks_file=str(jwks),
        jwt_issuer="https://idp.example",
        jwt_audience="reranker",
        jwt_required_scope="rerank",
    )


def _token(key, alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "https://idp.example",
        "aud": "reranker",
        "sub": "svc-search",
        "scope": "rerank",
        "exp": now + 120,
        **claims,
    }
    return jwt.encode(body, key, algorithm=alg, headers={"kid": "k1"})


def test_jwt_good_expired_audience_scope(jwt_url, rsa_key) -> None:
    assert _post(jwt_url, _token(rsa_key)).status_code == 200
    expired = _post(jwt_url, _token(rsa_key, exp=int(time.time()) - 300))
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "authorization: the token has expired"
    assert 'error_description="the token has expired"' in expired.headers["www-authenticate"]
    audience = _post(jwt_url, _token(rsa_key, aud="another-service"))
    assert audience.status_code == 401
    assert audience.json()["error"]["message"] == "authorization: invalid credentials"
    scope = _post(jwt_url, _token(rsa_key, scope="read"))
    assert scope.status_code == 403 and scope.json()["error"]["type"] == "permission_error"
    assert 'error="insufficient_scope"' in scope.headers["www-authenticate"]
    missing = _post(jwt_url, None)
    assert (
        missing.status_code == 401
        and missing.headers["www-authenticate"] == 'Bearer realm="reranker"'
    )


def test_jwt_algorithm_confusion_and_tampering(jwt_url, rsa_key) -> None:
    claims = {
        "iss": "https://idp.example",
        "aud": "reranker",
        "sub": "x",
        "scope": "rerank",
        "exp": int(time.time()) + 60,
    }
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    none = (
        base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=") + b"." + payload + b"."
    )
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1"}').rstrip(b"=")
    sig = base64.urlsafe_b64encode(hmac.new(pem, head + b"." + payload, hashlib.sha256).digest())
    hs256 = head + b"." + payload + b"." + sig.rstrip(b"=")
    good = _token(rsa_key).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "admin"}).encode()).rstrip(b"=")
    tampered = f"{good[0]}.{forged.decode()}.{good[2]}"
    for token in (none.decode(), hs256.decode(), tampered):
        answer = _post(jwt_url, token)
        assert answer.status_code == 401, token
        assert answer.json()["error"]["message"] == "authorization: invalid credentials"


def test_rate_limits_per_client_the_quiet_one_is_never_limited(tiny_qwen3_path, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    for url in serving(
        tiny_qwen3_path,
        api_keys_file=str(keys),
        rate_limit_requests_per_minute=5,
        rate_limit_pairs_per_minute=40,
        max_client_batch_size=64,
    ):
        limited0 = _metric(
            url, 'reranker_rate_limited_total{client_class="api_key",limit="requests"}'
        )
        noisy = [_post(url, KEY_A) for _ in range(8)]
        assert [r.status_code for r in noisy] == [200] * 5 + [429] * 3
        refused = noisy[-1]
        assert int(refused.headers["retry-after"]) >= 1
        err = refused.json()["error"]
        assert (
            err["type"] == "rate_limit_error"
            and err["limit"] == "requests"
            and err["per_minute"] == 5
        )
        assert "5 requests per minute" in err["message"]
        assert [_post(url, KEY_B).status_code for _ in range(3)] == [200] * 3  # its own allowance
        after = _metric(url, 'reranker_rate_limited_total{client_class="api_key",limit="requests"}')
        assert after - limited0 == 3
        big = _post(url, KEY_B, {"query": "q", "documents": ["d"] * 41})
        assert big.status_code == 413 and "41 pairs exceed" in big.json()["error"]["message"]
        assert big.json()["error"]["field"] == "documents"


def test_a_tokens_limit_bounds_long_documents_that_pairs_do_not(tiny_qwen3_path, tmp_path):
    """Two documents of 150 words cost the model ~100x what two of three words do: a client's
    tokens per minute refuse the long ones (429 naming the limit, counted, Retry-After) while the
    same number of pairs of short ones pass, and another client keeps its own allowance."""
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    long_body = {"query": "capital of France?", "documents": ["Paris is in France. " * 30] * 2}
    for url in serving(tiny_qwen3_path, api_keys_file=str(keys), rate_limit_tokens_per_minute=640):
        info = httpx.get(f"{url}/info", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
        assert info.json()["auth"]["rate_limits"]["tokens_per_minute"] == 640
        first = _post(url, KEY_A, long_body)
        assert first.status_code == 200, first.text
        spent = first.json()["usage"]["prompt_tokens"]
        assert 320 < spent <= 640 - 163  # one long request fits, and a short one after it, not two
        short = _post(url, KEY_A, BODY)  # as many pairs, a few tokens: what is left covers it
        assert short.status_code == 200, short.text
        limited0 = _metric(
            url, 'reranker_rate_limited_total{client_class="api_key",limit="tokens"}'
        )
        refused = _post(url, KEY_A, long_body)
        assert refused.status_code == 429, refused.text
        err = refused.json()["error"]
        assert err["limit"] == "tokens" and err["per_minute"] == 640
        assert "640 tokens per minute" in err["message"]
        assert int(refused.headers["retry-after"]) >= 1
        after = _metric(url, 'reranker_rate_limited_total{client_class="api_key",limit="tokens"}')
        assert after - limited0 == 1
        assert _post(url, KEY_B, long_body).status_code == 200  # its own allowance
        huge = _post(url, KEY_B, {"query": "q", "documents": ["Paris is in France. " * 100] * 2})
        assert huge.status_code == 413, huge.text
        assert huge.json()["error"]["field"] == "documents"
        assert "tokens after truncation exceed" in huge.json()["error"]["message"]


def test_a_client_past_its_tokens_cannot_make_the_server_tokenize_for_free(
    tiny_qwen3_path, tmp_path
) -> None:
    """A request refused for its tokens was tokenized all the same, so it is charged them: a
    client that keeps sending long requests past its allowance gets one more tokenized (refused,
    charged, its allowance in debt) and the rest refused before their bodies are read, where
    every one of them used to be tokenized and refused for nothing. The debt is paid off at the
    allowance's rate: Retry-After says when the request will fit."""
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    long_body = {"query": "capital of France?", "documents": ["Paris is in France. " * 30] * 2}
    tokenized = "reranker_tokenization_duration_seconds_count"
    for url in serving(tiny_qwen3_path, api_keys_file=str(keys), rate_limit_tokens_per_minute=640):
        before = _metric(url, tokenized)
        first = _post(url, KEY_A, long_body)
        assert first.status_code == 200, first.text
        cost = first.json()["usage"]["prompt_tokens"]
        assert 320 < cost <= 640  # one fits, two do not
        answers = [_post(url, KEY_A, long_body) for _ in range(5)]
        assert [a.status_code for a in answers] == [429] * 5
        assert all(a.json()["error"]["limit"] == "tokens" for a in answers)
        assert _metric(url, tokenized) - before == 2  # the scored one and the first refused
        # charged: 640 - 2 x cost left (in debt); the request fits again once the allowance
        # holds `cost`, which Retry-After (whole seconds, rounded up) says from the first refusal
        wait = (cost - (640 - 2 * cost)) * 60 / 640
        assert int(answers[0].headers["retry-after"]) == math.ceil(wait)
        assert _post(url, KEY_B, long_body).status_code == 200  # its own allowance


def test_a_client_past_its_pairs_cannot_make_the_server_parse_for_free(tiny_qwen3_path, tmp_path):
    """A request refused for its pairs was read and parsed: it takes its request and pairs all
    the same, so the client's next requests are refused before their bodies are read (a broken
    body gets the 429, not the 400 that parsing it would give); before, every body bound to be
    refused was read and parsed for nothing."""
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n")
    body = {"query": "q", "documents": ["d"] * 12}
    for url in serving(tiny_qwen3_path, api_keys_file=str(keys), rate_limit_pairs_per_minute=16):
        assert _post(url, KEY_A, body).status_code == 200  # 4 pairs left
        refused = _post(url, KEY_A, body)
        assert refused.status_code == 429 and refused.json()["error"]["limit"] == "pairs"
        # 4 - 12 = -8 pairs: 20 more to hold 12 again, at 16 a minute
        assert int(refused.headers["retry-after"]) == math.ceil(20 * 60 / 16)
        broken = httpx.post(
            f"{url}/v1/rerank",
            content=b'{"query": "q", "documents": [',
            headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert broken.status_code == 429, broken.text  # its body was never read
        assert broken.json()["error"]["limit"] == "pairs"


def test_a_client_cannot_have_oversized_bodies_read_for_free(tiny_qwen3_path, tmp_path) -> None:
    """A body without a Content-Length is read until it passes max_request_bytes before its 413:
    that is as much reading as the largest request the server admits, so it is charged as one
    (a request and max_client_batch_size pairs). A client that keeps sending such bodies has two
    read (its allowance then in debt) and the rest refused before a byte is read; before, every
    one was read to the limit for nothing. One whose Content-Length is over the limit is refused
    unread and charged nothing."""
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY_A}\n{KEY_B}\n")
    limit, batch = 64 * 1024, 1000

    def oversized(key: str, declared: bool) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if declared:  # refused from its Content-Length
            return httpx.post(f"{url}/v1/rerank", content=b" " * (limit + 1), headers=headers)
        return httpx.post(  # chunked: read until it passes the limit
            f"{url}/v1/rerank", content=iter([b" " * 1024] * 100), headers=headers, timeout=30
        )

    settings = {"max_request_bytes": limit, "max_client_batch_size": batch}
    for url in serving(
        tiny_qwen3_path, api_keys_file=str(keys), rate_limit_pairs_per_minute=1500, **settings
    ):
        assert [oversized(KEY_A, declared=True).status_code for _ in range(3)] == [413] * 3
        assert _post(url, KEY_A).status_code == 200  # 1500 - 2 pairs left: nothing charged
        read = [oversized(KEY_A, declared=False) for _ in range(3)]
        assert [r.status_code for r in read[:2]] == [413, 413], read[0].text
        assert read[0].json()["error"]["type"] == "request_too_large"
        # 1498 - 2 x 1000 = -502 pairs: the third is refused before it is read, until the
        # allowance holds one pair again, 503 pairs at 1500 a minute (less what refilled since)
        assert read[2].status_code == 429 and read[2].json()["error"]["limit"] == "pairs"
        assert 19 <= int(read[2].headers["retry-after"]) <= math.ceil(503 * 60 / 1500)
        assert _post(url, KEY_B).status_code == 200  # its own allowance


def test_client_addresses_behind_a_trusted_proxy(tiny_qwen3_path) -> None:
    for url in serving(
        tiny_qwen3_path, rate_limit_requests_per_minute=2, trusted_proxies="127.0.0.1"
    ):
        one = [_post(url, None, **{"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(3)]
        two = [_post(url, None, **{"X-Forwarded-For": "203.0.113.2"}).status_code for _ in range(2)]
        assert one == [200, 200, 429] and two == [200, 200]
    for url in serving(tiny_qwen3_path, rate_limit_requests_per_minute=2):  # proxy not trusted
        spoofed = [
            _post(url, None, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)
        ]
        assert spoofed == [200, 200, 429]  # the header is ignored: one client, the peer


def test_metrics_on_their_own_port(tiny_qwen3_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in serving(tiny_qwen3_path, metrics_port=port, api_key=KEY_A):
        assert _post(url, KEY_A).status_code == 200
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404
        own = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert own.status_code == 200 and "reranker_requests_total" in own.text
        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200  # probes stay open


def test_unusable_auth_settings_fail_at_start(tiny_qwen3_path, tmp_path) -> None:
    with pytest.raises(ConfigError, match="JWT_ISSUER"):
        create_app(settings_for(tiny_qwen3_path, jwt_jwks_file=str(tmp_path / "x.json")))
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    with pytest.raises(ConfigError, match="JWT_JWKS_FILE"):
        create_app(
            settings_for(
                tiny_qwen3_path,
                jwt_jwks_file=str(tmp_path / "jwks.json"),
                jwt_issuer="i",
                jwt_audience="a",
            )
        )
    with pytest.raises(ConfigError, match="JWT_ALGORITHMS"):
        create_app(
            settings_for(
                tiny_qwen3_path,
                jwt_jwks_file=str(tmp_path / "jwks.json"),
                jwt_issuer="i",
                jwt_audience="a",
                jwt_algorithms="HS256",
            )
        )
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        create_app(settings_for(tiny_qwen3_path, trusted_proxies="not-a-network"))
