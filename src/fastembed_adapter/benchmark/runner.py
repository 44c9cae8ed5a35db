"""The orchestrator: every backend in its own fresh worker process, interleaved and repeated.

It builds the workload, runs the backends round after round (the order rotates every round),
then aggregates, compares and writes ``<output>/<name>/<date>.json`` plus the Markdown table
and the PNG plots beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import available_cpus, detect_target
from ..errors import FastembedAdapterError, InvalidInputError, ModelNotFoundError
from ..extras import versions
from ..layout import FP32_FILE, OPENVINO_FILE, int8_file_name, onnx_size
from .backends import BACKENDS, BASELINE, Backend, Kind, Precision, by_name
from .gemm import gemm_ceiling
from .peak import Peak, cpu_peak, with_overrides
from .stats import backend_summary, encoder_macs, per_run_figures, quality

__all__ = ["FULL_SIZES", "QUICK_SIZES", "BenchOptions", "peak_by_precision", "run_bench"]

FULL_SIZES = {"rounds": 3, "queries": 200, "warmup": 20, "short": 2000, "long": 200}
QUICK_SIZES = {"rounds": 2, "queries": 8, "warmup": 2, "short": 16, "long": 4}
MIN_LONG_TOKENS = 256


@dataclass(frozen=True)
class BenchOptions:
    """Everything one ``bench`` run needs; sizes default to :data:`FULL_SIZES`.

    ``peak_int8_gmacs`` / ``peak_fp32_gmacs`` None (the default) derive the peak from this CPU
    (:func:`.peak.cpu_peak`); a figure overrides it.
    """

    prepared: Path
    source: Path
    name: str | None = None
    output: Path = Path("bench/results")
    rounds: int = FULL_SIZES["rounds"]
    queries: int = FULL_SIZES["queries"]
    warmup: int = FULL_SIZES["warmup"]
    short: int = FULL_SIZES["short"]
    long: int = FULL_SIZES["long"]
    threads: int | None = None
    backends: tuple[str, ...] = tuple(b.name for b in BACKENDS)
    fp32_file: str = FP32_FILE
    int8_file: str | None = None
    peak_int8_gmacs: float | None = None
    peak_fp32_gmacs: float | None = None
    worker_timeout_s: float = 3600.0
    quick: bool = False
    progress: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("rounds", "queries", "short", "long"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
        if self.warmup < 0:
            raise InvalidInputError(f"warmup must be >= 0, got {self.warmup!r}.")
        for backend in self.backends:
            try:
                by_name(backend)
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from exc
        if BASELINE.name not in self.backends:
            raise InvalidInputError(f"The baseline {BASELINE.name!r} must be among the backends: every ratio needs it.")


def peak_by_precision(peak: Peak) -> dict[Precision, float | None]:
    """The peak each backend precision is held to: BF16 uses the CPU's BF16 peak if it has one, else FP32's."""
    bf16 = peak.bf16_gmacs if peak.bf16_gmacs is not None else peak.fp32_gmacs
    return {Precision.INT8: peak.int8_gmacs, Precision.FP32: peak.fp32_gmacs, Precision.BF16: bf16}


def _int8_file(options: BenchOptions) -> str | None:
    """The INT8 file to run: the one asked for, else the file `prepare` makes for this CPU if it exists."""
    if options.int8_file is not None:
        if not (options.prepared / options.int8_file).is_file():
            raise ModelNotFoundError(f"--int8-file {options.int8_file!r} does not exist in {options.prepared}.")
        return options.int8_file
    target = detect_target()
    name = int8_file_name(target) if target is not None else None
    return name if name is not None and (options.prepared / name).is_file() else None


def _model_file_mb(backend: Backend, options: BenchOptions, int8: str | None) -> float | None:
    if backend.kind is Kind.PYTORCH:
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (options.source / name).is_file():
                return (options.source / name).stat().st_size / 2**20
        return None
    file_name = options.fp32_file if backend.precision is Precision.FP32 else int8
    if backend.runtime == "openvino":
        file_name = OPENVINO_FILE
    path = options.prepared / file_name if file_name else None
    return onnx_size(path) / 2**20 if path is not None and path.is_file() else None


def _spawn(
    backend: Backend, options: BenchOptions, threads: int, int8: str | None, workload: Path, keep: Path | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "fastembed_adapter.benchmark.worker",
        "--backend",
        backend.name,
        "--source",
        str(options.source),
        "--prepared",
        str(options.prepared),
        "--fp32-file",
        options.fp32_file,
        "--threads",
        str(threads),
        "--workload",
        str(workload),
    ]
    if int8 is not None:
        command += ["--int8-file", int8]
    if keep is not None:
        command += ["--embeddings", str(keep)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    spawned_at = time.time()
    command += ["--spawned-at", repr(spawned_at)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=options.worker_timeout_s)
    except subprocess.TimeoutExpired:
        return {"backend": backend.name, "available": False, "reason": f"timed out after {options.worker_timeout_s} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        result: dict[str, Any] = json.loads(lines[-1])
        return result
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
    return {"backend": backend.name, "available": False, "reason": f"worker exited {done.returncode}: {tail[0][:300]}"}


def _token_counts(prepared: Path, texts: list[str], truncate: bool) -> list[int]:
    from ..layout import read_layout
    from ..tokenization import TextTokenizer

    layout = read_layout(prepared)
    tokenizer = TextTokenizer(prepared, layout.max_seq_length if truncate else None, layout.do_lower_case)
    return [len(enc.ids) for enc in tokenizer.tokenizer.encode_batch(texts, add_special_tokens=True)]


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    target = detect_target()
    return {
        "cpu": model or platform.processor(),
        "usable_cpus": available_cpus(),
        "isa": target.value if target else None,
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
    }


_VERSIONED = (
    "fastembed-adapter",
    "onnxruntime",
    "torch",
    "transformers",
    "sentence-transformers",
    "fastembed",
    "tokenizers",
)


def _say(options: BenchOptions, message: str) -> None:
    if options.progress is not None:
        options.progress(message)


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the whole benchmark and write its files; returns the result (also in ``result["files"]``)."""
    from .report import evaluate_targets, render_markdown
    from .workload import build_workload

    for folder, what in (
        (options.prepared, "prepared folder"),
        (options.source, "source sentence-transformers folder"),
    ):
        if not folder.is_dir():
            raise ModelNotFoundError(f"The {what} {str(folder)!r} does not exist.")
    int8 = _int8_file(options)
    threads = options.threads or available_cpus()
    peak = with_overrides(cpu_peak(threads), options.peak_int8_gmacs, options.peak_fp32_gmacs)
    name = options.name or options.prepared.name
    backends = [by_name(b) for b in options.backends]
    config = json.loads((options.prepared / "config.json").read_text(encoding="utf-8"))
    workload = build_workload(options.queries, options.short, options.long, options.warmup)
    raw_long = _token_counts(options.prepared, workload.long, truncate=False)
    tokens = {
        part: _token_counts(options.prepared, getattr(workload, part), True) for part in ("queries", "short", "long")
    }
    started = dt.datetime.now()
    _say(options, "ONNX Runtime GEMM ceiling")
    ceiling = gemm_ceiling(threads, (512, 512, 512) if options.quick else (2048, 1024, 1024))

    runs: dict[str, dict[int, dict[str, Any]]] = {b.name: {} for b in backends}
    unavailable: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fea-bench-") as tmp:
        workload_path = Path(tmp) / "workload.json"
        workload.save(workload_path)
        vectors_dir = Path(tmp) / "vectors"
        for r in range(options.rounds):
            order = backends[r % len(backends) :] + backends[: r % len(backends)]
            for backend in order:
                if backend.name in unavailable:
                    continue
                _say(options, f"round {r + 1}/{options.rounds}: {backend.name}")
                keep = vectors_dir if not runs[backend.name] else None
                result = _spawn(backend, options, threads, int8, workload_path, keep)
                if result.get("available"):
                    runs[backend.name][r] = result
                else:
                    if backend == BASELINE:
                        raise FastembedAdapterError(f"The PyTorch baseline failed: {result.get('reason')}")
                    unavailable[backend.name] = str(result.get("reason"))
        vectors = {
            b.name: {part: np.load(vectors_dir / f"{b.name}.{part}.npy") for part in ("queries", "short", "long")}
            for b in backends
            if runs[b.name]
        }

    figures = {b: {r: per_run_figures(run) for r, run in rs.items()} for b, rs in runs.items()}
    macs = {part: encoder_macs(config, counts) for part, counts in tokens.items()}
    peaks = peak_by_precision(peak)
    # no BF16 GEMM ceiling is measured here: BF16 is held to the FP32 one
    ceilings = {Precision.INT8: ceiling["int8_gmacs"], Precision.FP32: ceiling["fp32_gmacs"]}
    ceilings[Precision.BF16] = ceilings[Precision.FP32]
    results: dict[str, Any] = {}
    for backend in backends:
        entry: dict[str, Any] = {
            "label": backend.label,
            "kind": backend.kind.value,
            "precision": backend.precision.value,
            "model_file_mb": _model_file_mb(backend, options, int8),
            "available": backend.name not in unavailable,
        }
        if backend.name in unavailable:
            results[backend.name] = {**entry, "reason": unavailable[backend.name]}
            continue
        entry |= backend_summary(
            runs[backend.name],
            baseline=figures[BASELINE.name],
            quality_figures=quality(vectors[BASELINE.name], vectors[backend.name]),
            macs=macs,
            texts={part: len(counts) for part, counts in tokens.items()},
            peak_gmacs=peaks[backend.precision],
            ceiling_gmacs=ceilings[backend.precision],
        )
        results[backend.name] = entry

    options_json = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items() if k != "progress"}
    report: dict[str, Any] = {
        "model": name,
        "date": started.isoformat(timespec="seconds"),
        "seconds": (dt.datetime.now() - started).total_seconds(),
        "options": options_json | {"threads": threads, "int8_file": int8},
        "machine": _machine(),
        "versions": versions(_VERSIONED),
        "peak": peak.as_json(),
        "gemm_ceiling": ceiling,
        "model_config": {
            k: config.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size")
        },
        "workload": {
            "queries": len(workload.queries),
            "warmup": len(workload.warmup),
            "short": len(workload.short),
            "long": len(workload.long),
            "tokens_mean": {part: float(np.mean(counts)) for part, counts in tokens.items()},
            "long_tokens_before_truncation": {"min": int(min(raw_long)), "mean": float(np.mean(raw_long))},
            "long_min_tokens_ok": bool(min(raw_long) >= MIN_LONG_TOKENS),
            "gmac_per_text": {part: macs[part] / len(tokens[part]) / 1e9 for part in tokens},
        },
        "order": "round r runs the backends rotated by r (each in a fresh process)",
        "baseline": BASELINE.name,
        "backends": results,
    }
    folder = options.output / name
    folder.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d_%H%M%S")
    files = {"json": folder / f"{stem}.json", "markdown": folder / f"{stem}.md"}
    from .plots import write_plots

    report["targets"] = evaluate_targets(report)
    files |= write_plots(report, folder, stem)
    report["files"] = {kind: str(path) for kind, path in files.items()}
    files["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    files["markdown"].write_text(render_markdown(report), encoding="utf-8")
    return report
