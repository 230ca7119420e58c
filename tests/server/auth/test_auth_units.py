"""API keys (rotation by file and by mounted Secret), JWT verification against a JWKS, per-client
token buckets and the client address behind proxies: the building blocks, without HTTP."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reranker_server.auth import errors
from reranker_server.auth.authenticator import Authenticator
from reranker_server.auth.keys import KeyStore, fingerprint
from reranker_server.auth.ratelimit import (
    Limits,
    RateLimited,
    RateLimiter,
    TooBig,
    client_address,
    parse_networks,
)
from reranker_server.auth.tokens import JwtSettings, TokenVerifier

KEY_A, KEY_B, KEY_C = "alpha-key-0123456789", "bravo-key-0123456789", "charlie-key-012345678"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwks(path: Path, private, kid: str = "k1") -> None:
    pub = private.public_key().public_numbers()
    path.write_text(
        json.dumps(
            {"keys": [{"kty": "RSA", "kid": kid, "use": "sig", "n": _b64(pub.n), "e": _b64(pub.e)}]}
        )
    )


def _token(private, *, kid="k1", alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "https://issuer.example",
        "aud": "reranker",
        "sub": "team-search",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def verifier(tmp_path: Path, rsa_key) -> TokenVerifier:
    _jwks(tmp_path / "jwks.json", rsa_key)
    settings = JwtSettings(
        str(tmp_path / "jwks.json"),
        "https://issuer.example",
        "reranker",
        leeway_s=30,
        required_scope=None,
    )
    return TokenVerifier(settings, reload_every_s=0)


# -- API keys -------------------------------------------------------------------------------------
def test_keys_file_rotation_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n{KEY_A}\n\n{KEY_B}\n")
    store = KeyStore(keys_path=str(path), reload_every_s=0)
    assert store.match(KEY_A).client == fingerprint(KEY_A)
    assert store.match(KEY_C) is None
    tmp = tmp_path / "keys.new"  # add C, keep B, drop A: one atomic replace
    tmp.write_text(f"{KEY_B}\n{KEY_C}\n")
    os.replace(tmp, path)
    assert store.match(KEY_C) is not None and store.match(KEY_B) is not None
    assert store.match(KEY_A) is None


def test_mounted_secret_rotation_by_symlink_swap(tmp_path: Path) -> None:
    """The kubelet's layout: mount/<key> -> ..data/<key>, ..data -> ..<timestamp>/ (swapped)."""
    mount = tmp_path / "mount"
    mount.mkdir()
    v1 = mount / "..2026_12_01_v1"
    v1.mkdir()
    (v1 / "search-team").write_text(KEY_A)
    (v1 / "batch-jobs").write_text(KEY_B)
    (mount / "..data").symlink_to(v1.name)
    for name in ("search-team", "batch-jobs"):
        (mount / name).symlink_to(f"..data/{name}")
    store = KeyStore(keys_path=str(mount), reload_every_s=0)
    assert store.match(KEY_A).client == "search-team"
    assert store.match(KEY_B).client == "batch-jobs"
    v2 = mount / "..2026_12_01_v2"
    v2.mkdir()
    (v2 / "search-team").write_text(KEY_C)  # search-team rotated
    (v2 / "batch-jobs").write_text(KEY_B)
    (mount / "..data_tmp").symlink_to(v2.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    assert store.match(KEY_C).client == "search-team"
    assert store.match(KEY_A) is None and store.match(KEY_B) is not None


def test_a_broken_update_keeps_the_old_keys_and_never_logs_them(tmp_path: Path, caplog) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{KEY_A}\n")
    store = KeyStore(static_key=KEY_B, keys_path=str(path), reload_every_s=0)
    caplog.set_level(logging.DEBUG)
    path.write_text("short\n")  # invalid: too short
    assert store.match(KEY_A) is not None and store.match(KEY_B).client == "api-key"
    assert store.match("short") is None
    logged = caplog.text
    assert KEY_A not in logged and KEY_B not in logged and "short\n" not in logged
    assert "keeping the previous API keys" in logged


def test_bad_keys_are_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("has space in it\n")
    with pytest.raises(ValueError, match="line 1"):
        KeyStore(keys_path=str(tmp_path / "k"))
    with pytest.raises(ValueError, match="API_KEY"):
        KeyStore(static_key="tiny")


# -- JWT ------------------------------------------------------------------------------------------
def test_a_good_token_names_its_subject(verifier, rsa_key) -> None:
    assert verifier.verify(_token(rsa_key)).subject == "team-search"


# claims as functions of the time the test runs (not of when pytest collected it: a long suite
# runs this module many minutes later, and a `not before` fixed at collection has passed)
@pytest.mark.parametrize(
    ("claims", "status", "needle"),
    [
        (lambda now: {"exp": now - 120}, 401, "expired"),
        (lambda now: {"aud": "someone-else"}, 401, "invalid credentials"),
        (lambda now: {"iss": "https://evil.example"}, 401, "invalid credentials"),
        (lambda now: {"nbf": now + 600}, 401, "invalid credentials"),
        (lambda now: {"sub": None}, 401, "invalid credentials"),
        (lambda now: {"exp": None}, 401, "invalid credentials"),
    ],
    ids=["expired", "audience", "issuer", "not-yet-valid", "no-subject", "no-expiry"],
)
def test_bad_claims_are_refused(verifier, rsa_key, claims, status, needle) -> None:
    with pytest.raises(errors.AuthError) as err:
        verifier.verify(_token(rsa_key, **claims(int(time.time()))))
    assert err.value.status == status and needle in err.value.message


def test_expiry_within_leeway_is_accepted(verifier, rsa_key) -> None:
    assert verifier.verify(_token(rsa_key, exp=int(time.time()) - 10)).subject == "team-search"


def test_algorithm_attacks_are_refused(verifier, rsa_key) -> None:
    """alg=none, HS256 signed with the public key as the secret, a foreign key, a tampered body."""
    now = int(time.time())
    claims = {"iss": "https://issuer.example", "aud": "reranker", "sub": "x", "exp": now + 60}
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"k1"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    none_token = f"{header.decode()}.{payload.decode()}."
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT","kid":"k1"}').rstrip(b"=")
    import hashlib
    import hmac

    signing = hs_header + b"." + payload
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    hs_token = (signing + b"." + sig).decode()
    foreign = _token(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    good = _token(rsa_key)
    head, body, signature = good.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["sub"] = "admin"
    tampered = ".".join(
        [
            head,
            base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode(),
            signature,
        ]
    )
    ec_token = _token(ec.generate_private_key(ec.SECP256R1()), alg="ES256")
    for token in (none_token, hs_token, foreign, tampered, ec_token, "ey.not.ajwt"):
        with pytest.raises(errors.AuthError) as err:
            verifier.verify(token)
        assert err.value.status == 401 and err.value.message == "authorization: invalid credentials"


def test_a_missing_scope_is_403(tmp_path, rsa_key) -> None:
    _jwks(tmp_path / "jwks.json", rsa_key)
    settings = JwtSettings(
        str(tmp_path / "jwks.json"), "https://issuer.example", "reranker", required_scope="rerank"
    )
    verifier = TokenVerifier(settings)
    assert verifier.verify(_token(rsa_key, scope="read rerank")).scopes == {"read", "rerank"}
    with pytest.raises(errors.AuthError) as err:
        verifier.verify(_token(rsa_key, scope="read"))
    assert err.value.status == 403 and 'error="insufficient_scope"' in err.value.www_authenticate


def test_symmetric_algorithms_cannot_be_configured() -> None:
    for algs in (("HS256",), ("none",), ()):
        with pytest.raises(ValueError, match="algorithms"):
            JwtSettings("/x", "iss", "aud", algorithms=algs)


def test_jwks_rotation_adds_a_key(tmp_path: Path, verifier, rsa_key) -> None:
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(errors.AuthError):
        verifier.verify(_token(new, kid="k2"))
    path = Path(verifier.settings.jwks_file)
    old, fresh = json.loads(path.read_text())["keys"], tmp_path / "fresh.json"
    _jwks(fresh, new, kid="k2")
    both = {"keys": old + json.loads(fresh.read_text())["keys"]}
    tmp = tmp_path / "jwks.tmp"
    tmp.write_text(json.dumps(both))
    os.replace(tmp, path)
    assert verifier.verify(_token(new, kid="k2")).subject == "team-search"
    assert verifier.verify(_token(rsa_key)).subject == "team-search"


def test_authenticator_challenges(tmp_path: Path, verifier, rsa_key) -> None:
    auth = Authenticator(KeyStore(static_key=KEY_A), verifier)
    assert auth.identify(f"Bearer {KEY_A}", "10.0.0.1").client_class == "api_key"
    assert auth.identify(f"bearer {_token(rsa_key)}", "10.0.0.1").client == "team-search"
    with pytest.raises(errors.AuthError) as err:
        auth.identify(None, "10.0.0.1")
    assert err.value.status == 401 and err.value.www_authenticate == 'Bearer realm="reranker"'
    for header in (f"Bearer {KEY_B}", f"Basic {KEY_A}", "Bearer "):
        with pytest.raises(errors.AuthError) as err:
            auth.identify(header, "10.0.0.1")
        assert err.value.status == 401
        assert KEY_A not in err.value.message and "alpha" not in err.value.www_authenticate
    open_auth = Authenticator(KeyStore())
    assert open_auth.identify(None, "10.0.0.9").client == "10.0.0.9"


# -- rate limits ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_noisy_client_never_limits_a_quiet_one() -> None:
    clock = Clock()
    limiter = RateLimiter(Limits(requests_per_minute=60, pairs_per_minute=600), clock=clock)
    for _ in range(60):
        limiter.admit("noisy", 1)
    with pytest.raises(RateLimited) as err:
        limiter.admit("noisy", 1)  # taken all the same: one request in debt
    assert err.value.limit == "requests" and abs(err.value.retry_after_s - 2.0) < 1e-9
    limiter.admit("quiet", 5)  # its own bucket is full
    clock.now += 2.0  # the debt and one request refill (60/min)
    limiter.admit("noisy", 1)


def test_the_pairs_budget_and_oversized_requests() -> None:
    clock = Clock()
    limiter = RateLimiter(Limits(pairs_per_minute=100), clock=clock)
    limiter.admit("a", 80)
    with pytest.raises(RateLimited) as err:
        limiter.admit("a", 30)  # 20 left: taken, -10; 40 more = 24 s at 100/min
    assert err.value.limit == "pairs" and abs(err.value.retry_after_s - 24.0) < 1e-9
    assert "100 pairs" in str(err.value)
    clock.now += 24.0
    limiter.admit("a", 30)
    with pytest.raises(TooBig, match="101 pairs exceed"):
        limiter.admit("b", 101)


def test_the_tokens_budget_is_charged_after_tokenizing() -> None:
    """Tokens are taken apart from requests and pairs: a client with requests and pairs left is
    refused once its tokens are spent, refills at its rate, and a request larger than a whole
    minute's tokens can never pass; the refusal before reading a body counts tokens too. A
    refused request was tokenized all the same: its tokens are taken, the bucket going into
    debt, and Retry-After is when the bucket will hold them again."""
    clock = Clock()
    limiter = RateLimiter(Limits(requests_per_minute=100, tokens_per_minute=600), clock=clock)
    limiter.admit("a", 2)
    limiter.charge_tokens("a", 500)
    limiter.admit("a", 2)
    with pytest.raises(RateLimited) as err:
        limiter.charge_tokens("a", 200)  # 100 left: taken, -100; 300 more = 30 s at 600/min
    assert err.value.limit == "tokens" and abs(err.value.retry_after_s - 30.0) < 1e-9
    assert "600 tokens per minute" in str(err.value)
    limiter.charge_tokens("b", 600)  # its own bucket
    with pytest.raises(RateLimited) as spent:
        limiter.check_spent("a")  # less than one token left: refused before any body is read
    assert spent.value.limit == "tokens"
    clock.now += 29.9
    with pytest.raises(RateLimited):
        limiter.charge_tokens("a", 200)  # 199 left: short by one, taken again
    clock.now += 40.1  # -1 + 401 = 400
    limiter.check_spent("a")
    limiter.charge_tokens("a", 200)
    with pytest.raises(TooBig, match="601 tokens after truncation exceed") as big:
        limiter.charge_tokens("c", 601)
    assert big.value.limit == "tokens"
    with pytest.raises(RateLimited):
        limiter.check_spent("c")  # tokenized, so taken: in debt
    RateLimiter(Limits(pairs_per_minute=5)).charge_tokens("a", 10**9)  # no tokens limit


def test_tokens_already_tokenized_are_taken_whatever_is_left() -> None:
    """A client that left while its request was tokenized is charged what was tokenized, never
    refused: its bucket goes below zero and it waits until it has refilled."""
    clock = Clock()
    limiter = RateLimiter(Limits(tokens_per_minute=600), clock=clock)
    limiter.charge_tokens("a", 500)
    limiter.charge_tokens("a", 700, refusable=False)  # 100 left: 600 in debt
    with pytest.raises(RateLimited) as spent:
        limiter.check_spent("a")
    assert abs(spent.value.retry_after_s - 60.1) < 1e-9  # 601 tokens at 600 a minute
    clock.now += 60.2
    limiter.check_spent("a")
    limiter.charge_tokens("a", 1)


def test_a_refused_request_is_charged_what_it_asked_for() -> None:
    """Its body was read and parsed: a request refused for its pairs takes its request and its
    pairs all the same, so the client is in debt and its next requests are refused before their
    bodies are read, until the buckets have refilled; Retry-After says when."""
    clock = Clock()
    limiter = RateLimiter(Limits(requests_per_minute=10, pairs_per_minute=10), clock=clock)
    limiter.admit("a", 10)  # pairs spent, 9 requests left
    with pytest.raises(RateLimited) as err:
        limiter.admit("a", 1)  # pairs -1, 8 requests left
    assert err.value.limit == "pairs" and abs(err.value.retry_after_s - 12.0) < 1e-9
    with pytest.raises(RateLimited) as spent:
        limiter.check_spent("a")  # before the next body is read
    assert spent.value.limit == "pairs"
    clock.now += 11.9
    with pytest.raises(RateLimited):
        limiter.check_spent("a")
    clock.now += 0.1
    limiter.check_spent("a")
    limiter.admit("a", 1)


def test_a_charge_takes_a_request_and_its_pairs_and_refuses_nothing() -> None:
    """`charge` (a body read to the byte limit, then refused) takes what `admit` would, into
    debt where the buckets hold less, without raising; the client's next request waits."""
    clock = Clock()
    limiter = RateLimiter(Limits(requests_per_minute=2, pairs_per_minute=10), clock=clock)
    limiter.charge("a", 8)
    limiter.charge("a", 8)  # pairs 10 - 16 = -6, requests 0: no refusal here
    with pytest.raises(RateLimited) as spent:
        limiter.check_spent("a")
    assert spent.value.limit in ("requests", "pairs")
    clock.now += 41.9  # pairs back to 0.98: one request refilled, not yet a pair
    with pytest.raises(RateLimited) as still:
        limiter.check_spent("a")
    assert still.value.limit == "pairs"
    clock.now += 0.1
    limiter.check_spent("a")
    limiter.charge("b", 10)  # another client's buckets
    RateLimiter(Limits()).charge("a", 10**9)  # no limits: nothing to take


def test_client_memory_is_bounded() -> None:
    limiter = RateLimiter(Limits(requests_per_minute=5), max_clients=100)
    for i in range(1000):
        limiter.admit(f"client-{i}", 1)
    assert len(limiter._buckets) == 100


def test_client_address_behind_trusted_proxies() -> None:
    trusted = parse_networks("10.0.0.0/8, 192.168.1.1")
    assert client_address("10.1.2.3", "203.0.113.7, 10.9.9.9", trusted) == "203.0.113.7"
    assert (
        client_address("198.51.100.2", "203.0.113.7", trusted) == "198.51.100.2"
    )  # untrusted peer
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "spoofed, 198.51.100.9", trusted) == "198.51.100.9"
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks("10.0.0.0/8, not-an-ip")
