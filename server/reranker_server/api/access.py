"""Who may score, and how much: the Authenticator, RateLimiter and failed-authentication back-off
built from the settings, the FastAPI dependency that identifies a caller, and the per-client
admission of a request."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request

from reranker_contract import Env
from reranker_server.api.errors import APIError
from reranker_server.auth import errors as auth_errors
from reranker_server.auth.authenticator import Authenticator, Identity
from reranker_server.auth.backoff import BackedOff, FailureBackoff
from reranker_server.auth.keys import KeyStore
from reranker_server.auth.ratelimit import (
    Limits,
    RateLimited,
    RateLimiter,
    TooBig,
    client_address,
    parse_networks,
)
from reranker_server.auth.tokens import JwtSettings, TokenVerifier
from reranker_server.config import ConfigError, Settings
from reranker_server.contracts import TokenCharge
from reranker_server.metrics import AUTH_FAILURES, RATE_LIMITED


@dataclass
class Access:
    authenticator: Authenticator
    limiter: RateLimiter
    trusted: tuple
    backoff: FailureBackoff

    @classmethod
    def from_settings(cls, s: Settings) -> Access:
        """ConfigError naming the variable for an unusable combination or file."""
        try:
            keys = KeyStore(static_key=s.api_key, keys_path=s.api_keys_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{Env.API_KEYS_FILE} / {Env.API_KEY}: {exc}") from None
        tokens = None
        if s.jwt_jwks_file:
            if not (s.jwt_issuer and s.jwt_audience):
                raise ConfigError(
                    f"{Env.JWT_JWKS_FILE} needs {Env.JWT_ISSUER} and {Env.JWT_AUDIENCE}"
                )
            algorithms = tuple(a.strip() for a in s.jwt_algorithms.split(",") if a.strip())
            try:
                tokens = TokenVerifier(
                    JwtSettings(
                        s.jwt_jwks_file,
                        s.jwt_issuer,
                        s.jwt_audience,
                        algorithms,
                        s.jwt_leeway_seconds,
                        s.jwt_required_scope or None,
                    )
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{Env.JWT_JWKS_FILE} / {Env.JWT_ALGORITHMS}: {exc}") from None
        try:
            trusted = parse_networks(s.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"{Env.TRUSTED_PROXIES}: {exc}") from None
        limits = Limits(
            s.rate_limit_requests_per_minute,
            s.rate_limit_pairs_per_minute,
            s.rate_limit_tokens_per_minute,
        )
        backoff = FailureBackoff(s.auth_failures_per_minute)
        return cls(Authenticator(keys, tokens), RateLimiter(limits), trusted, backoff)

    def address(self, request: Request) -> str:
        """The client's address: the peer, or from every X-Forwarded-For line (in order) when
        the peer is a trusted proxy (a proxy that appends its own line is read past)."""
        peer = request.client.host if request.client else None
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
        return client_address(peer, forwarded, self.trusted)

    def identify(self, request: Request) -> Identity:
        """The caller, or APIError: 401/403 for missing or wrong credentials (a wrong one spends
        one of the address's failures; a missing one guesses nothing and spends none), 429 while
        the address is backed off (credential unread)."""
        address = self.address(request)
        if self.authenticator.required:
            try:
                self.backoff.check(address)
            except BackedOff as exc:
                AUTH_FAILURES.labels(reason="backoff").inc()
                raise APIError(
                    429,
                    str(exc),
                    field="authorization",
                    type="rate_limit_error",
                    headers={"Retry-After": _retry_after(exc.retry_after_s)},
                ) from None
        try:
            return self.authenticator.identify(request.headers.get("authorization"), address)
        except auth_errors.AuthError as exc:
            if exc.status == 401 and exc.reason != "missing":
                self.backoff.failed(address)
            AUTH_FAILURES.labels(reason=exc.reason).inc()
            kind = "permission_error" if exc.status == 403 else "authentication_error"
            raise APIError(
                exc.status,
                exc.message,
                field="authorization",
                type=kind,
                headers={"WWW-Authenticate": exc.www_authenticate},
            ) from None

    def refuse_if_spent(self, identity: Identity) -> None:
        """429 before the body is read when the client has no request, pair or token left."""
        try:
            self.limiter.check_spent(identity.key)
        except RateLimited as exc:
            raise _rate_limited(exc, identity) from None

    def admit(self, identity: Identity, pairs: int, documents_field: str) -> None:
        """Take this request from the client's allowance, or answer 429 (413 when it exceeds a
        whole minute's pairs)."""
        with _answered(identity, documents_field):
            self.limiter.admit(identity.key, pairs)

    def charge_oversized_body(self, identity: Identity, pairs: int) -> None:
        """Charge a body refused once it passed the byte limit as a request of `pairs` pairs
        (the largest the server admits: reading it was that much work), refusing nothing, so
        that sending bodies bound to be refused is not free."""
        self.limiter.charge(identity.key, pairs)

    def tokens_charge(self, identity: Identity, documents_field: str) -> TokenCharge | None:
        """What the engine calls with a request's tokens once it is tokenized (before it is
        queued): takes them from the client's allowance, or raises the 429 (413 when they exceed
        a whole minute's tokens; `contracts.TokenCharge`). None when no tokens limit is set."""
        if not self.limiter.limits.counts_tokens:
            return None

        def charge(tokens: int, *, refusable: bool = True) -> None:
            with _answered(identity, documents_field):
                self.limiter.charge_tokens(identity.key, tokens, refusable=refusable)

        return charge


@contextmanager
def _answered(identity: Identity, documents_field: str) -> Iterator[None]:
    """The limiter's refusals inside the block as the client's answers: 429, or 413 for a
    request larger than a whole minute of a limit."""
    try:
        yield
    except RateLimited as exc:
        raise _rate_limited(exc, identity) from None
    except TooBig as exc:
        raise _too_big(exc, identity, documents_field) from None


def _too_big(exc: TooBig, identity: Identity, documents_field: str) -> APIError:
    """The 413 of a request larger than a whole minute of a per-client limit."""
    RATE_LIMITED.labels(limit=exc.limit, client_class=identity.client_class).inc()
    return APIError(
        413,
        str(exc).replace("documents", documents_field, 1),
        field=documents_field,
        type="too_many_documents",
    )


def _rate_limited(exc: RateLimited, identity: Identity) -> APIError:
    """The 429 of a spent per-client limit (counted by limit and client class)."""
    RATE_LIMITED.labels(limit=exc.limit, client_class=identity.client_class).inc()
    return APIError(
        429,
        str(exc),
        type="rate_limit_error",
        headers={"Retry-After": _retry_after(exc.retry_after_s)},
        extra={"limit": exc.limit, "per_minute": exc.per_minute},
    )


def _retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def authenticate(request: Request) -> None:
    """FastAPI dependency of the scoring routes: the caller's Identity in request.state (the
    request guard identified it before reading the body; once, so a failure counts once)."""
    if getattr(request.state, "identity", None) is None:
        request.state.identity = request.app.state.server.access.identify(request)
