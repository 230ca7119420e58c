"""API keys: one from API_KEY and any number from a mounted file or Secret (API_KEYS_FILE).

A file holds one key per line (blank lines and `#` comments skipped); a directory (a Secret
mounted as a volume) holds one key per data key, the file name naming the client. Keys are
compared in constant time against every key, and never logged: a key file's client name is its
file name, a line's is `key-` + the first 8 hex digits of the key's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from reranker_server.auth.reloading import Reloading, files_of

MIN_KEY_LENGTH = 8


@dataclass(frozen=True)
class ApiKey:
    client: str  # the name the key's client is known by (metrics are per class, not per client)
    secret: bytes


def fingerprint(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _check(key: str, where: str) -> str:
    """`key` when it can be sent in an Authorization header: >= MIN_KEY_LENGTH visible ASCII
    characters (headers arrive as latin-1, so a key with other characters could never match).
    The ValueError says where, never the key."""
    if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ValueError(f"{where}: an API key needs >= {MIN_KEY_LENGTH} characters, no spaces")
    if not all("!" <= c <= "~" for c in key):
        raise ValueError(
            f"{where}: an API key must be printable ASCII (an HTTP header carries no other "
            "characters, so this key could never match)"
        )
    return key


def parse_keys(path: Path) -> tuple[ApiKey, ...]:
    """Every key a mounted file or directory holds; ValueError naming the file and line of a
    key that is unusable."""
    keys: list[ApiKey] = []
    directory = path.is_dir()
    for file in files_of(path):
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{file}: not UTF-8 text") from None
        numbered = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1)]
        numbered = [(n, ln) for n, ln in numbered if ln and not ln.startswith("#")]
        for n, line in numbered:
            key = _check(line, f"{file} line {n}")
            name = file.name if directory and len(numbered) == 1 else fingerprint(key)
            keys.append(ApiKey(name, key.encode()))
    return tuple(keys)


class KeyStore:
    """The keys in force now: the static one plus the reloaded file's."""

    def __init__(
        self,
        static_key: str | None = None,
        keys_path: str | None = None,
        reload_every_s: float = 1.0,
    ) -> None:
        self._static = (
            (ApiKey("api-key", _check(static_key, "API_KEY").encode()),) if static_key else ()
        )
        self._file = (
            Reloading(keys_path, parse_keys, every_s=reload_every_s, what="API keys")
            if keys_path
            else None
        )

    @property
    def enabled(self) -> bool:
        return bool(self._static) or self._file is not None

    def keys(self) -> tuple[ApiKey, ...]:
        return self._static + (self._file.value if self._file is not None else ())

    def match(self, presented: str) -> ApiKey | None:
        """The key equal to `presented`, comparing with every key (no early exit)."""
        token = presented.encode()
        found: ApiKey | None = None
        for key in self.keys():
            if hmac.compare_digest(token, key.secret) and found is None:
                found = key
        return found
