"""Hostile identities against the real server: X-Forwarded-For spoofing behind an appending
proxy, unbounded header-derived identities, a JWT subject posing as an API key, malformed scope
claims, non-ASCII API keys, and per-address back-off on failed authentication."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from reranker_server.app import create_app
from reranker_server.auth.keys import fingerprint
from reranker_server.auth.ratelimit import client_address, parse_networks
from reranker_server.config import ConfigError
from server_helpers import running_client, serving, settings_for

BODY = {"query": "capital of France?", "documents": ["Paris is in France.", "Bananas."]}
KEY, OTHER_KEY = "hostile-key-0123456789", "another-key-0123456789"
ISSUER, AUDIENCE = "https://idp.example", "reranker"


def _post(url: str, key: str | None = None, headers=None) -> httpx.Response:
    sent = list(headers or [])
    if key is not None:
        sent.append(("Authorization", f"Bearer {key}"))
    return httpx.post(f"{url}/v1/rerank", json=BODY, headers=sent, timeout=30)


def _metric(text: str, series: str) -> float:
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(series + " ")
    )


# -- X-Forwarded-For ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proxied_url(tiny_qwen3_path) -> Iterator[str]:
    """No credentials: clients are addresses; the peer (127.0.0.1) is a trusted proxy."""
    yield from serving(
        tiny_qwen3_path, trusted_proxies="127.0.0.1", rate_limit_requests_per_minute=2
    )


def test_an_appending_proxy_decides_the_address_not_the_client(proxied_url) -> None:
    """HAProxy `option forwardfor` adds its own X-Forwarded-For line after the client's."""
    statuses = [
        _post(
            proxied_url,
            headers=[("X-Forwarded-For", f"198.51.100.{i}"), ("X-Forwarded-For", "203.0.113.10")],
        ).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]  # one client, 203.0.113.10, whatever the client wrote


def test_spellings_of_one_address_are_one_client(proxied_url) -> None:
    spellings = ["2001:DB8:0:0::11", "2001:db8::11", "2001:0db8:0000::0011"]
    statuses = [_post(proxied_url, headers=[("X-Forwarded-For", s)]).status_code for s in spellings]
    assert statuses == [200, 200, 429]


def test_junk_and_huge_forwarded_for_values_never_become_identities(proxied_url) -> None:
    """A hop that is no address ends the walk at the last trusted hop: here the peer itself, so
    every such request is the peer's (one bucket), however many distinct values are sent."""
    junk = [f"{i}-" + "x" * 10_000 for i in range(3)] + ["203.0.113.20, not-an-address"]
    statuses = [_post(proxied_url, headers=[("X-Forwarded-For", j)]).status_code for j in junk]
    assert statuses == [200, 200, 429, 429]  # the peer's bucket (127.0.0.1), shared
    assert _post(proxied_url).status_code == 429  # the peer itself: the same client


def test_the_walk_from_the_right_is_bounded_and_normalised() -> None:
    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")
    # a junk hop behind trusted ones: the last trusted hop, never the junk
    assert client_address("127.0.0.1", "203.0.113.5, junk, 10.0.0.7", trusted) == "10.0.0.7"
    assert client_address("127.0.0.1", "::ffff:203.0.113.5", trusted) == "203.0.113.5"
    assert client_address("127.0.0.1", "fe80::1%eth0", trusted) == "fe80::1"
    assert client_address("127.0.0.1", "fe80::1%" + "e" * 5000, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "2001:DB8::0:1", trusted) == "2001:db8::1"
    # only the nearest 32 hops are examined: past them, the last trusted one
    chain = ", ".join(["203.0.113.9"] + [f"10.0.0.{i}" for i in range(1, 101)])
    assert client_address("127.0.0.1", chain, trusted) == "10.0.0.69"
    assert client_address("127.0.0.1", ",,," * 1000, trusted) == "127.0.0.1"


# -- JWT subjects and scopes ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ABSENT = object()  # a claim left out of the token


