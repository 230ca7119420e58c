"""Turn a request's Authorization header (and peer address) into an `Identity`."""

from __future__ import annotations

from dataclasses import dataclass

from reranker_server.auth import errors
from reranker_server.auth.keys import KeyStore
from reranker_server.auth.tokens import TokenVerifier, looks_like_jwt

# Client classes label the metrics (a bounded set; clients themselves are never labels).
API_KEY, JWT, ADDRESS = "api_key", "jwt", "address"


@dataclass(frozen=True)
class Identity:
    client: str  # key name, token subject or client address
    client_class: str  # API_KEY | JWT | ADDRESS


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
        if self.keys.enabled:
            key = self.keys.match(credential)
            if key is not None:
                return Identity(key.client, API_KEY)
        if self.tokens is not None and looks_like_jwt(credential):
            return Identity(self.tokens.verify(credential).subject, JWT)
        raise errors.invalid()
