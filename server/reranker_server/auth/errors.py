"""The errors authentication and rate limiting answer with (mapped to HTTP by the API layer)."""

from __future__ import annotations

REALM = "reranker"


class AuthError(Exception):
    """401 (no or bad credentials, expired token) or 403 (valid but not allowed here).

    The message never says which keys exist or which part of a token failed beyond what the
    client must fix (expiry, scope)."""

    def __init__(
        self, status: int, message: str, *, error: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}"'
        if description:
            challenge += f', error_description="{description}"'
        self.www_authenticate = challenge


def missing() -> AuthError:
    return AuthError(
        401, "authorization: a bearer token is required ('Authorization: Bearer <key or token>')"
    )


def invalid() -> AuthError:
    return AuthError(401, "authorization: invalid credentials", error="invalid_token")


def expired() -> AuthError:
    return AuthError(
        401,
        "authorization: the token has expired",
        error="invalid_token",
        description="the token has expired",
    )


def forbidden(scope: str) -> AuthError:
    return AuthError(
        403,
        f"authorization: the token lacks the scope {scope!r} this route needs",
        error="insufficient_scope",
        description=f"requires scope {scope}",
    )
