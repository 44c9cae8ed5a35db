"""``run``: serve one replica with uvicorn until SIGTERM/SIGINT, then drain and return an exit code.

On SIGTERM the replica reports 503 on ``/health``, stops accepting connections, lets in-flight
requests finish for up to ``drain_timeout`` seconds, stops the batcher and returns 0. uvicorn
re-raises the captured signal after its shutdown; a no-op handler installed around ``run`` absorbs
it, so the process exits 0 instead of dying by the signal. A model that fails to load stops the
server and returns 1.
"""

from __future__ import annotations

import logging
import math
import signal
from types import FrameType

import uvicorn

from .app import create_app
from .engine import ModelHost, State
from .protocol import guarded_protocol
from .settings import ServerSettings

__all__ = ["run"]

logger = logging.getLogger(__name__)
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the host to drain the moment a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, host: ModelHost) -> None:
        super().__init__(config)
        self.host = host

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Mark the replica draining (``/health`` → 503), then let uvicorn shut down gracefully."""
        timeout = self.config.timeout_graceful_shutdown
        logger.info("signal %d: draining (up to %ss for in-flight requests)", sig, timeout)
        self.host.begin_drain()
        super().handle_exit(sig, frame)


def _absorb(sig: int, frame: FrameType | None) -> None:
    """Handles the signal uvicorn re-raises after its graceful shutdown."""


def run(settings: ServerSettings) -> int:
    """Serve until stopped; 0 after a graceful shutdown, 1 when the model failed to load."""
    app = create_app(settings)
    host: ModelHost = app.state.host
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the CLI configured logging
        access_log=False,  # the middleware writes one structured line per request
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        http=guarded_protocol(
            settings.header_timeout,
            settings.body_timeout,
            settings.max_connections,
            host.metrics.connections_closed,
        ),
    )
    server = _DrainingServer(config, host)

    def stop_on_failure() -> None:
        server.should_exit = True

    host.on_fatal = stop_on_failure
    previous = {sig: signal.signal(sig, _absorb) for sig in _SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if host.state is State.FAILED else 0
