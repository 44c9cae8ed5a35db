"""uvicorn's HTTP protocol with read deadlines and a connection cap, against slow and idle clients.

uvicorn (0.30 to 0.54) times out only the idle gap *between* requests (``timeout_keep_alive``);
a client that connects and sends nothing, or dribbles its headers or body a byte at a time,
holds its connection open for as long as it likes. ``guarded_protocol`` returns a subclass of
uvicorn's httptools protocol that adds:

- a header deadline: from the moment a connection opens (or a keep-alive connection starts its
  next request) the request line and headers must arrive within ``header_timeout`` seconds, else
  the server answers ``408`` and closes;
- a body deadline: the whole body must arrive within ``body_timeout`` seconds of the headers,
  else ``408`` (if no response has started) and close; the handler waiting for the body sees a
  disconnect;
- a connection cap: a connection beyond ``max_connections`` open at once is answered ``503`` with
  ``Retry-After`` and closed before anything is read from it.

Each early close is counted in ``fastembed_adapter_http_connections_closed_total{reason}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["guarded_protocol"]

_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


def _response(status: int, kind: str, message: str, extra: bytes = b"") -> bytes:
    """A complete ``Connection: close`` response with the service's error body."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n".encode()
        + b"content-type: application/json\r\n"
        + extra
        + b"connection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def guarded_protocol(
    header_timeout: float, body_timeout: float, max_connections: int, closed: Counter
) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these limits; ``closed`` counts early closes."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        """httptools protocol with a header deadline, a body deadline and a connection cap."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None

        def _arm(self, seconds: float, phase: str) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired, phase)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self, phase: str) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            closed.labels(f"{phase}_timeout").inc()
            limit = header_timeout if phase == "header" else body_timeout
            what = "request line and headers" if phase == "header" else "request body"
            self.logger.warning("closing the connection of %s: the %s took over %gs", self.client, what, limit)
            idle = self.cycle is None or self.cycle.response_complete  # no response being written now
            if idle if phase == "header" else not self.cycle.response_started:
                message = f"The {what} did not arrive within {limit:g} s."
                self.transport.write(_response(408, "request_timeout", message))
            self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                closed.labels("connection_cap").inc()
                transport.write(
                    _response(
                        503,
                        "overloaded",
                        f"The server holds {max_connections} connections, its limit; retry shortly.",
                        b"retry-after: 1\r\n",
                    )
                )
                transport.close()
                return
            self._arm(header_timeout, "header")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # a keep-alive connection starts its next request
                self._arm(header_timeout, "header")

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._arm(body_timeout, "body")

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

    return GuardedHttpProtocol
