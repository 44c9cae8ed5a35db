"""Where ONNX Runtime's time goes inside an encoder, op by op, on one batch, for each file of a prepared folder.

For each ONNX file this runs one batch (``--batch`` texts of exactly ``--tokens`` tokens, tokenized by
the library's own encoder) through a session with ORT's profiler on: one untimed warm-up run, then
``--runs`` timed runs. The profile's kernel events (``cat == "Node"``, ``*_kernel_time``) are summed
per op type and per category (attention, INT8 GEMM, FP32 GEMM, the quantization chain, GELU,
normalization, other) and averaged over the timed runs. A second session of the same file, built by
the library (``fastembed_adapter.session.OnnxSession``) with profiling off, gives the wall time per
batch: the median of ``perf_counter`` around ``run``. Only one session is alive at a time.

    python bench/op_profile.py --prepared models/all-MiniLM-L6-v2 \\
        --files onnx/model.onnx,onnx/model_quint8_avx2.onnx --batch 32 --tokens 256 --markdown ops.md

Prints the Markdown table (``--json``: the figures as JSON); ``--markdown OUT.md`` also writes the table.
The profile files go to a temporary folder that is removed. Figures from a shared machine are noisy:
compare files within one run. Exit codes: 2 for a bad argument (missing folder, unknown file), 1 when
a model cannot be loaded or run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.cpu import _cpu_flags
from fastembed_adapter.errors import CorruptModelError, FastembedAdapterError, InferenceError
from fastembed_adapter.session import DISABLED_OPTIMIZERS, TOKEN_OUTPUTS, OnnxSession, model_feeds
from fastembed_adapter.texts import validation_texts
from fastembed_adapter.tokenization import position_limit

CATEGORIES = {
    "attention": "attention",
    "int8_gemm": "INT8 GEMM",
    "fp32_gemm": "FP32 GEMM",
    "quantization": "quantization chain",
    "gelu": "GELU",
    "normalization": "normalization",
    "other": "other",
}
ATTENTION_OPS = frozenset(
    {"Attention", "QAttention", "MultiHeadAttention", "GroupQueryAttention", "SparseAttention", "PackedAttention"}
)
INT8_GEMM_OPS = frozenset(
    {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits", "QGemm", "QLinearMatMul"}
)
FP32_GEMM_OPS = frozenset({"MatMul", "Gemm", "FusedMatMul", "FusedGemm"})
QUANT_OPS = frozenset({"DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"})
GELU_OPS = frozenset({"Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Erf"})
NORM_OPS = frozenset({"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"})
# Unfused attention (best effort, by node name): the Q·K^T and ·V MatMuls and the Softmax under an
# ".../attention/..." scope, but not the projections that live there too.
ATTENTION_CORE_OPS = frozenset({"Softmax", "MatMul", "FusedMatMul"})
PROJECTIONS = (
    *("query", "key", "value", "dense", "q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "qkv", "wqkv"),
    *("q", "k", "v", "o"),  # MPNet: /attention/attn/q/MatMul ...
)
# prepare/pertoken.py names every node it adds "<activation>/fea_pt/<Op>" or "<MatMul>/fea_pt/MatMulIntegerToFloat".
PERTOKEN_MARK = "/fea_pt/"
FLAGS = ("amx_int8", "amx_bf16", "avx512_vnni", "avx512f", "avx2")
TOP_OPS = 12


def classify(op: str, node: str) -> str:
    """The category of a kernel event: its op type first, then (per-token chain, unfused attention) its node name."""
    lowered = node.lower()
    if op in ATTENTION_OPS:
        return "attention"
    if op in INT8_GEMM_OPS:
        return "int8_gemm"
    if op in QUANT_OPS or PERTOKEN_MARK in node:
        return "quantization"
    if op in GELU_OPS:
        return "gelu"
    if op in NORM_OPS:
        return "normalization"
    if op in ATTENTION_CORE_OPS and "attention" in lowered:
        segments = lowered.replace(".", "/").split("/")
        if not any(part in PROJECTIONS for part in segments):
            return "attention"
    if op in FP32_GEMM_OPS:
        return "fp32_gemm"
    return "other"


# Control-flow nodes (our mask-free attention ``If``): their kernel time contains their subgraph's nodes.
CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})


def aggregate(events: Sequence[Mapping[str, Any]], warmup: int = 1) -> dict[str, Any]:
    """Per op type and category: mean ms and calls per run over the runs after ``warmup``, and the share of the run."""
    model_runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"]
    )
    timed = model_runs[warmup:]
    if not timed:
        raise InferenceError(f"ONNX Runtime's profile holds {len(model_runs)} runs, fewer than warm-up + 1.")
    starts = [e["ts"] for e in timed]
    op_us: dict[str, float] = defaultdict(float)
    op_calls: dict[str, int] = defaultdict(int)
    cat_us: dict[str, float] = defaultdict(float)
    cat_calls: dict[str, int] = defaultdict(int)
    cat_ops: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        index = bisect_right(starts, event["ts"]) - 1
        if index < 0 or event["ts"] > timed[index]["ts"] + timed[index]["dur"]:
            continue  # warm-up run (or outside any run)
        op = str(event.get("args", {}).get("op_name", "?"))
        if op in CONTROL_FLOW:
            continue  # its time is its subgraph's, whose nodes report their own kernel time
        category = classify(op, str(event["name"]).removesuffix("_kernel_time"))
        op_us[op] += event["dur"]
        op_calls[op] += 1
        cat_us[category] += event["dur"]
        cat_calls[category] += 1
        cat_ops[category][op] += event["dur"]
    runs = len(timed)
    run_ms = statistics.fmean(e["dur"] for e in timed) / 1000
    kernel_ms = sum(op_us.values()) / runs / 1000

    def figure(us: float, calls: int) -> dict[str, float]:
        ms = us / runs / 1000
        return {"ms": ms, "share": ms / run_ms if run_ms else 0.0, "calls": calls / runs}

    categories = {}
    for name in CATEGORIES:
        entry: dict[str, Any] = figure(cat_us[name], cat_calls[name])
        ops = sorted(cat_ops[name].items(), key=lambda item: -item[1])
        entry["ops"] = {op: us / runs / 1000 for op, us in ops}
        categories[name] = entry
    ops_sorted = sorted(op_us, key=lambda op: -op_us[op])
    return {
        "profiled_runs": runs,
        "profiled_run_ms": run_ms,
        "kernel_ms": kernel_ms,
        "outside_kernels_ms": run_ms - kernel_ms,
        "categories": categories,
        "ops": {op: figure(op_us[op], op_calls[op]) for op in ops_sorted},
    }


def batch_texts(encoder: OnnxSentenceEncoder, batch: int, tokens: int) -> list[str]:
    """``batch`` texts of at least ``tokens`` tokens each: the built-in passages, longest first, joined as needed."""
    passages = sorted(validation_texts(), key=len, reverse=True)
    texts = []
    for row in range(batch):
        text, extra = passages[row % len(passages)], 1
        while encoder.count_tokens([text])[0] < tokens:
            text += " " + passages[(row + extra) % len(passages)]
            extra += 1
        texts.append(text)
    return texts


def _output_name(session: ort.InferenceSession) -> str:
    names = [node.name for node in session.get_outputs()]
    return next((name for name in TOKEN_OUTPUTS if name in names), names[0])


def profile_file(
    path: Path, features: Mapping[str, np.ndarray], threads: int, runs: int, folder: Path
) -> dict[str, Any]:
    """Profile 1 warm-up + ``runs`` runs of ``path`` with the session options ``OnnxSession`` uses."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 4
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / path.stem)
    try:
        session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
        )
    except Exception as exc:  # ORT's own pybind classes
        raise CorruptModelError(f"ONNX Runtime cannot load {str(path)!r}: {_first_line(exc)}") from exc
    feeds = model_feeds([node.name for node in session.get_inputs()], features)
    output = [_output_name(session)]
    try:
        for _ in range(1 + runs):
            session.run(output, feeds)
    except Exception as exc:
        raise InferenceError(f"ONNX Runtime failed on {str(path)!r}: {_first_line(exc)}") from exc
    events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    return aggregate(events, warmup=1)


