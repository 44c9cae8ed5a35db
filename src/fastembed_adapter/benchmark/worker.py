"""One backend, one fresh process: ``python -m fastembed_adapter.benchmark.worker --backend NAME ...``.

Loads the backend, embeds the first query (cold start is measured from ``--spawned-at``, the
parent's wall clock just before it spawned this process), warms up, times batch-1 queries,
then the short and long throughput sets, and prints one JSON object on stdout. Anything the
libraries print goes to stderr. A backend that cannot run here prints ``available: false``
and the reason instead of numbers.
"""

from __future__ import annotations

import time

_STARTED = time.time()  # before any import below: the interpreter and this package are already loaded

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TextIO  # noqa: E402

import numpy as np  # noqa: E402

from .backends import Embedder, LoadContext, UnavailableError, by_name, dumps, load  # noqa: E402
from .workload import Workload  # noqa: E402

__all__ = ["main"]


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _peak_rss_mb() -> float:
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024  # KiB on Linux


def _per_call_ms(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """Milliseconds per call spent in each stage between two snapshots (empty for other backends)."""
    return {name: (after[name] - before[name]) * 1e3 / max(calls, 1) for name in after}


def _throughput(embedder: Embedder, texts: list[str]) -> tuple[dict[str, float], np.ndarray]:
    start = time.perf_counter()
    vectors = embedder.encode(texts)
    seconds = time.perf_counter() - start
    return {"texts": len(texts), "seconds": seconds, "texts_per_s": len(texts) / seconds}, np.asarray(vectors)


def measure(embedder: Embedder, workload: Workload, spawned_at: float, loaded_at: float) -> dict[str, Any]:
    """Cold start, batch-1 latency, throughput and memory of a loaded backend."""
    rss_after_load = _rss_mb()
    embedder.encode_one(workload.queries[0])
    first_done = time.time()
    for text in workload.warmup:
        embedder.encode_one(text)
    stages_now = embedder.stages or (lambda: {})
    stages_before = stages_now()
    latencies = []
    for text in workload.queries:
        start = time.perf_counter_ns()
        embedder.encode_one(text)
        latencies.append((time.perf_counter_ns() - start) / 1e6)
    stages = {"batch1": _per_call_ms(stages_before, stages_now(), len(workload.queries))}
    stages_before = stages_now()
    short, short_vectors = _throughput(embedder, workload.short)
    stages["short"] = _per_call_ms(stages_before, stages_now(), 1)
    stages_before = stages_now()
    long, long_vectors = _throughput(embedder, workload.long)
    stages["long"] = _per_call_ms(stages_before, stages_now(), 1)
    queries = np.asarray(embedder.encode(workload.queries))
    return {
        "cold_start_s": first_done - spawned_at,
        "boot_s": _STARTED - spawned_at,
        "load_s": loaded_at - _STARTED,
        "first_encode_s": first_done - loaded_at,
        "latency_ms": latencies,
        "short": short,
        "long": long,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": _peak_rss_mb(),
        "stages_ms": {name: value for name, value in stages.items() if value},
        "_vectors": {"queries": queries, "short": short_vectors, "long": long_vectors},
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastembed_adapter.benchmark.worker", description=__doc__)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--source", type=Path, required=True, help="sentence-transformers folder (PyTorch)")
    parser.add_argument("--prepared", type=Path, required=True, help="folder written by prepare")
    parser.add_argument("--fp32-file", required=True)
    parser.add_argument("--int8-file", default=None)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--workload", type=Path, required=True, help="JSON written by Workload.save")
    parser.add_argument("--spawned-at", type=float, default=None, help="parent's time.time() before the spawn")
    parser.add_argument("--embeddings", type=Path, default=None, help="save the embeddings as .npy files here")
    return parser


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Measure one backend and write its JSON line to ``out``; 0 when measured or unavailable, 1 on failure."""
    backend = by_name(args.backend)
    spawned_at = args.spawned_at if args.spawned_at is not None else _STARTED
    ctx = LoadContext(args.source, args.prepared, args.fp32_file, args.int8_file, args.threads)
    result: dict[str, Any] = {"backend": backend.name, "pid": os.getpid()}
    try:
        embedder = load(backend, ctx)
    except UnavailableError as exc:
        out.write(dumps({**result, "available": False, "reason": str(exc)}) + "\n")
        return 0
    loaded_at = time.time()
    try:
        measured = measure(embedder, Workload.load(args.workload), spawned_at, loaded_at)
    except Exception as exc:  # recorded in the results, with the reason, instead of numbers
        out.write(dumps({**result, "available": False, "reason": f"{type(exc).__name__}: {exc}"}) + "\n")
        return 1
    vectors = measured.pop("_vectors")
    if args.embeddings is not None:
        args.embeddings.mkdir(parents=True, exist_ok=True)
        for name, array in vectors.items():
            np.save(args.embeddings / f"{backend.name}.{name}.npy", array.astype(np.float32))
    out.write(dumps({**result, "available": True, "details": embedder.details, **measured}) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; library output is redirected to stderr so stdout carries only the JSON."""
    args = _parser().parse_args(argv)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        return run(args, out)
    finally:
        out.flush()


if __name__ == "__main__":
    raise SystemExit(main())
