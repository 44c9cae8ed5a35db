"""Prometheus collectors of the service: requests by endpoint and status, latency, queue, micro-batches.

They live in the app's own ``CollectorRegistry`` next to the encoder's stage histograms
(:mod:`fastembed_adapter.metrics`), so ``/metrics`` shows both and two apps in one process
(tests) never collide. Labels stay low-cardinality: ``endpoint`` is a fixed route path or ``other``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..metrics import COUNT_BUCKETS, DURATION_BUCKETS, PREFIX, TOKEN_BUCKETS

__all__ = ["ServerMetrics"]


class ServerMetrics:
    """The service's collectors, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create every collector in ``registry``."""
        self.registry = registry
        self.requests = Counter(
            f"{PREFIX}_http_requests_total",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency by endpoint, from the first byte read to the last byte sent",
            ["endpoint"],
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.in_progress = Gauge(
            f"{PREFIX}_http_requests_in_progress",
            "HTTP requests being handled, by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth",
            "Embedding requests waiting for a micro-batch (not yet running)",
            registry=registry,
        )
        self.queue_wait = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Time a request waited in the queue before its micro-batch started",
            registry=registry,
            buckets=DURATION_BUCKETS,
        )
        self.batch_texts = Histogram(
            f"{PREFIX}_microbatch_texts",
            "Texts per micro-batch (one encode call on the worker thread)",
            registry=registry,
            buckets=COUNT_BUCKETS,
        )
        self.batch_requests = Histogram(
            f"{PREFIX}_microbatch_requests",
            "Requests merged into one micro-batch",
            registry=registry,
            buckets=COUNT_BUCKETS,
        )
        self.batch_tokens = Histogram(
            f"{PREFIX}_microbatch_tokens",
            "Tokens (after truncation, before padding) per micro-batch",
            registry=registry,
            buckets=TOKEN_BUCKETS,
        )
        self.connections_closed = Counter(
            f"{PREFIX}_http_connections_closed_total",
            "Connections the server closed early, by reason (header_timeout, body_timeout, connection_cap)",
            ["reason"],
            registry=registry,
        )
        self.rejected = Counter(
            f"{PREFIX}_rejected_total",
            "Embedding requests refused before encoding, by reason (queue_full, not_ready)",
            ["reason"],
            registry=registry,
        )
