"""A ColBERT model side by side: PyLate (PyTorch FP32) and OnnxColbertEncoder (each ONNX file), in one run.

Each backend runs in its own process, ``--rounds`` times, the backends interleaved (order reversed
every other round) so that a slower or faster moment of a shared machine hits them all. A worker
measures its cold start (process start → the first query encoded: imports, load, first run),
query batch-1 latency (p50/p95 over the built-in queries), documents/s (the built-in documents,
``batch_size=32``) and its resident memory after the work (VmHWM, the peak). Ratios are taken
against PyLate round by round and their median reported, with the CPU flags of the machine.

    python bench/colbert.py --source ./pylate-colbert --prepared ./colbert-onnx --threads 2 --rounds 3

Needs PyLate (``FEA_STACK=st5 bash scripts/setup.sh``); writes JSON and Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _worker(backend: str, source: str, prepared: str, threads: int, started: float) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from fastembed_adapter.texts import retrieval_set

    queries, documents = retrieval_set()
    documents = documents[:128]
    if backend == "pylate":
        import torch
        from pylate import models

        torch.set_num_threads(threads)
        model: Any = models.ColBERT(source, device="cpu")
    else:
        from fastembed_adapter import OnnxColbertEncoder

        model = OnnxColbertEncoder(prepared, file_name=backend, threads=threads, cache_size=0, metrics=False)
    model.encode([queries[0]], is_query=True)
    cold = time.time() - started
    latencies = []
    for query in queries * 2:
        start = time.perf_counter()
        model.encode([query], is_query=True)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.encode(documents, is_query=False, batch_size=32)
    docs_seconds = time.perf_counter() - start
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024
    latencies.sort()
    return {
        "backend": backend,
        "cold_start_s": cold,
        "query_p50_ms": 1000 * statistics.median(latencies),
        "query_p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "documents_per_s": len(documents) / docs_seconds,
        "peak_rss_mb": peak / 2**20,
    }


def _flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    found = set(text.split())
    return [flag for flag in _FLAGS if flag in found]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="the PyLate ColBERT folder (PyTorch baseline)")
    parser.add_argument("--prepared", required=True, help="the folder prepare --kind colbert wrote")
    parser.add_argument("--files", default="", help="comma-separated ONNX files (default: every onnx/*.onnx)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/colbert"))
    args = parser.parse_args(argv)
    onnx = sorted(f"onnx/{p.name}" for p in Path(args.prepared, "onnx").glob("*.onnx"))
    files = args.files.split(",") if args.files else onnx
    backends = ["pylate", *files]
    rounds: list[dict[str, dict[str, Any]]] = []
    for index in range(args.rounds):
        order = backends if index % 2 == 0 else backends[::-1]
        results = {}
        for backend in order:
            code = (
                "import json, sys, time; started = float(sys.argv[1]); sys.path.insert(0, sys.argv[6]); "
                "from colbert import _worker; "
                "print(json.dumps(_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), started)))"
            )
            here = str(Path(__file__).parent)
            command = [sys.executable, "-c", code, str(time.time()), backend, args.source, args.prepared]
            command += [str(args.threads), here]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[backend] = json.loads(output.strip().splitlines()[-1])
        rounds.append(results)
    summary: dict[str, Any] = {}
    for backend in backends:
        keys = [key for key in rounds[0][backend] if key != "backend"]
        figures = {key: statistics.median(r[backend][key] for r in rounds) for key in keys}

        def ratio(key: str, inverse: bool = False, backend: str = backend) -> float:
            values = [r[backend][key] / r["pylate"][key] for r in rounds]
            return statistics.median(1 / v for v in values) if inverse else statistics.median(values)

        ratios = {
            "query_p50": ratio("query_p50_ms", inverse=True),  # speed-up: PyLate's time / ours
            "documents_per_s": ratio("documents_per_s"),
            "cold_start": ratio("cold_start_s"),
            "peak_rss": ratio("peak_rss_mb"),
        }
        summary[backend] = {"median": figures, "vs_pylate": ratios}
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "flags": _flags(), "threads": args.threads},
        "rounds": rounds,
        "summary": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "colbert.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"CPU flags: {', '.join(report['machine']['flags']) or 'none of ' + ', '.join(_FLAGS)}; "
        f"{args.threads} threads; {args.rounds} interleaved rounds, medians.",
        "",
        "| backend | query p50 ms | p95 ms | documents/s | cold start s | peak RSS MB "
        "| query speed-up | documents/s ratio | cold start ratio | RSS ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in summary.items():
        m, r = row["median"], row["vs_pylate"]
        lines.append(
            f"| {backend} | {m['query_p50_ms']:.1f} | {m['query_p95_ms']:.1f} | {m['documents_per_s']:.1f} | "
            f"{m['cold_start_s']:.2f} | {m['peak_rss_mb']:.0f} | {r['query_p50']:.2f}x | "
            f"{r['documents_per_s']:.2f}x | {r['cold_start']:.2f}x | {r['peak_rss']:.2f}x |"
        )
    (args.out / "colbert.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
