"""JWT bearer tokens, verified with PyJWT against a JWKS file mounted from a Secret or ConfigMap.

Only asymmetric algorithms from the configured allow-list are accepted (never `none`, never an
HMAC algorithm: a token signed with HS256 using the public key as the secret is the classic
confusion attack). The token must name an issuer and an audience equal to the configured ones,
carry `exp`, and is accepted within `leeway` seconds of `exp`/`nbf`. The client is `sub` (a
string of at most MAX_SUBJECT_LENGTH characters); `scope` / `scp` is a space-separated string or
a list of strings, anything else makes the token invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_server.auth import errors
from reranker_server.auth.reloading import Reloading

# The longest `sub` accepted: the subject names a client the rate limiter remembers.
MAX_SUBJECT_LENGTH = 256

ASYMMETRIC = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True)
class JwtSettings:
    jwks_file: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_s: int = 30
    required_scope: str | None = None

    def __post_init__(self) -> None:
        bad = [a for a in self.algorithms if a not in ASYMMETRIC]
        if bad or not self.algorithms:
            raise ValueError(f"jwt algorithms: only {', '.join(ASYMMETRIC)} are allowed, got {bad}")
        if not self.issuer or not self.audience:
            raise ValueError("jwt: issuer and audience are required")


def load_jwks(path: Path) -> dict[str, Any]:
    """{kid or "": PyJWK} of a JWKS document (a file, or the single file of a mounted dir)."""
    import jwt

    file = (
        path
        if path.is_file()
        else next(
            iter(sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")))
        )
    )
    data = json.loads(file.read_text(encoding="utf-8"))
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError('jwks: not a JWKS document ({"keys": [{...}, ...]})')
    keys = {}
    for entry in entries:
        try:
            keys[entry.get("kid", "")] = jwt.PyJWK(entry)
        except jwt.PyJWKError as exc:
            raise ValueError(  # PyJWT's message quotes the key: name its type only
                f"jwks: unusable key {entry.get('kid', '')!r} (kty {entry.get('kty')!r}): "
                f"{type(exc).__name__}"
            ) from None
    if not keys:
        raise ValueError("jwks: no usable keys")
    return keys


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


@dataclass(frozen=True)
class Claims:
    subject: str
    scopes: frozenset[str]


class TokenVerifier:
    def __init__(self, settings: JwtSettings, reload_every_s: float = 1.0) -> None:
        self.settings = settings
        self._jwks = Reloading(settings.jwks_file, load_jwks, every_s=reload_every_s, what="JWKS")

    def verify(self, token: str) -> Claims:
        """The token's claims; AuthError (401 invalid or expired, 403 missing scope)."""
        import jwt

        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.invalid() from None
        if header.get("alg") not in s.algorithms:
            raise errors.invalid()
        keys = self._jwks.value
        key = keys.get(header.get("kid", "")) or (
            next(iter(keys.values())) if len(keys) == 1 else None
        )
        if key is None:
            raise errors.invalid()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise errors.expired() from None
        except (jwt.PyJWTError, TypeError, ValueError):  # TypeError: key of another type
            raise errors.invalid() from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
            raise errors.invalid()
        scopes = _scopes(claims)
        if s.required_scope and s.required_scope not in scopes:
            raise errors.forbidden(s.required_scope)
        return Claims(subject, scopes)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (else `scp`): a space-separated string or a list of strings; AuthError for any
    other shape."""
    name = "scope" if "scope" in claims else "scp"
    value = claims.get(name, ())
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return frozenset(value)
    raise errors.malformed_scope()
