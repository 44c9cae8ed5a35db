"""Prometheus metrics of the encoder: per-stage durations, sizes, cache and error counters.

Collectors are created once per ``CollectorRegistry`` and shared by every encoder that uses
it (label ``model``), so two encoders in one process never collide. ``metrics=False``
gives a no-op recorder.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the first collectors are made: the encoder does it beside its session build
    from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PREFIX", "EncoderMetrics", "start_metrics_server"]

PREFIX = "fastembed_adapter"
STAGES = ("tokenize", "inference", "pooling", "encode")
# What one observation of each stage covers (the encoder tokenizes a window of batches at a time).
_PER = {
    "tokenize": "per window of batches tokenized together (tokenizing and padding)",
    "inference": "per ONNX Runtime batch",
    "pooling": "per ONNX Runtime batch",
    "encode": "per encode() call",
}
# 10 µs .. ~10 s, roughly x2.5 per bucket: a cache hit is tens of µs, a long batch seconds.
DURATION_BUCKETS = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
COUNT_BUCKETS = tuple(float(2**i) for i in range(0, 11))  # 1 .. 1024 texts
TOKEN_BUCKETS = tuple(float(2**i) for i in range(2, 17))  # 4 .. 65536 tokens


@dataclass(frozen=True)
class _Collectors:
    stage_seconds: dict[str, Histogram]
    texts: Histogram
    batch_size: Histogram
    tokens: Histogram
    cache_hits: Counter
    cache_misses: Counter
    errors: Counter


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _collectors(registry: CollectorRegistry) -> _Collectors:
    from prometheus_client import Counter, Histogram

    with _LOCK:
        found = _BY_REGISTRY.get(registry)
        if found is None:
            labels = ["model"]
            found = _Collectors(
                stage_seconds={
                    stage: Histogram(
                        f"{PREFIX}_{stage}_seconds",
                        f"Time spent in the {stage} stage, {_PER[stage]}",
                        labels,
                        registry=registry,
                        buckets=DURATION_BUCKETS,
                    )
                    for stage in STAGES
                },
                texts=Histogram(
                    f"{PREFIX}_texts_per_call",
                    "Texts per encode() call",
                    labels,
                    registry=registry,
                    buckets=COUNT_BUCKETS,
                ),
                batch_size=Histogram(
                    f"{PREFIX}_batch_size",
                    "Texts per ONNX Runtime batch",
                    labels,
                    registry=registry,
                    buckets=COUNT_BUCKETS,
                ),
                tokens=Histogram(
                    f"{PREFIX}_tokens_per_batch",
                    "Padded tokens per ONNX Runtime batch",
                    labels,
                    registry=registry,
                    buckets=TOKEN_BUCKETS,
                ),
                cache_hits=Counter(f"{PREFIX}_cache_hits", "Embedding cache hits", labels, registry=registry),
                cache_misses=Counter(f"{PREFIX}_cache_misses", "Embedding cache misses", labels, registry=registry),
                errors=Counter(
                    f"{PREFIX}_errors", "encode() errors by exception type", ["model", "type"], registry=registry
                ),
            )
            _BY_REGISTRY[registry] = found
        return found


class EncoderMetrics:
    """Records one encoder's measurements under its ``model`` label (no-op when disabled)."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None, enabled: bool = True) -> None:
        """Attach to ``registry`` (default: prometheus_client's global one)."""
        self.model = model
        self._c = _collectors(registry if registry is not None else _default_registry()) if enabled else None
        # The per-call histograms' labelled children, looked up once: labels() takes a lock and a
        # dict lookup, a measurable share of a 2 ms encode() that records seven observations.
        self._observe = (
            {
                **{stage: histogram.labels(model) for stage, histogram in self._c.stage_seconds.items()},
                "texts": self._c.texts.labels(model),
                "batch_size": self._c.batch_size.labels(model),
                "tokens": self._c.tokens.labels(model),
            }
            if self._c is not None
            else {}
        )

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Observe the duration of the ``with`` body in ``<prefix>_<stage>_seconds``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._observe:
                self._observe[stage].observe(time.perf_counter() - start)

    @contextmanager
    def observe_call(self) -> Iterator[None]:
        """Time a whole encode() call and count the exception class if it fails."""
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.error(exc)
            raise
        finally:
            if self._observe:
                self._observe["encode"].observe(time.perf_counter() - start)

    def call(self, texts: int, hits: int, misses: int) -> None:
        """One encode() call: its size and cache outcome."""
        if self._c is not None:
            self._observe["texts"].observe(texts)
            if hits:
                self._c.cache_hits.labels(self.model).inc(hits)
            if misses:
                self._c.cache_misses.labels(self.model).inc(misses)

    def batch(self, size: int, tokens: int) -> None:
        """One ONNX Runtime batch."""
        if self._observe:
            self._observe["batch_size"].observe(size)
            self._observe["tokens"].observe(tokens)

    def error(self, exc: BaseException) -> None:
        """Count a failed call by exception class name."""
        if self._c is not None:
            self._c.errors.labels(self.model, type(exc).__name__).inc()


def start_metrics_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None) -> None:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread (for scripts without ``serve``)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=registry if registry is not None else _default_registry())


def _default_registry() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY
