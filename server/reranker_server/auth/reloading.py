"""Re-read a mounted file or directory when it changes (Kubernetes updates mounted Secrets and
ConfigMaps in place by swapping a `..data` symlink)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("reranker_server.auth")
T = TypeVar("T")


def files_of(path: Path) -> list[Path]:
    """The regular files a mounted path holds: itself, or a directory's visible entries."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
    return [path]


def _signature(path: Path) -> tuple:
    out = []
    for file in files_of(path):
        st = file.stat()  # follows the ..data symlinks
        out.append((file.name, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class Reloading(Generic[T]):
    """`value` is `load(path)`, re-run when the path's files change (checked at most every
    `every_s`). A failed reload keeps the previous value, so a half-written update never locks
    everyone out; the first load must succeed."""

    def __init__(
        self,
        path: str | os.PathLike,
        load: Callable[[Path], T],
        *,
        every_s: float = 1.0,
        what: str = "file",
    ) -> None:
        self.path, self._load, self.every_s, self.what = Path(path), load, every_s, what
        self._lock = threading.Lock()
        self._signature = _signature(self.path)
        self._value = load(self.path)
        self._checked = time.monotonic()
        self.reloads = 0

    @property
    def value(self) -> T:
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return self._value
        with self._lock:
            if now - self._checked >= self.every_s:
                self._checked = now
                self._refresh()
        return self._value

    def _refresh(self) -> None:
        try:
            signature = _signature(self.path)
            if signature == self._signature:
                return
            value = self._load(self.path)
        except (OSError, ValueError) as exc:  # the loaders' messages never quote a secret
            log.warning(
                "keeping the previous %s: cannot reload %s: %s: %s",
                self.what,
                self.path,
                type(exc).__name__,
                exc,
            )
            return
        self._value, self._signature = value, signature
        self.reloads += 1
        log.info("reloaded the %s from %s", self.what, self.path)