def _token(key, **claims) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-search",
        "scope": "rerank",
        "exp": int(time.time()) + 120,
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not ABSENT}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def jwt_client(tiny_qwen3_path, tmp_path_factory, rsa_key) -> Iterator[TestClient]:
    """API keys and JWTs, 2 requests a minute per client."""
    folder = tmp_path_factory.mktemp("hostile-auth")
    pub = rsa_key.public_key().public_numbers()
    jwks = folder / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "n": _b64(pub.n), "e": _b64(pub.e)}]})
    )
    keys = folder / "keys"
    keys.write_text(f"{KEY}\n")
    yield from running_client(
        settings_for(
            tiny_qwen3_path,
            api_keys_file=str(keys),
            jwt_jwks_file=str(jwks),
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            rate_limit_requests_per_minute=2,
        )
    )


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_a_jwt_subject_cannot_drain_an_api_keys_bucket(jwt_client, rsa_key) -> None:
    posing = _token(rsa_key, sub=fingerprint(KEY))  # the key's client name, as a subject
    assert [
        jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(posing)).status_code
        for _ in range(3)
    ] == [200, 200, 429]
    assert jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(KEY)).status_code == 200


def test_an_overlong_subject_is_an_invalid_token(jwt_client, rsa_key) -> None:
    for sub in ("s" * 10_000, "s" * 257):
        answer = jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(_token(rsa_key, sub=sub)))
        assert answer.status_code == 401, sub[:10]
        assert answer.json()["error"]["message"] == "authorization: invalid credentials"
    longest = _token(rsa_key, sub="t" * 256)
    assert jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(longest)).status_code == 200


def test_a_huge_credential_is_refused_unread(jwt_client, rsa_key) -> None:
    padded = _token(rsa_key, sub="padded", pad="p" * 20_000)  # validly signed, but 20 KB
    for credential in ("k" * 4_000_000, padded):
        answer = jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(credential))
        assert answer.status_code == 401
        assert answer.json()["error"]["message"] == "authorization: invalid credentials"


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": 5},
        {"scope": None},
        {"scope": {"rerank": True}},
        {"scope": ["rerank", 3]},
        {"scope": [None]},
        {"scope": True},
        {"scope": ABSENT, "scp": 7},
        {"scope": ABSENT, "scp": ["rerank", {"x": 1}]},
    ],
    ids=lambda claims: repr({k: v for k, v in claims.items() if v is not ABSENT}),
)
def test_a_malformed_scope_claim_is_an_invalid_token(jwt_client, rsa_key, claims) -> None:
    token = _token(rsa_key, sub="scoped-malformed", **claims)
    answer = jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(token))
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["type"] == "authentication_error" and error["field"] == "authorization"
    assert "scope claim is malformed" in error["message"]
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_well_formed_scope_claims_still_pass(jwt_client, rsa_key) -> None:
    for i, claims in enumerate(
        ({"scope": "a rerank"}, {"scope": ABSENT, "scp": ["rerank", "b"]}, {"scope": []})
    ):
        token = _token(rsa_key, sub=f"scoped-{i}", **claims)
        answer = jwt_client.post("/v1/rerank", json=BODY, headers=_bearer(token))
        assert answer.status_code == 200, (claims, answer.text)


