"""The one ASGI middleware around every route: request id, API key, metrics, access log, last-resort 500.

- ``X-Request-ID``: taken from the request when it is a sane token (≤ 128 chars of
  ``[A-Za-z0-9._:-]``), otherwise a new UUID; always echoed in the response.
- API key: when configured, every request but a GET (or HEAD) of a public path (the health
  checks) needs ``Authorization: Bearer <key>``. The header's raw bytes are compared with the
  key's UTF-8 bytes by :func:`hmac.compare_digest` (constant time): no lossy decoding, so no two
  keys share a header, and a header that is not UTF-8 simply does not match (401).
- One log record per request on the ``fastembed_adapter.server.access`` logger, with the fields in
  ``extra`` (the CLI renders them as one JSON line).
- Any exception that escapes a route becomes a JSON 500 for that request only; the traceback is logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import UnauthorizedError, error_body
from .metrics import ServerMetrics

__all__ = ["ObservabilityMiddleware"]

access_logger = logging.getLogger("fastembed_adapter.server.access")
logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _raw_header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    raw = _raw_header(scope, name)
    return None if raw is None else raw.decode("latin-1")


def _authorized(scope: Scope, key: bytes) -> bool:
    """Whether the request's ``Authorization: Bearer <token>`` holds ``key`` (the key's UTF-8 bytes).

    Bytes against bytes: the token is never decoded, so bytes that are not UTF-8 cannot equal
    the key's (always valid) UTF-8 and a client's non-ASCII key matches exactly its own bytes.
    """
    scheme, _, token = (_raw_header(scope, b"authorization") or b"").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(b" \t"), key)


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    """Send a complete JSON response straight to the ASGI ``send``."""
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class ObservabilityMiddleware:
    """Pure ASGI middleware (no response buffering) wrapping the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServerMetrics,
        api_key: str | None = None,
        endpoints: frozenset[str] = frozenset(),
        public: frozenset[str] = frozenset(),
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the application.
            metrics: the service's collectors.
            api_key: enables bearer authentication (checked by ``ServerSettings``: non-empty, no
                control characters, no surrounding whitespace).
            endpoints: the paths the metrics label by name (any other path is ``other``).
            public: paths whose GET/HEAD needs no API key.
        """
        self.app = app
        self.metrics = metrics
        self.api_key = api_key.encode("utf-8") if api_key else None
        self.endpoints = endpoints
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request (lifespan and websocket scopes pass through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given is not None and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        path = str(scope.get("path", ""))
        endpoint = path if path in self.endpoints else "other"
        public = path in self.public and scope.get("method") in ("GET", "HEAD")
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        in_progress = self.metrics.in_progress.labels(endpoint)
        in_progress.inc()
        try:
            if self.api_key is not None and not public and not _authorized(scope, self.api_key):
                code, body, headers = error_body(
                    UnauthorizedError("Missing or wrong API key: send 'Authorization: Bearer <key>'."), request_id
                )
                await send_json(send_with_id, code, body, headers)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as exc:  # a bug in one request must not take the others (or the process) down
            logger.exception("unhandled error in request %s", request_id)
            if not started:
                code, body, headers = error_body(exc, request_id)
                await send_json(send_with_id, code, body, headers)
        finally:
            in_progress.dec()
            elapsed = time.perf_counter() - start
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(elapsed)
            fields: dict[str, Any] = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": scope["client"][0] if scope.get("client") else None,
            }
            for key in ("texts", "tokens", "error"):
                if key in state:
                    fields[key] = state[key]
            access_logger.info("%s %s %d", fields["method"], path, status, extra={"fields": fields})
