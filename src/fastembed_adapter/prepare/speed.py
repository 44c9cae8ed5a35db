"""A quick in-process benchmark for the report: batch-1 latency and batch-32 throughput per backend.

The full side-by-side benchmark (fresh process per backend, interleaved, repeated) lives in ``bench/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import available_cpus
from ..texts import calibration_texts
from .report import QuickBenchmark, SpeedFigures

__all__ = ["fastest_runtime", "quick_benchmark"]

_QUERIES = 40
_WARMUP = 5


def _measure(encode: Callable[[Any], Any], queries: list[str], passages: list[str]) -> SpeedFigures:
    for query in queries[:_WARMUP]:
        encode(query)
    latencies = []
    for query in queries:
        start = time.perf_counter()
        encode(query)
        latencies.append((time.perf_counter() - start) * 1e3)
    start = time.perf_counter()
    encode(passages)
    elapsed = time.perf_counter() - start
    return SpeedFigures(
        p50_ms=float(np.percentile(latencies, 50)),
        p95_ms=float(np.percentile(latencies, 95)),
        throughput=len(passages) / elapsed,
    )


def fastest_runtime(bench: QuickBenchmark, onnx_file: str, openvino_file: str) -> str | None:
    """``openvino`` where its file beat ``onnx_file`` at batch-1 p50 *and* batch-32 throughput, else ``onnxruntime``.

    None when either was not measured. A split verdict keeps ONNX Runtime (lower memory, the INT8 file).
    """
    ours, theirs = bench.backends.get(onnx_file), bench.backends.get(openvino_file)
    if ours is None or theirs is None:
        return None
    faster = theirs.p50_ms < ours.p50_ms and theirs.throughput > ours.throughput
    return "openvino" if faster else "onnxruntime"


def quick_benchmark(model: Any, folder: Path, files: list[str], threads: int | None) -> QuickBenchmark:
    """Measure PyTorch ``model`` and each model file in ``folder`` (``.xml``: on OpenVINO) on the same texts."""
    from ..encoder import OnnxSentenceEncoder

    texts = calibration_texts()
    queries = [text for text in texts if len(text) < 120][:_QUERIES]
    sentences = texts[:200]
    backends = {"pytorch": _measure(lambda x: model.encode(x, batch_size=32), queries, sentences)}
    for name in files:
        runtime = "openvino" if name.endswith(".xml") else "onnxruntime"
        encoder = OnnxSentenceEncoder(
            folder, file_name=name, threads=threads, cache_size=0, metrics=False, runtime=runtime
        )
        backends[name] = _measure(encoder.encode, queries, sentences)
    return QuickBenchmark(
        threads=threads or available_cpus(), queries=len(queries), texts=len(sentences), backends=backends
    )