# -- non-ASCII API keys ---------------------------------------------------------------------------
def test_non_ascii_keys_are_refused_at_start_naming_the_file_and_line(
    tiny_qwen3_path, tmp_path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# team keys\n\n{KEY}\nclé-secrète-0123456789\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        create_app(settings_for(tiny_qwen3_path, api_keys_file=str(keys)))
    assert str(keys) in str(err.value) and "line 4" in str(err.value)
    assert "ASCII" in str(err.value) and "secrète" not in str(err.value)
    with pytest.raises(ConfigError, match="API_KEY.*ASCII"):
        create_app(settings_for(tiny_qwen3_path, api_key="naïve-key-0123456789"))


def test_a_reload_with_a_non_ascii_key_keeps_the_previous_keys(
    tiny_qwen3_path, tmp_path, caplog
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    caplog.set_level(logging.WARNING, logger="reranker_server.auth")
    for client in running_client(settings_for(tiny_qwen3_path, api_keys_file=str(keys))):
        replacement = tmp_path / "keys.new"
        replacement.write_text(f"{OTHER_KEY}\nkey-with-ünïcode-0123\n", encoding="utf-8")
        os.replace(replacement, keys)
        time.sleep(1.2)  # the file is re-checked at most every second
        assert client.post("/v1/rerank", json=BODY, headers=_bearer(KEY)).status_code == 200
        assert client.post("/v1/rerank", json=BODY, headers=_bearer(OTHER_KEY)).status_code == 401
    assert "keeping the previous API keys" in caplog.text
    assert "line 2" in caplog.text and "ünïcode" not in caplog.text and OTHER_KEY not in caplog.text


# -- back-off on failed authentication ------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_url(tiny_qwen3_path) -> Iterator[str]:
    """One API key, 3 failed authentications a minute per address, addresses from the proxy."""
    yield from serving(
        tiny_qwen3_path, api_key=KEY, trusted_proxies="127.0.0.1", auth_failures_per_minute=3
    )


def _from(address: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", address)]


def test_failed_authentications_back_the_address_off_without_checking(keyed_url) -> None:
    before = _metric(
        httpx.get(f"{keyed_url}/metrics").text, 'reranker_auth_failures_total{reason="backoff"}'
    )
    wrong = [_post(keyed_url, f"guess-{i}-0123456789", _from("203.0.113.50")) for i in range(3)]
    assert [r.status_code for r in wrong] == [401] * 3
    refused = _post(keyed_url, KEY, _from("203.0.113.50"))  # even the right key: not checked
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["field"] == "authorization"
    assert "too many failed authentication attempts" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert _post(keyed_url, "guess-again-0123456789", _from("203.0.113.50")).status_code == 429
    assert _post(keyed_url, KEY, _from("203.0.113.51")).status_code == 200  # another address
    after = _metric(
        httpx.get(f"{keyed_url}/metrics").text, 'reranker_auth_failures_total{reason="backoff"}'
    )
    assert after - before == 2


def test_successes_do_not_earn_failures(keyed_url) -> None:
    assert [_post(keyed_url, KEY, _from("203.0.113.60")).status_code for _ in range(5)] == [200] * 5
    # no credential guesses nothing: it spends no failure (the back-off still allows 3 below)
    assert [_post(keyed_url, None, _from("203.0.113.60")).status_code for _ in range(5)] == [
        401
    ] * 5
    wrong = [
        _post(keyed_url, "nope-0123456789", _from("203.0.113.60")).status_code for _ in range(4)
    ]
    assert wrong == [401, 401, 401, 429]


def test_info_without_credentials_says_little_and_a_wrong_one_counts(keyed_url) -> None:
    reduced = httpx.get(f"{keyed_url}/info", headers=_from("203.0.113.70"))
    assert reduced.status_code == 200
    body = reduced.json()
    assert set(body) == {"model", "loaded", "version", "auth_required"}
    assert body["auth_required"] is True and body["loaded"] is True
    for _ in range(3):
        wrong = httpx.get(
            f"{keyed_url}/info",
            headers=[*_from("203.0.113.70"), ("Authorization", "Bearer bad-0123456789")],
        )
        assert wrong.status_code == 401
    backed_off = httpx.get(
        f"{keyed_url}/info", headers=[*_from("203.0.113.70"), ("Authorization", f"Bearer {KEY}")]
    )
    assert backed_off.status_code == 429  # /info is no oracle either
    full = httpx.get(
        f"{keyed_url}/info", headers=[*_from("203.0.113.71"), ("Authorization", f"Bearer {KEY}")]
    ).json()
    assert full["settings"]["trusted_proxies"] == "127.0.0.1" and "limits" in full
    assert "api_key" not in full["settings"]


def test_info_without_auth_configured_is_unchanged(tiny_qwen3_path) -> None:
    for client in running_client(settings_for(tiny_qwen3_path)):
        body = client.get("/info").json()
        assert body["auth_required"] is False and "settings" in body and "limits" in body


def test_back_off_off_when_zero(tiny_qwen3_path) -> None:
    for client in running_client(
        settings_for(tiny_qwen3_path, api_key=KEY, auth_failures_per_minute=0)
    ):
        statuses = {
            client.post("/v1/rerank", json=BODY, headers=_bearer(f"x-{i}-0123456789")).status_code
            for i in range(40)
        }
        assert statuses == {401}
        assert client.post("/v1/rerank", json=BODY, headers=_bearer(KEY)).status_code == 200


def test_back_off_is_on_by_default(tiny_qwen3_path) -> None:
    for client in running_client(settings_for(tiny_qwen3_path, api_key=KEY)):
        statuses = [
            client.post("/v1/rerank", json=BODY, headers=_bearer(f"x-{i}-0123456789")).status_code
            for i in range(31)
        ]
        assert statuses == [401] * 30 + [429]
