"""The errors authentication and rate limiting answer with (mapped to HTTP by the API layer)."""

from __future__ import annotations

REALM = "reranker"


class AuthError(Exception):
    """401 (no or bad credentials, expired token) or 403 (valid but not allowed here).

    The message never says which keys exist or which part of a token failed beyond what the
    client must fix (expiry, scope). `reason` labels the failures metric: missing, invalid,
    expired or forbidden."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str,
        error: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}"'
        if description:
            challenge += f', error_description="{description}"'
        self.www_authenticate = challenge


def missing() -> AuthError:
    return AuthError(
        401,
        "authorization: a bearer token is required ('Authorization: Bearer <key or token>')",
        reason="missing",
    )


def invalid() -> AuthError:
    return AuthError(
        401, "authorization: invalid credentials", reason="invalid", error="invalid_token"
    )


def malformed_scope() -> AuthError:
    return AuthError(
        401,
        "authorization: the token's scope claim is malformed (a space-separated string or a "
        "list of strings)",
        reason="invalid",
        error="invalid_token",
        description="malformed scope claim",
    )


def expired() -> AuthError:
    return AuthError(
        401,
        "authorization: the token has expired",
        reason="expired",
        error="invalid_token",
        description="the token has expired",
    )


def forbidden(scope: str) -> AuthError:
    return AuthError(
        403,
        f"authorization: the token lacks the scope {scope!r} this route needs",
        reason="forbidden",
        error="insufficient_scope",
        description=f"requires scope {scope}",
    )
