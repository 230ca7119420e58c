"""Turn a request's Authorization header (and client address) into an `Identity`."""

from __future__ import annotations

from dataclasses import dataclass

from reranker_server.auth import errors
from reranker_server.auth.keys import KeyStore
from reranker_server.auth.tokens import MAX_SUBJECT_LENGTH, TokenVerifier, looks_like_jwt

# Client classes label the metrics (a bounded set; clients themselves are never labels).
API_KEY, JWT, ADDRESS = "api_key", "jwt", "address"
# The longest client name: a token subject (key names are file names, addresses are normalised).
MAX_CLIENT_LENGTH = MAX_SUBJECT_LENGTH
# A longer credential is no key and no token worth parsing: refused as invalid unread.
MAX_CREDENTIAL_LENGTH = 16 * 1024


@dataclass(frozen=True)
class Identity:
    client: str  # key name, token subject or client address
    client_class: str  # API_KEY | JWT | ADDRESS

    def __post_init__(self) -> None:
        if len(self.client) > MAX_CLIENT_LENGTH:  # every source bounds it; this keeps it so
            raise ValueError(f"a client name is at most {MAX_CLIENT_LENGTH} characters")

    @property
    def key(self) -> tuple[str, str]:
        """What the rate limiter counts by: classes apart, so a token whose subject spells a
        key's name never shares that key's allowance."""
        return (self.client_class, self.client)


class Authenticator:
    """API keys and/or JWTs; with neither configured every caller is known by its address."""

    def __init__(self, keys: KeyStore, tokens: TokenVerifier | None = None) -> None:
        self.keys, self.tokens = keys, tokens

    @property
    def required(self) -> bool:
        return self.keys.enabled or self.tokens is not None

    def identify(self, authorization: str | None, address: str) -> Identity:
        """The caller; AuthError when credentials are required and missing or wrong."""
        if not self.required:
            return Identity(address, ADDRESS)
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise errors.missing()
        if len(credential) > MAX_CREDENTIAL_LENGTH:
            raise errors.invalid()
        if self.keys.enabled:
            key = self.keys.match(credential)
            if key is not None:
                return Identity(key.client, API_KEY)
        if self.tokens is not None and looks_like_jwt(credential):
            return Identity(self.tokens.verify(credential).subject, JWT)
        raise errors.invalid()
