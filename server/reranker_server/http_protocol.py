"""uvicorn's HTTP protocol with the two bounds it lacks: time to send a request's headers, and
their size.

uvicorn (httptools) waits forever for a request's line and headers: a client that opens
connections and sends a byte now and then (slowloris) holds each one, and its file descriptor,
as long as it likes; it also buffers headers of any size. Here every request must complete its
line and headers within `header_timeout_s` of its first byte (or of the connection opening),
else the server answers 408 and closes; more than `max_header_bytes` of them gets 431 and the
connection closed, before the app sees anything.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reranker_server import metrics

log = logging.getLogger("reranker_server")


class _HeadersTooLarge(Exception):
    pass


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> Any:
    """The protocol class for `uvicorn.Config(http=...)`; uvicorn's default ("auto") where
    httptools is not installed (then without these bounds, logged)."""
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
    except ImportError:
        log.warning("httptools is not installed: header timeouts and size limits are off")
        return "auto"

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _refusal: tuple[int, str] | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes = 0
            if self._header_timer is None:  # a keep-alive connection's next request
                self._arm_header_timer()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            status, reason = self._refusal or (400, msg)
            self._refusal = None
            self._send_and_close(status, reason)

        def _count(self, n: int) -> None:
            self._header_bytes += n
            if self._header_bytes > max_header_bytes:
                metrics.REQUESTS_REFUSED.labels(limit="max_header_bytes").inc()
                self._refusal = (431, f"request line and headers exceed {max_header_bytes} bytes")
                raise _HeadersTooLarge  # the parser stops; data_received answers

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            metrics.REQUESTS_REFUSED.labels(limit="header_timeout").inc()
            self._send_and_close(
                408, f"request line and headers not received within {header_timeout_s:g} s"
            )

        def _send_and_close(self, status: int, message: str) -> None:
            body = message.encode("ascii", "replace")
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
            self.transport.close()

    return GuardedHttpToolsProtocol
