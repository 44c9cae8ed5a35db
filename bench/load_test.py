"""Bounded loopback load test of ``fastembed-adapter serve``.

Starts the server on 127.0.0.1 (a free port) as a subprocess, sends a fixed number of
``POST /v1/embeddings`` requests at each concurrency level (default 1, 4, 16, 64), and reports
p50/p95/p99 latency, requests/s and texts/s per level, the mean micro-batch size the server
formed (from its /metrics), and the server's overhead over an in-process ``encode()`` of the
same texts, one at a time. The client runs on the same machine, so it competes for the CPUs:
treat absolute numbers as a lower bound for a dedicated host.

    python bench/load_test.py --model models/all-MiniLM-L6-v2 --requests 400

Writes ``bench/results/serve/<date>.json`` and ``.md`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "How do I reset my password?",
    "The old lighthouse keeper noticed a strange light over the harbour one stormy night.",
    "Embeddings capture the meaning of short texts so that similar sentences end up close together.",
    "Numbers like 42, 3.14 and 1000 appear in quarterly reports.",
    "Tokenizers split words into smaller pieces called subwords.",
    "SELECT name FROM users WHERE age > 30 ORDER BY name;",
    "A man is eating food.",
    "Café déjà vu: naïve façade!",
]


def text(i: int) -> str:
    """A unique text per request (the server cache is off too, so every request is encoded)."""
    return f"{SENTENCES[i % len(SENTENCES)]} (request {i})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def batch_stats(metrics: str) -> tuple[float, float]:
    """(micro-batches, texts) counted so far, from the Prometheus text."""
    found = {"count": 0.0, "sum": 0.0}
    for line in metrics.splitlines():
        for key in found:
            if line.startswith(f"fastembed_adapter_microbatch_texts_{key} "):
                found[key] = float(line.split()[-1])
    return found["count"], found["sum"]


class Connection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: the load generator shares the CPUs with
    the server, so it must cost as little as possible (httpx's pool costs several times more per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes, bool]:
        """``(status, body, whether a Retry-After header came)``."""
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, retry_after = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            retry_after = retry_after or name.strip().lower() == b"retry-after"
        return status, await self.reader.readexactly(length), retry_after

    def close(self) -> None:
        self.writer.close()


async def level(port: int, concurrency: int, requests: int, offset: int, texts_per_request: int) -> dict[str, Any]:
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        before = batch_stats((await client.get("/metrics")).text)
    latencies: list[float] = []
    accepted: list[float] = []  # latencies of the 200s alone (under overload most answers are fast 429s)
    statuses: dict[int, int] = {}
    missing_retry_after = 0
    counter = iter(range(requests))
    connections = [await Connection.open(port) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        for i in counter:
            n = offset + i * texts_per_request
            payload = {"input": [text(n + k) for k in range(texts_per_request)], "model": "bench"}
            start = time.perf_counter()
            status, body, retry_after = await connection.post("/v1/embeddings", json.dumps(payload).encode())
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                accepted.append(latencies[-1])
            nonlocal missing_retry_after
            missing_retry_after += status == 429 and not retry_after
            if status == 200 and i == 0:
                assert len(json.loads(body)["data"]) == texts_per_request

    start = time.perf_counter()
    await asyncio.gather(*[worker(connection) for connection in connections])
    elapsed = time.perf_counter() - start
    for connection in connections:
        connection.close()
    async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as client:
        after = batch_stats((await client.get("/metrics")).text)
    batches, texts = after[0] - before[0], after[1] - before[1]
    return {
        "concurrency": concurrency,
        "requests": requests,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 1),
        "texts_per_s": round(requests * texts_per_request / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_batch_texts": round(texts / batches, 2) if batches else None,
        "accepted_p50_ms": round(percentile(accepted, 50) * 1000, 2) if accepted else None,
        "accepted_p95_ms": round(percentile(accepted, 95) * 1000, 2) if accepted else None,
        "429_without_retry_after": missing_retry_after,
    }


def in_process(model: str, threads: int | None, requests: int) -> dict[str, Any]:
    """Latency of encode() on one text at a time, same model, threads and texts (no HTTP, no batching)."""
    from fastembed_adapter import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(model, threads=threads, cache_size=0, metrics=False)
    for i in range(20):
        encoder.encode([text(10_000_000 + i)], show_progress_bar=False)
    latencies = []
    for i in range(requests):
        start = time.perf_counter()
        encoder.encode([text(20_000_000 + i)], show_progress_bar=False)
        latencies.append(time.perf_counter() - start)
    return {
        "requests": requests,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p95_ms": round(percentile(latencies, 95) * 1000, 2),
        "texts_per_s": round(requests / sum(latencies), 1),
        "file": encoder.file_name,
        "threads": encoder.session.threads,
    }


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server not ready in time")


def render(report: dict[str, Any]) -> str:
    lines = [
        f"# serve load test — {report['model']} ({report['date']})",
        "",
        f"Loopback, client and server on the same {report['machine']['cpus']}-CPU machine; "
        f"{report['settings']['requests']} requests of {report['settings']['texts_per_request']} text(s) per level; "
        f"server threads {report['settings']['threads']}, cache off, max batch wait "
        f"{report['settings']['max_batch_wait_ms']} ms.",
        "",
        "| concurrency | requests/s | texts/s | p50 ms | p95 ms | p99 ms | mean texts per ONNX batch | statuses |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in report["levels"]:
        lines.append(
            f"| {row['concurrency']} | {row['requests_per_s']} | {row['texts_per_s']} | {row['p50_ms']} | "
            f"{row['p95_ms']} | {row['p99_ms']} | {row['mean_batch_texts']} | {row['statuses']} |"
        )
    overload = report.get("overload")
    if overload:
        row = overload["level"]
        lines += [
            "",
            f"**Overload**: a second server with `--max-queue {overload['max_queue']}`, "
            f"{row['requests']} requests at concurrency {row['concurrency']}: statuses {row['statuses']} "
            f"({row['429_without_retry_after']} 429s without `Retry-After`); accepted requests p50 "
            f"{row['accepted_p50_ms']} ms, p95 {row['accepted_p95_ms']} ms, against p95 "
            f"{overload['unloaded_p95_ms']} ms at concurrency {overload['unloaded_concurrency']} within the queue; "
            f"5xx: {sum(n for code, n in row['statuses'].items() if code.startswith('5'))}.",
        ]
    base = report["in_process"]
    lines += [
        "",
        f"In-process `encode()` of one text at a time: p50 {base['p50_ms']} ms, p95 {base['p95_ms']} ms, "
        f"{base['texts_per_s']} texts/s ({base['file']}, {base['threads']} threads).",
        f"Server overhead at concurrency 1 (HTTP + JSON + queue): p50 +{report['overhead_ms_p50']} ms.",
        f"Throughput at concurrency 16 vs one request at a time: x{report['speedup_c16_vs_c1']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="prepared model folder")
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level (bounded)")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="server ONNX Runtime threads (default: usable CPUs)")
    parser.add_argument("--max-batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "serve")
    parser.add_argument(
        "--overload-queue",
        type=int,
        default=8,
        help="then run a server with this --max-queue at the highest concurrency (0: skip)",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    results: list[dict[str, Any]] = []

    def run_levels(max_queue: int, concurrencies: list[int], offset: int) -> dict[str, Any]:
        port = free_port()
        env = {**os.environ, "FEA_CACHE_SIZE": "0", "FEA_LOG_LEVEL": "warning", "FEA_MAX_QUEUE": str(max_queue)}
        command = [sys.executable, "-m", "fastembed_adapter.cli", "serve", "--model", args.model]
        command += ["--host", "127.0.0.1", "--port", str(port), "--max-batch-wait-ms", str(args.max_batch_wait_ms)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        process = subprocess.Popen(command, env=env)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process)
            info = httpx.get(f"http://127.0.0.1:{port}/info").json()
            asyncio.run(level(port, 4, 40, 50_000_000 + offset, args.texts_per_request))  # warm-up
            for index, concurrency in enumerate(concurrencies):
                start = offset + index * 1_000_000
                row = asyncio.run(level(port, concurrency, args.requests, start, args.texts_per_request))
                print(json.dumps(row), file=sys.stderr)
                results.append(row)
        finally:
            process.terminate()
            process.wait(timeout=60)
        return dict(info)

    info = run_levels(max(levels) * 2, levels, 0)
    overload = None
    if args.overload_queue:
        within = [row for row in results if row["concurrency"] <= args.overload_queue]
        run_levels(args.overload_queue, [max(levels)], 100_000_000)
        overload = {
            "max_queue": args.overload_queue,
            "level": results.pop(),
            "unloaded_concurrency": within[-1]["concurrency"] if within else None,
            "unloaded_p95_ms": within[-1]["p95_ms"] if within else None,
        }
    baseline = in_process(args.model, info["threads"], min(args.requests, 400))
    by_c = {row["concurrency"]: row for row in results}
    report = {
        "date": dt.date.today().isoformat(),
        "model": info["model"],
        "file": info["file"],
        "settings": {
            "requests": args.requests,
            "texts_per_request": args.texts_per_request,
            "threads": info["threads"],
            "max_batch_wait_ms": args.max_batch_wait_ms,
            "max_batch_texts": info["limits"]["max_batch_texts"],
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": info["versions"],
        "levels": results,
        "overload": overload,
        "in_process": baseline,
        "overhead_ms_p50": round(by_c[levels[0]]["p50_ms"] - baseline["p50_ms"], 2) if levels[0] == 1 else None,
        "speedup_c16_vs_c1": round(by_c[16]["texts_per_s"] / by_c[1]["texts_per_s"], 2)
        if 1 in by_c and 16 in by_c
        else None,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / report["date"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(render(report), encoding="utf-8")
    print(render(report))


if __name__ == "__main__":
    main()
