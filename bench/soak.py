"""Bounded soak test: resident memory of the encoder and of ``serve`` under random load, and what it is made of.

Each phase runs in its own fresh process, one after the other (never two at once: few cores):

1. **components** — the RSS each part adds: imports, the tokenizer, the ONNX Runtime session (beside
   the ONNX files' sizes), one batch of the largest shape (32 x max_seq_length, what ORT's arena
   then keeps), a full embedding cache (``cache.py``) and a full token-count LRU (``tokenization.py``:
   the tokens ``serve`` counts before it encodes).
2. **encoder** — ``OnnxSentenceEncoder.encode()`` with default settings on random calls: 1..64 texts
   of 1..max_seq_length+32 words (log-uniform) from the model's vocabulary, half from a hot pool,
   30 % from a warm pool four times the cache, 20 % new, so the LRU cache fills, hits and evicts;
   ``tracemalloc`` on, a heap snapshot at the end.
3. **arena on / off** — the start of the same workload (same seed, same calls, at least 8) twice more without
   tracemalloc: ONNX Runtime's CPU memory arena as ``session.py`` leaves it (ORT's default, on),
   then off (``enable_cpu_mem_arena = False``, patched in for this probe only).
4. **server** — ``fastembed-adapter serve`` (default settings) on 127.0.0.1 gets ``/v1/embeddings``,
   ``/embed``, ``/embed_all``, ``/tokenize``, ``/similarity`` and 20 % bad requests (each checked
   against the 4xx it must get) from ``--clients`` concurrent httpx clients.

RSS (psutil) and its high-water mark (``VmHWM``) are sampled every ``--interval`` seconds, in MiB.
``--minutes`` (default 10) bounds the measured phases: 40 % encoder, 5 % arena on (arena off repeats
its calls), 40 % server; the components probe and start-ups add about a minute. Warm-up is the
first ``WARMUP_SHARE`` of a phase.

    python bench/soak.py --model models/all-MiniLM-L6-v2
    python bench/soak.py --model models/all-MiniLM-L6-v2 --minutes 1 --output /tmp/soak

Writes ``soak.json`` (every sample), ``soak.md`` and ``soak.png`` to ``bench/results/soak/`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
WARMUP_SHARE = 0.2  # the first fifth of a phase is warm-up
PLATEAU_MB_PER_MIN = 0.5  # a last-half slope below this (in absolute value) counts as a plateau
SHARES = {"encoder": 0.4, "arena": 0.05, "server": 0.4}  # of --minutes; arena-off repeats arena-on's calls
MAX_CALL_TEXTS = 64
ARENA_MIN_CALLS = 8  # the arena-on probe runs its share of --minutes and at least this many calls
BATCH_TEXTS = 32  # encode()'s default batch_size and serve's --max-batch-texts: the largest ONNX batch
HOT_TEXTS, WARM_TEXTS = 256, 4096
NUMPY_DOMAIN = 389047  # numpy's tracemalloc domain (array data)
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
VERSIONED = (
    "fastembed-adapter",
    "onnxruntime",
    "tokenizers",
    "numpy",
    "cachetools",
    "starlette",
    "uvicorn",
    "httpx",
    "psutil",
    "matplotlib",
)
# Added when the vocabulary has few whole words (a tiny test tokenizer).
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "embeddings", "capture", "meaning"]


def rss_mib(process: psutil.Process | None = None) -> float:
    """Resident memory of ``process`` (default: this one), in MiB."""
    return round((process or psutil.Process()).memory_info().rss / MIB, 2)


def hwm_mib(pid: int | None = None) -> float | None:
    """The kernel's resident high-water mark (``VmHWM``) of ``pid`` (default: this process), in MiB."""
    try:
        status = Path(f"/proc/{pid or os.getpid()}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return round(int(line.split()[1]) / 1024, 2) if line else None


def vocab_words(model: Path) -> list[str]:
    """Whole words of the model's tokenizer vocabulary: a text of n of them is about n tokens."""
    data = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data.get("model", {}).get("vocab", {})
    pieces = vocab.keys() if isinstance(vocab, dict) else [entry[0] for entry in vocab]
    words = sorted({w for p in pieces if len(w := p.lstrip("\u2581\u0120")) > 1 and w.isalpha()})
    return words if len(words) >= 50 else words + WORDS


class Workload:
    """Seeded random calls: 1..64 texts of 1..max_words words (log-uniform); hot, warm and fresh texts."""

    def __init__(self, words: list[str], max_words: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words, self.max_words = words, max_words
        self.hot = [self.fresh() for _ in range(HOT_TEXTS)]
        self.warm = [self.fresh() for _ in range(WARM_TEXTS)]

    def fresh(self, words: int | None = None) -> str:
        count = words or min(int(math.exp(self.rng.uniform(0, math.log(self.max_words + 1)))), self.max_words)
        return " ".join(self.rng.choices(self.words, k=max(count, 1)))

    def text(self) -> str:
        draw = self.rng.random()
        return self.rng.choice(self.hot) if draw < 0.5 else self.rng.choice(self.warm) if draw < 0.8 else self.fresh()

    def call(self, most: int = MAX_CALL_TEXTS) -> list[str]:
        return [self.text() for _ in range(self.rng.randint(1, most))]


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Start, after warm-up, max, end and the least-squares slope over the last half (MiB/min) of a phase."""
    import numpy as np

    times, values = np.array([s["t"] for s in samples]), np.array([s["rss_mb"] for s in samples])
    span = float(times[-1])
    half = times >= span / 2
    slope = round(float(np.polyfit(times[half] / 60, values[half], 1)[0]), 3) if half.sum() >= 3 else None
    hwm = [s["hwm_mb"] for s in samples if s.get("hwm_mb") is not None]
    return {
        "seconds": round(span, 1),
        "samples": len(samples),
        "warmup_s": round(WARMUP_SHARE * span, 1),
        "start_mb": float(values[0]),
        "after_warmup_mb": float(next(s["rss_mb"] for s in samples if s["t"] >= WARMUP_SHARE * span)),
        "max_mb": float(values.max()),
        "max_at_s": float(times[int(values.argmax())]),
        "end_mb": float(values[-1]),
        "hwm_mb": max(hwm) if hwm else float(values.max()),
        "slope_last_half_mb_per_min": slope,
        "plateau": None if slope is None else abs(slope) < PLATEAU_MB_PER_MIN,
    }


# --- workers (each a fresh process; one JSON line on stdout) ---------------------------------------


def _arena_off() -> None:
    """Make every ``SessionOptions`` this process builds turn the CPU memory arena off (session.py unchanged)."""
    import onnxruntime as ort

    original = ort.SessionOptions

    def options() -> Any:
        made = original()
        made.enable_cpu_mem_arena = False
        return made

    ort.SessionOptions = options


def _heap(snapshot: Any, top: int = 8) -> dict[str, Any]:
    """Python objects (domain 0; this script's own apart), numpy array data and the largest allocation sites."""
    import tracemalloc

    python = snapshot.filter_traces([tracemalloc.DomainFilter(True, 0)])
    own = python.filter_traces([tracemalloc.Filter(True, __file__)])
    arrays = snapshot.filter_traces([tracemalloc.DomainFilter(True, NUMPY_DOMAIN)])

    def total(part: Any) -> float:
        return round(sum(stat.size for stat in part.statistics("filename")) / MIB, 2)

    sites, prefixes = [], sorted((p for p in sys.path if p), key=len, reverse=True)
    for stat in python.statistics("lineno")[:top]:
        frame = stat.traceback[0]
        name = next(
            (frame.filename[len(p) + 1 :] for p in prefixes if frame.filename.startswith(p + "/")), frame.filename
        )
        sites.append({"site": f"{name}:{frame.lineno}", "mb": round(stat.size / MIB, 3), "blocks": stat.count})
    objects, mine = total(python), total(own)
    return {
        "python_objects_mb": objects,
        "this_script_mb": mine,
        "library_objects_mb": round(objects - mine, 2),
        "numpy_arrays_mb": total(arrays),
        "top_python_sites": sites,
    }


def encoder_worker(args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    milestones = {"interpreter_mb": rss_mib()}
    from fastembed_adapter import OnnxSentenceEncoder
    from fastembed_adapter.layout import read_layout

    milestones["imports_mb"] = rss_mib()
    max_tokens = read_layout(args.model).max_seq_length or 512
    workload = Workload(vocab_words(args.model), max_tokens + 32, args.seed)  # before tracing: not the library's
    if args.arena == "off":
        _arena_off()
    if args.trace:
        tracemalloc.start(1)
    encoder = OnnxSentenceEncoder(args.model, threads=args.threads)
    milestones["loaded_mb"] = rss_mib()
    arena = bool(encoder.session._session.get_session_options().enable_cpu_mem_arena)
    counters = {"calls": 0, "texts": 0}
    samples: list[dict[str, Any]] = []
    stop = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        info = encoder.cache_info()
        traced = tracemalloc.get_traced_memory()[0] if args.trace else 0
        overhead = tracemalloc.get_tracemalloc_memory() if args.trace else 0
        samples.append(
            {
                "t": round(time.monotonic() - start, 2),
                "rss_mb": rss_mib(),
                "hwm_mb": hwm_mib(),
                **counters,
                "cache_entries": info.size,
                "cache_mb": round(info.bytes / MIB, 3),
                "traced_mb": round(traced / MIB, 2),
                "tracemalloc_overhead_mb": round(overhead / MIB, 2),
            }
        )

    def sampler() -> None:
        while not stop.wait(args.interval):
            sample()

    sample()
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    deadline = start + args.seconds
    while time.monotonic() < deadline or counters["calls"] < args.calls:  # both bounds: --seconds and --calls
        texts = workload.call()
        encoder.encode(texts)
        counters["calls"] += 1
        counters["texts"] += len(texts)
    stop.set()
    thread.join()
    sample()
    info = encoder.cache_info()
    result: dict[str, Any] = {
        "arena": arena,
        "file": encoder.file_name,
        "threads": encoder.session.threads,
        "max_seq_length": max_tokens,
        "milestones": milestones,
        "loaded_mb": milestones["loaded_mb"],
        "samples": samples,
        "cache": {
            "hits": info.hits,
            "misses": info.misses,
            "entries": info.size,
            "maxsize": info.maxsize,
            "evicted": max(info.misses - info.size, 0),
            "vectors_mb": round(info.bytes / MIB, 3),
        },
    }
    if args.trace:
        result["heap"] = _heap(tracemalloc.take_snapshot())
        result["heap"]["tracemalloc_overhead_mb"] = round(tracemalloc.get_tracemalloc_memory() / MIB, 2)
    return result


def components_worker(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    steps = {"interpreter_mb": rss_mib()}
    from fastembed_adapter.cache import EmbeddingCache
    from fastembed_adapter.hub import resolve_model
    from fastembed_adapter.layout import read_layout
    from fastembed_adapter.session import OnnxSession
    from fastembed_adapter.tokenization import TextTokenizer

    steps["imports_mb"] = rss_mib()
    root, file_name = resolve_model(args.model, None)
    layout = read_layout(root)
    max_tokens = layout.max_seq_length or 512
    words = vocab_words(root)
    workload = Workload(words, max_tokens + 32, args.seed)
    steps["workload_texts_mb"] = rss_mib()
    tokenizer = TextTokenizer(root, max_tokens, layout.do_lower_case)
    steps["tokenizer_mb"] = rss_mib()
    session = OnnxSession(root / file_name, args.threads)
    steps["session_mb"] = rss_mib()
    session.run(tokenizer.encode([workload.fresh(max_tokens + 32) for _ in range(BATCH_TEXTS)]))
    steps["largest_batch_mb"] = rss_mib()
    lru, counted = tokenizer._counted, 0  # the LRU of counted tokens serve keeps for the encode that follows
    while counted < 2 * lru.maxsize:
        counted += sum(tokenizer.count(workload.call()))
    steps["token_lru_full_mb"] = rss_mib()
    cache = EmbeddingCache(args.cache_size)
    rng = np.random.default_rng(args.seed)
    for start in range(0, 2 * args.cache_size, 64):
        vectors = rng.standard_normal((64, layout.pooling.dimension), dtype=np.float32)
        cache.put_many([(("options", "", f"{start + i} {workload.text()}"), v) for i, v in enumerate(vectors)])
    steps["embedding_cache_full_mb"] = rss_mib()
    files = sorted(root.glob(file_name + "*"))
    return {
        "file": file_name,
        "max_seq_length": max_tokens,
        "vocab_words": len(words),
        "steps": steps,
        "onnx_files_mb": {p.name: round(p.stat().st_size / MIB, 2) for p in files},
        "onnx_total_mb": round(sum(p.stat().st_size for p in files) / MIB, 2),
        "token_lru": {"tokens": lru.currsize, "max_tokens": lru.maxsize, "entries": len(lru)},
        "embedding_cache": {"entries": cache.info().size, "vectors_mb": round(cache.info().bytes / MIB, 3)},
    }


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}


def run_worker(kind: str, args: argparse.Namespace, timeout: float, *extra: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--model", str(args.model), "--seed", str(args.seed)]
    command += ["--interval", str(args.interval), "--cache-size", str(args.cache_size)]
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run([*command, *extra], capture_output=True, text=True, env=clean_env(), timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"soak worker {kind} {extra} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- server phase ----------------------------------------------------------------------------------


def bad_requests(workload: Workload, max_tokens: int) -> list[tuple[str, str, Any, int]]:
    """(method, path, JSON body or raw bytes, the status it must get)."""
    return [
        ("POST", "/v1/embeddings", b'{"input": ["unterminated', 422),
        ("POST", "/v1/embeddings", {"input": []}, 422),
        ("POST", "/v1/embeddings", {"input": "x", "dimensions": 0}, 422),
        ("POST", "/v1/embeddings", {"input": ["short text"] * 513}, 413),  # --max-inputs 512
        ("POST", "/embed", {"inputs": ["fine", ""]}, 422),
        ("POST", "/embed", {"inputs": 42}, 422),
        ("POST", "/embed", {"inputs": "x", "truncation_direction": "Left"}, 422),
        ("POST", "/embed", {"inputs": [workload.fresh(2 * max_tokens + 8)], "truncate": False}, 413),
        ("POST", "/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 422),
        ("POST", "/tokenize", {"inputs": [1, 2, 3]}, 422),
        ("GET", "/v1/embeddings", None, 405),
        ("POST", "/no/such/route", {}, 404),
    ]


def server_request(workload: Workload, bad: list[tuple[str, str, Any, int]]) -> tuple[str, str, str, Any, int]:
    """(kind, method, path, body, expected status) of one random request."""
    rng, draw = workload.rng, workload.rng.random()
    if draw < 0.28:
        texts, fmt = workload.call(), rng.choice(["float", "base64"])
        body = {"input": texts[0] if len(texts) == 1 else texts, "model": "soak", "encoding_format": fmt}
        return "openai", "POST", "/v1/embeddings", body, 200
    if draw < 0.48:
        return "embed", "POST", "/embed", {"inputs": workload.call(), "normalize": rng.random() < 0.8}, 200
    if draw < 0.55:  # per-token vectors: a few texts, or the JSON answer is tens of MB
        return "embed_all", "POST", "/embed_all", {"inputs": workload.call(4)}, 200
    if draw < 0.65:
        return "tokenize", "POST", "/tokenize", {"inputs": workload.call()}, 200
    if draw < 0.80:
        body = {"inputs": {"source_sentence": workload.text(), "sentences": workload.call(MAX_CALL_TEXTS - 1)}}
        return "similarity", "POST", "/similarity", body, 200
    return ("bad", *rng.choice(bad))


async def drive_server(base_url: str, pid: int, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    import httpx

    workload = Workload(vocab_words(args.model), args.max_seq_length + 32, args.seed + 1)
    bad = bad_requests(workload, args.max_seq_length)
    server = psutil.Process(pid)
    by_kind: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    samples: list[dict[str, Any]] = []
    sent = {"requests": 0}
    start = time.monotonic()
    deadline = start + seconds

    async def sampler() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
            while True:
                t, rss, hwm = round(time.monotonic() - start, 2), rss_mib(server), hwm_mib(pid)
                cache = cache_counts((await http.get("/metrics")).text)
                samples.append(
                    {"t": t, "rss_mb": rss, "hwm_mb": hwm, **sent} | {f"cache_{k}": v for k, v in cache.items()}
                )
                if time.monotonic() >= deadline:
                    return
                await asyncio.sleep(min(args.interval, max(deadline - time.monotonic(), 0.01)))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=120.0) as http:
            while time.monotonic() < deadline:
                kind, method, path, body, expected = server_request(workload, bad)
                content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
                headers = {"content-type": "application/json"} if content is not None else {}
                try:
                    response = await http.request(method, path, content=content, headers=headers)
                    status = str(response.status_code)
                    if response.status_code != expected:
                        errors.append(f"{kind} {method} {path}: {status}, expected {expected}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    errors.append(f"{kind} {method} {path}: {status}: {exc}")
                counts = by_kind.setdefault(kind, {})
                counts[status] = counts.get(status, 0) + 1
                sent["requests"] += 1

    await asyncio.gather(sampler(), *[client() for _ in range(args.clients)])
    by_status: dict[str, int] = {}
    for counts in by_kind.values():
        for status, n in counts.items():
            by_status[status] = by_status.get(status, 0) + n
    return {
        "samples": samples,
        "requests": {
            "total": sent["requests"],
            "by_status": dict(sorted(by_status.items())),
            "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())},
            "errors": len(errors),
            "error_examples": errors[:10],
        },
    }


def cache_counts(metrics: str) -> dict[str, float]:
    """The server's embedding-cache hits and misses so far, from its Prometheus text."""
    counts = {"hits": 0.0, "misses": 0.0}
    for line in metrics.splitlines():
        for key in counts:
            if line.startswith(f"fastembed_adapter_cache_{key}_total"):
                counts[key] += float(line.rsplit(" ", 1)[-1])
    return counts


def server_phase(args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    import httpx
    from load_test import free_port, wait_ready  # the load test's helpers (bench/ is on sys.path)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "fastembed_adapter.cli", "serve", "--model", str(args.model)]
    command += ["--host", "127.0.0.1", "--port", str(port)] + (["--threads", str(args.threads)] if args.threads else [])
    process = subprocess.Popen(command, env=clean_env() | {"FEA_LOG_LEVEL": "warning"})
    try:
        wait_ready(base_url, process, timeout=180)
        info = httpx.get(f"{base_url}/info", timeout=10).json()
        loaded = rss_mib(psutil.Process(process.pid))
        result = asyncio.run(drive_server(base_url, process.pid, args, seconds))
        cache = cache_counts(httpx.get(f"{base_url}/metrics", timeout=30).text)
    finally:
        process.terminate()
        process.wait(timeout=120)
    keep = ("model", "file", "threads", "limits", "versions")
    return result | {"loaded_mb": loaded, "cache": cache, "info": {k: info[k] for k in keep if k in info}}


# --- report ----------------------------------------------------------------------------------------


def cpu_info() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
    flags = fields.get("flags", "").split()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": fields.get("model name", platform.processor()),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "flags_of_note": {flag: flag in flags for flag in CPU_FLAGS},
        "flags": flags,
    }


def _probe_view(probe: dict[str, Any]) -> dict[str, Any]:
    summary = probe["summary"]
    return {
        "calls": probe["samples"][-1]["calls"],
        "loaded_mb": probe["loaded_mb"],
        "hwm_mb": summary["hwm_mb"],
        "end_mb": summary["end_mb"],
    }


def last_half(phase: dict[str, Any]) -> dict[str, Any]:
    """What changed over the last half of a phase: RSS, its largest single step, and the caches' fill."""
    samples = phase["samples"]
    half = next(i for i, s in enumerate(samples) if s["t"] >= samples[-1]["t"] / 2)
    first, last = samples[half], samples[-1]
    steps = [(b["rss_mb"] - a["rss_mb"], b["t"]) for a, b in itertools.pairwise(samples[half:])]
    step, at = max(steps, default=(0.0, last["t"]))
    out = {"from_s": first["t"], "rss_mb": round(last["rss_mb"] - first["rss_mb"], 2)}
    out |= {"largest_step_mb": round(step, 2), "largest_step_at_s": at}
    for key in ("cache_entries", "cache_mb", "traced_mb", "cache_misses"):
        if key in first and key in last:
            out[key] = [first[key], last[key]]
    return out


def breakdown(report: dict[str, Any]) -> dict[str, Any]:
    """Each high-water mark as the RSS after load plus the measured parts of the growth (MiB)."""
    components, steps = report["components"], report["components"]["steps"]

    def delta(after: str, before: str) -> float:
        return round(steps[after] - steps[before], 2)

    parts = {
        "interpreter_and_imports_mb": steps["imports_mb"],
        "tokenizer_mb": delta("tokenizer_mb", "workload_texts_mb"),
        "onnx_session_mb": delta("session_mb", "tokenizer_mb"),
        "onnx_files_mb": components["onnx_total_mb"],
        "largest_batch_mb": delta("largest_batch_mb", "session_mb"),
        "token_lru_full_mb": delta("token_lru_full_mb", "largest_batch_mb"),
        "embedding_cache_full_mb": delta("embedding_cache_full_mb", "token_lru_full_mb"),
        "embedding_cache_vectors_mb": components["embedding_cache"]["vectors_mb"],
    }
    out: dict[str, Any] = {"parts": parts, "phases": {}}
    on, off = report["phases"].get("arena_on"), report["phases"].get("arena_off")
    if on:  # a process that only encodes, without tracemalloc: its growth is ORT's arena and activations
        arena_calls = on["samples"][-1]["calls"]
        ort_label = f"ORT arena and activations (the arena-on probe's growth over {arena_calls} calls)"
        ort_mb = round(on["summary"]["hwm_mb"] - on["loaded_mb"] - on["samples"][-1]["cache_mb"], 2)
    else:
        ort_label, ort_mb = f"ORT working memory of one {BATCH_TEXTS} x max_seq_length batch", parts["largest_batch_mb"]
    for name in ("encoder", "server"):
        if name not in report["phases"]:
            continue
        phase = report["phases"][name]
        growth = {ort_label: ort_mb}
        growth[f"embedding cache, full ({report['config']['cache_size']} entries)"] = parts["embedding_cache_full_mb"]
        if name == "server":
            growth["token-count LRU, full (its bound)"] = parts["token_lru_full_mb"]
        else:
            growth["Python objects of the library (tracemalloc)"] = phase["heap"]["library_objects_mb"]
            growth["tracemalloc's own memory"] = phase["heap"]["tracemalloc_overhead_mb"]
        hwm, loaded = phase["summary"]["hwm_mb"], phase["loaded_mb"]
        rest = round(hwm - loaded - sum(growth.values()), 2)
        out["phases"][name] = {"hwm_mb": hwm, "loaded_mb": loaded, "growth": growth, "rest_mb": rest}
        out["phases"][name]["last_half"] = last_half(phase)
    if on and off:
        out["arena"] = {"on": _probe_view(on), "off": _probe_view(off)}
        out["arena"]["kept_at_end_mb"] = round(on["summary"]["end_mb"] - off["summary"]["end_mb"], 2)
        out["arena"]["hwm_difference_mb"] = round(on["summary"]["hwm_mb"] - off["summary"]["hwm_mb"], 2)
    return out


def analysis(report: dict[str, Any]) -> list[str]:
    lines, parts = [], report["breakdown"]["parts"]
    for name in ("encoder", "server"):
        if name not in report["phases"]:
            continue
        s, split = report["phases"][name]["summary"], report["breakdown"]["phases"][name]
        verdict = {True: "plateaus", False: "does NOT plateau", None: "too few samples to judge"}[s["plateau"]]
        slope = "n/a" if s["slope_last_half_mb_per_min"] is None else f"{s['slope_last_half_mb_per_min']:+.2f}"
        made = "; ".join(f"{k} {v:.1f}" for k, v in split["growth"].items())
        late = split["last_half"]
        why = f"+{late['largest_step_mb']:.1f} in one step at {late['largest_step_at_s'] / 60:.1f} min"
        if "cache_entries" in late:
            (e0, e1), (c0, c1) = late["cache_entries"], late["cache_mb"]
            why += f"; the embedding cache went from {e0} to {e1} entries (+{c1 - c0:.1f} MiB of vectors)"
        if "traced_mb" in late:
            why += f", the traced Python heap by {late['traced_mb'][1] - late['traced_mb'][0]:+.1f} MiB"
        if "cache_misses" in late:
            why += f"; cache misses (each one an insert) went from {late['cache_misses'][0]:.0f} to "
            why += f"{late['cache_misses'][1]:.0f} (the cache holds {report['config']['cache_size']})"
        lines.append(
            f"- **{name}**: RSS {verdict}: last-half slope {slope} MiB/min (plateau: |slope| < {PLATEAU_MB_PER_MIN}); "
            f"{s['after_warmup_mb']:.0f} MiB after warm-up, {s['end_mb']:.0f} at the end. Over the last half RSS moved "
            f"{late['rss_mb']:+.1f} MiB, {late['rss_mb'] / s['end_mb']:+.1%} ({why})."
        )
        lines.append(
            f"  High-water mark (VmHWM) {split['hwm_mb']:.0f} MiB = {split['loaded_mb']:.0f} after load + {made} + "
            f"{split['rest_mb']:.1f} not attributed (allocator slack, more arena than the probe needed, thread stacks, "
            "request buffers)."
        )
    lines.append(
        f"- After load: interpreter + imports {parts['interpreter_and_imports_mb']:.0f} MiB, tokenizer "
        f"{parts['tokenizer_mb']:.1f}, ONNX Runtime session {parts['onnx_session_mb']:.1f} for "
        f"{parts['onnx_files_mb']:.1f} MiB of ONNX files (`{report['file']}`). One batch of "
        f"{BATCH_TEXTS} x max_seq_length tokens alone takes {parts['largest_batch_mb']:.1f} MiB of ORT working memory."
    )
    if arena := report["breakdown"].get("arena"):
        on, off = arena["on"], arena["off"]
        lines.append(
            f"- CPU memory arena: `session.py` does not set `enable_cpu_mem_arena`, so ORT's default (on) holds. "
            f"Over the same {on['calls']} calls: high-water {on['hwm_mb']:.0f} MiB with it, {off['hwm_mb']:.0f} "
            f"without; after the last call {on['end_mb']:.0f} vs {off['end_mb']:.0f} MiB (on minus off: "
            f"{arena['hwm_difference_mb']:+.0f} MiB at the high-water mark, {arena['kept_at_end_mb']:+.0f} at rest)."
        )
    if "encoder" in report["phases"]:
        heap, cache = report["phases"]["encoder"]["heap"], report["phases"]["encoder"]["cache"]
        lines.append(
            f"- Encoder heap at the end (tracemalloc): library Python objects {heap['library_objects_mb']:.1f} MiB, "
            f"numpy arrays {heap['numpy_arrays_mb']:.1f} (the cache's vectors {cache['vectors_mb']:.1f}: "
            f"{cache['entries']} entries, {cache['hits']} hits, {cache['evicted']} evicted)."
        )
    lines.append(
        f"- Bounded caches, filled: the embedding cache adds {parts['embedding_cache_full_mb']:.1f} MiB "
        f"({parts['embedding_cache_vectors_mb']:.1f} of vectors); the token-count LRU "
        f"({report['components']['token_lru']['max_tokens']} tokens) adds {parts['token_lru_full_mb']:.1f} MiB."
    )
    return lines


def render(report: dict[str, Any]) -> str:
    cfg, cpu = report["config"], report["machine"]["cpu"]
    flags = ", ".join(f for f, on in cpu["flags_of_note"].items() if on) or "none of note"
    begin, end = report["machine"]["load_average_at_start"], report["machine"]["load_average_at_end"]
    load = f"{begin[0]:.1f} at the start, {end[0]:.1f} at the end" if begin and end else "unknown"
    lines = [
        f"# Soak test: {report['model']} ({report['date']})",
        "",
        f"{cfg['minutes']} min budget ({cfg['wall_s'] / 60:.1f} min wall), RSS every {cfg['interval_s']} s, in MiB; "
        f"{cpu['model']}, {cpu['usable_cpus']} usable CPUs (flags: {flags}; load average {load}); "
        f"`{report['file']}`. Warm-up = the "
        f"first {WARMUP_SHARE:.0%} of a phase; start = model loaded. Encoder: calls of 1..64 random texts, default "
        f"settings, tracemalloc on. Server: default settings, {cfg['clients']} httpx clients, 20 % bad requests.",
        "",
        "| phase | minutes | start RSS | after warm-up | max | end | VmHWM | slope last half (MiB/min) "
        "| requests by status / calls | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, phase in report["phases"].items():
        s = phase["summary"]
        if "requests" in phase:
            by_status = ", ".join(f"{k}: {v}" for k, v in phase["requests"]["by_status"].items())
            done, errors = f"{phase['requests']['total']} ({by_status})", phase["requests"]["errors"]
        else:
            done, errors = f"{phase['samples'][-1]['calls']} calls, {phase['samples'][-1]['texts']} texts", 0
        slope = "n/a" if s["slope_last_half_mb_per_min"] is None else f"{s['slope_last_half_mb_per_min']:+.2f}"
        lines.append(
            f"| {name} | {s['seconds'] / 60:.1f} | {s['start_mb']:.1f} | {s['after_warmup_mb']:.1f} | {s['max_mb']:.1f}"
            f" | {s['end_mb']:.1f} | {s['hwm_mb']:.1f} | {slope} | {done} | {errors} |"
        )
    lines += ["", "## Parts (MiB; each measured as the RSS it adds in a fresh process)", "", "| part | MiB |"]
    lines += [
        "|---|---:|",
        *(f"| {k.removesuffix('_mb').replace('_', ' ')} | {v} |" for k, v in report["breakdown"]["parts"].items()),
    ]
    if "encoder" in report["phases"]:
        lines += ["", "Largest Python allocation sites at the end of the encoder phase:", ""]
        lines += [
            f"- `{s['site']}`: {s['mb']} MiB in {s['blocks']} blocks"
            for s in report["phases"]["encoder"]["heap"]["top_python_sites"]
        ]
    if "server" in report["phases"]:
        server = report["phases"]["server"]
        kinds = "; ".join(f"{k} {v}" for k, v in server["requests"]["by_kind"].items())
        lines += [
            "",
            f"Server requests by kind and status: {kinds}. Server embedding cache: "
            f"{server['cache']['hits']:.0f} hits, {server['cache']['misses']:.0f} misses.",
        ]
        lines += [f"- error: {e}" for e in server["requests"]["error_examples"]]
    lines += ["", "## Analysis", "", *report["analysis"], "", "![RSS over time](soak.png)", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = report["phases"]
    rows = [name for name in ("encoder", "server") if name in phases] or list(phases)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 3.6 * len(rows)), squeeze=False)
    for ax, name in zip(axes[:, 0], rows, strict=True):
        phase, summary = phases[name], phases[name]["summary"]
        minutes = [s["t"] / 60 for s in phase["samples"]]
        ax.plot(minutes, [s["rss_mb"] for s in phase["samples"]], color="C0", label=f"{name} RSS")
        if name == "encoder":
            net = [s["rss_mb"] - s["tracemalloc_overhead_mb"] for s in phase["samples"]]
            ax.plot(minutes, net, "--", color="C0", alpha=0.6, label="RSS minus tracemalloc's own")
            for probe, color in (("arena_on", "C2"), ("arena_off", "C3")):
                if probe in phases:
                    probe_samples = phases[probe]["samples"]
                    ax.plot(
                        [s["t"] / 60 for s in probe_samples],
                        [s["rss_mb"] for s in probe_samples],
                        color=color,
                        lw=1,
                        label=f"probe, {probe.replace('_', ' ')} (no tracemalloc)",
                    )
        ax.axhline(summary["hwm_mb"], color="grey", ls=":", lw=1, label=f"VmHWM {summary['hwm_mb']:.0f} MiB")
        ax.axvspan(0, summary["warmup_s"] / 60, color="grey", alpha=0.15, label="warm-up")
        slope = summary["slope_last_half_mb_per_min"]
        ax.set_title(f"{name}: last-half slope {'n/a' if slope is None else f'{slope:+.2f}'} MiB/min")
        ax.set_xlabel("minutes since the model was loaded")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Soak: {report['model']} ({report['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="prepared model folder (required unless --render)")
    parser.add_argument("--minutes", type=float, default=10.0, help="bound on the whole run (default 10)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between RSS samples (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent httpx clients in the server phase")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: usable CPUs)")
    parser.add_argument("--phases", default="encoder,arena,server", help="which of encoder,arena,server to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak")
    parser.add_argument("--cache-size", type=int, default=1024, help=argparse.SUPPRESS)  # both defaults: fixed
    parser.add_argument("--worker", choices=["encoder", "components"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--arena", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--render", type=Path, help="only re-write soak.md and soak.png (and the analysis) from a soak.json"
    )
    args = parser.parse_args()
    if args.render:
        write(json.loads(args.render.read_text(encoding="utf-8")), args.output)
        return
    if args.model is None:
        parser.error("--model is required")
    if args.worker:
        print(json.dumps((encoder_worker if args.worker == "encoder" else components_worker)(args)))
        return
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if unknown := phases - set(SHARES):
        parser.error(f"unknown phases {sorted(unknown)}; choose from {sorted(SHARES)}")
    budget, started = args.minutes * 60, time.monotonic()
    load_average = os.getloadavg() if hasattr(os, "getloadavg") else None
    print("soak: components", file=sys.stderr)
    components = run_worker("components", args, 600)
    args.max_seq_length = components["max_seq_length"]
    results: dict[str, Any] = {}
    if "encoder" in phases:
        seconds = SHARES["encoder"] * budget
        print(f"soak: encoder for {seconds:.0f} s", file=sys.stderr)
        results["encoder"] = run_worker("encoder", args, 3 * seconds + 600, "--seconds", str(seconds), "--trace")
    if "arena" in phases:
        seconds, fine = SHARES["arena"] * budget, str(min(args.interval, 1.0))
        print(f"soak: arena on for {seconds:.0f} s, then off for as many calls", file=sys.stderr)
        extra = ("--seconds", str(seconds), "--calls", str(ARENA_MIN_CALLS), "--interval", fine)
        results["arena_on"] = run_worker("encoder", args, 3 * seconds + 900, *extra)
        calls = str(results["arena_on"]["samples"][-1]["calls"])
        extra = ("--calls", calls, "--arena", "off", "--interval", fine)
        results["arena_off"] = run_worker("encoder", args, 6 * seconds + 900, *extra)
    if "server" in phases:
        seconds = SHARES["server"] * budget
        print(f"soak: server for {seconds:.0f} s", file=sys.stderr)
        results["server"] = server_phase(args, seconds)
    from fastembed_adapter.extras import versions

    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "model": args.model.resolve().name,
        "model_path": str(args.model),
        "file": components["file"],
        "config": {
            "minutes": args.minutes,
            "interval_s": args.interval,
            "clients": args.clients,
            "threads": args.threads,
            "seed": args.seed,
            "cache_size": args.cache_size,
            "max_seq_length": args.max_seq_length,
            "call_texts": [1, MAX_CALL_TEXTS],
            "text_words_log_uniform": [1, args.max_seq_length + 32],
            "texts": {
                "hot_pool": HOT_TEXTS,
                "hot_share": 0.5,
                "warm_pool": WARM_TEXTS,
                "warm_share": 0.3,
                "fresh_share": 0.2,
            },
            "warmup_share": WARMUP_SHARE,
            "plateau_mb_per_min": PLATEAU_MB_PER_MIN,
            "shares": SHARES,
            "wall_s": round(time.monotonic() - started, 1),
        },
        "machine": {
            "cpu": cpu_info(),
            "platform": platform.platform(),
            "load_average_at_start": load_average,
            "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "memory_total_mb": round(psutil.virtual_memory().total / MIB),
        },
        "versions": versions(VERSIONED),
        "components": components,
        "phases": results,
    }
    write(report, args.output)


def write(report: dict[str, Any], output: Path) -> None:
    """Summaries, breakdown and analysis from the samples, then soak.json, soak.md and soak.png in ``output``."""
    for phase in report["phases"].values():
        phase["summary"] = summarize(phase["samples"])
    report["breakdown"] = breakdown(report)
    report["analysis"] = analysis(report)
    output.mkdir(parents=True, exist_ok=True)
    (output / "soak.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (output / "soak.md").write_text(render(report), encoding="utf-8")
    plot(report, output / "soak.png")
    print(render(report))


if __name__ == "__main__":
    main()