def wall_times(path: Path, features: Mapping[str, np.ndarray], threads: int, runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` runs (after one warm-up) on the library's own session, profiling off."""
    session = OnnxSession(path, threads)
    session.run(features)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(features)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def run(prepared: Path, files: list[str], batch: int, tokens: int, threads: int, runs: int) -> dict[str, Any]:
    """The report: options, CPU flags and, per file, the aggregated profile plus the wall time per batch."""
    encoder = OnnxSentenceEncoder(prepared, file_name=files[0], threads=threads, cache_size=0, metrics=False)
    features = encoder.preprocess(batch_texts(encoder, batch, tokens), max_length=tokens)
    del encoder  # one session alive at a time
    shape = features["input_ids"].shape
    if shape != (batch, tokens) or not features["attention_mask"].all():
        raise InferenceError(
            f"The batch came out {shape} (mask sum {features['attention_mask'].sum()}), not {batch}x{tokens}."
        )
    flags = _cpu_flags()
    report: dict[str, Any] = {
        "prepared": str(prepared),
        "batch": batch,
        "tokens": tokens,
        "threads": threads,
        "runs": runs,
        "warmup": 1,
        "onnxruntime": ort.__version__,
        "cpu_flags": [flag for flag in FLAGS if flag in flags],
        "files": {},
    }
    with tempfile.TemporaryDirectory(prefix="fea-op-profile-") as folder:
        for name in files:
            entry = profile_file(prepared / name, features, threads, runs, Path(folder))
            times = wall_times(prepared / name, features, threads, runs)
            report["files"][name] = {"wall_ms_median": statistics.median(times), "wall_ms": times, **entry}
    return report


def markdown(report: Mapping[str, Any]) -> str:
    """The table: categories, then the top op types; per file ms per batch and % of the profiled run."""
    files: dict[str, Any] = report["files"]
    flags = ", ".join(report["cpu_flags"]) or f"none of {', '.join(FLAGS)}"
    lines = [
        f"# ONNX Runtime op profile: {Path(report['prepared']).name}",
        "",
        f"- batch {report['batch']} x {report['tokens']} tokens, {report['threads']} threads, "
        f"{report['runs']} timed runs after {report['warmup']} warm-up; onnxruntime {report['onnxruntime']}; "
        f"CPU flags: {flags}",
        "- ms = kernel time per batch from ORT's profiler (mean over runs); % = share of the profiled run; "
        "wall = median of `session.run` on a session without profiling",
        "",
        "| | " + " | ".join(f"{name} ms | %" for name in files) + " |",
        "|---|" + "---:|---:|" * len(files),
    ]

    def row(label: str, values: list[tuple[float, float | None]]) -> str:
        cells = [f"{ms:.3f} | " + ("" if share is None else f"{100 * share:.1f}") for ms, share in values]
        return f"| {label} | " + " | ".join(cells) + " |"

    entries = list(files.values())
    lines.append(row("**wall per batch** (no profiling)", [(e["wall_ms_median"], None) for e in entries]))
    lines.append(row("**profiled run**", [(e["profiled_run_ms"], 1.0) for e in entries]))
    for key, label in CATEGORIES.items():
        lines.append(
            row(f"**{label}**", [(e["categories"][key]["ms"], e["categories"][key]["share"]) for e in entries])
        )
    lines.append(
        row(
            "*outside kernels*",
            [(e["outside_kernels_ms"], e["outside_kernels_ms"] / e["profiled_run_ms"]) for e in entries],
        )
    )
    ops = sorted(
        {op for e in entries for op in e["ops"]},
        key=lambda op: -max(e["ops"].get(op, {}).get("ms", 0) for e in entries),
    )
    for op in ops[:TOP_OPS]:
        values = [(e["ops"][op]["ms"], e["ops"][op]["share"]) if op in e["ops"] else (0.0, 0.0) for e in entries]
        lines.append(row(f"op `{op}`", values))
    if len(ops) > TOP_OPS:
        lines.append(f"\n{len(ops) - TOP_OPS} more op types in the JSON (`--json`).")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="folder written by `fastembed-adapter prepare`")
    parser.add_argument("--files", default=None, help="comma-separated, relative to --prepared (default: onnx/*.onnx)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=256, help="every text is truncated to exactly this many tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed runs, after 1 untimed warm-up")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--markdown", type=Path, default=None, metavar="OUT.md", help="also write the table here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag in ("batch", "tokens", "threads", "runs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    prepared: Path = args.prepared
    if not prepared.is_dir():
        parser.error(f"--prepared {prepared}: no such folder")
    found = sorted(str(path.relative_to(prepared)) for path in (prepared / "onnx").glob("*.onnx"))
    files = found if args.files is None else [name.strip() for name in args.files.split(",") if name.strip()]
    if not files:
        parser.error(f"--prepared {prepared}: no onnx/*.onnx file in it")
    unknown = [name for name in files if not (prepared / name).is_file()]
    if unknown:
        parser.error(f"--files: {', '.join(unknown)} not in {prepared} (found: {', '.join(found) or 'none'})")
    if len(set(files)) != len(files):
        parser.error(f"--files names a file twice: {args.files}")
    limit = position_limit(prepared)
    if limit is not None and args.tokens > limit:
        parser.error(f"--tokens {args.tokens}: the model holds at most {limit} positions")
    try:
        report = run(prepared, files, args.batch, args.tokens, args.threads, args.runs)
    except FastembedAdapterError as exc:
        print(f"op_profile.py: {_first_line(exc)}", file=sys.stderr)
        return 1
    table = markdown(report)
    if args.markdown is not None:
        args.markdown.write_text(table, encoding="utf-8")
    print(json.dumps(report, indent=2) if args.json else table, end="" if not args.json else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
