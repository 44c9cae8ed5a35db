"""``run``: serve one replica with uvicorn until SIGTERM/SIGINT, then drain and return an exit code.

On SIGTERM the replica reports 503 on ``/health`` at once but keeps accepting and serving for
``drain_grace`` seconds, so load balancers that poll ``/health`` see the 503 (not a refused
connection) and stop routing here; then it stops accepting connections, lets in-flight requests
finish for up to ``drain_timeout`` seconds, stops the batcher and returns 0. A second signal
during the grace period skips the rest of it. uvicorn
re-raises the captured signal after its shutdown; a no-op handler installed around ``run`` absorbs
it, so the process exits 0 instead of dying by the signal. A model that fails to load stops the
server and returns 1.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
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

    def __init__(self, config: uvicorn.Config, host: ModelHost, grace: float) -> None:
        super().__init__(config)
        self.host = host
        self.grace = grace
        self._grace_timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Mark the replica draining (``/health`` → 503); after the grace period let uvicorn shut down gracefully."""
        if self._grace_timer is None and self.grace > 0 and not self.should_exit:
            logger.info(
                "signal %d: draining; /health answers 503, serving on for %gs, then up to %ss for in-flight requests",
                sig,
                self.grace,
                self.config.timeout_graceful_shutdown,
            )
            self.host.begin_drain()
            self._grace_timer = threading.Timer(self.grace, super().handle_exit, (sig, None))
            self._grace_timer.daemon = True
            self._grace_timer.start()
            return
        if self._grace_timer is not None:
            self._grace_timer.cancel()  # a second signal: stop accepting now
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
    server = _DrainingServer(config, host, settings.drain_grace)

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
