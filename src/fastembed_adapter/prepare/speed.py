"""A quick in-process benchmark for the report: batch-1 latency and batch-32 throughput per backend.

The full side-by-side benchmark (fresh process per backend, interleaved, repeated) lives in ``bench/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import available_cpus, detect_target
from ..layout import FP32_FILE
from ..texts import calibration_texts, retrieval_set
from .report import QuickBenchmark, SpeedFigures

__all__ = ["fastest_file", "fastest_file_record", "fastest_runtime", "quick_benchmark", "quick_colbert_benchmark"]

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


def _beats(bench: QuickBenchmark, challenger: str, holder: str) -> bool | None:
    """Whether ``challenger`` beat ``holder`` at batch-1 p50 *and* batch-32 throughput; None if either is unmeasured."""
    theirs, ours = bench.backends.get(challenger), bench.backends.get(holder)
    if ours is None or theirs is None:
        return None
    return theirs.p50_ms < ours.p50_ms and theirs.throughput > ours.throughput


def fastest_runtime(bench: QuickBenchmark, onnx_file: str, openvino_file: str) -> str | None:
    """``openvino`` where its file beat ``onnx_file`` at batch-1 p50 *and* batch-32 throughput, else ``onnxruntime``.

    None when either was not measured. A split verdict keeps ONNX Runtime (lower memory, the INT8 file).
    """
    faster = _beats(bench, openvino_file, onnx_file)
    return None if faster is None else "openvino" if faster else "onnxruntime"


def fastest_file(bench: QuickBenchmark, int8_file: str, fp32_file: str) -> str | None:
    """``fp32_file`` where it beat ``int8_file`` at batch-1 p50 *and* batch-32 throughput, else ``int8_file``.

    The FP32 file is exact, so where it is also faster in both the INT8 file has nothing to offer on
    this CPU but its size; a split verdict keeps the INT8 file. None when either was not measured.
    """
    faster = _beats(bench, fp32_file, int8_file)
    return None if faster is None else fp32_file if faster else int8_file


def fastest_file_record(bench: QuickBenchmark | None, default_file: str) -> dict[str, str]:
    """The report's ``fastest_file``: ``{this CPU's ISA: fastest_file(...)}`` against ``onnx/model.onnx``.

    Empty without a benchmark, on a CPU with no INT8 target, or when the default file is FP32 already.
    """
    target = detect_target()
    if bench is None or target is None or default_file == FP32_FILE:
        return {}
    winner = fastest_file(bench, default_file, FP32_FILE)
    return {target.value: winner} if winner else {}


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


def _colbert_call(encode: Callable[..., Any]) -> Callable[[Any], Any]:
    """One query (a string) as a query, a list of texts as documents: what :func:`_measure` times."""

    def call(texts: Any) -> Any:
        single = isinstance(texts, str)
        return encode([texts] if single else texts, is_query=single)

    return call


def quick_colbert_benchmark(reference: Any, folder: Path, files: list[str], threads: int | None) -> QuickBenchmark:
    """The ColBERT ``reference`` (``colbert.Reference``) and each ONNX file: query batch-1 p50, documents/s at 32."""
    from ..colbert import OnnxColbertEncoder

    queries, documents = retrieval_set()
    queries = queries[:_QUERIES]
    documents = documents[:200]
    backends = {"pytorch": _measure(_colbert_call(reference.encode), queries, documents)}
    for name in files:
        encoder = OnnxColbertEncoder(folder, file_name=name, threads=threads, cache_size=0, metrics=False)
        backends[name] = _measure(_colbert_call(encoder.encode), queries, documents)
    return QuickBenchmark(
        threads=threads or available_cpus(), queries=len(queries), texts=len(documents), backends=backends
    )
