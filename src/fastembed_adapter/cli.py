"""Command line: ``fastembed-adapter {prepare,info,bench,serve}`` and the ``prepare`` shortcut.

Exit codes: 0 success, 1 failure (one-line cause on stderr), 2 usage error (argparse).
Every option has an environment fallback with the ``FEA_`` prefix, read when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import FastembedAdapterError, InvalidInputError

__all__ = ["main", "prepare_main"]


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"FEA_{name}", default)


def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=_env("MODEL"),
        required=_env("MODEL") is None,
        help="hub id (owner/name) or local sentence-transformers folder [env FEA_MODEL]",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=_env("OUTPUT"),
        help="output folder (default: ./models/<model name>) [env FEA_OUTPUT]",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8", "none"),
        default=_env("QUANTIZE", "int8"),
        help="write an INT8 file besides the FP32 one (default int8) [env FEA_QUANTIZE]",
    )
    parser.add_argument(
        "--target",
        choices=("auto", "avx512_vnni", "avx512", "avx2", "arm64"),
        default=_env("TARGET", "auto"),
        help="CPU the INT8 file is made for; auto = this machine [env FEA_TARGET]",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=_env("MAX_SEQ_LENGTH"),
        help="truncate texts to N tokens (default: the model's own) [env FEA_MAX_SEQ_LENGTH]",
    )
    parser.add_argument(
        "--quality-target",
        default=_env("QUALITY_TARGET", "min=0.99,mean=0.997,top10=0.95"),
        help="INT8 quality target vs PyTorch: per-text min and mean cosine, top-10 neighbour agreement "
        "(default min=0.99,mean=0.997,top10=0.95) [env FEA_QUALITY_TARGET]",
    )
    parser.add_argument(
        "--min-cosine",
        type=float,
        default=_env("MIN_COSINE"),
        help="override only the min-cosine part of --quality-target [env FEA_MIN_COSINE]",
    )
    parser.add_argument(
        "--allow-fp32-fallback",
        action="store_true",
        help="if no INT8 recipe meets the target, publish the FP32 model (exit 0) instead of failing",
    )
    parser.add_argument(
        "--calibration-texts",
        type=Path,
        default=_env("CALIBRATION_TEXTS"),
        help="texts for calibrated recipes: one per line, or .jsonl with a 'text' field",
    )
    parser.add_argument(
        "--recipe",
        default=_env("RECIPE"),
        help="force one INT8 recipe instead of trying them fastest-first [env FEA_RECIPE]",
    )
    parser.add_argument(
        "--validation-texts",
        type=Path,
        default=_env("VALIDATION_TEXTS"),
        help="your own validation texts: one per line, or .jsonl with a 'text' field",
    )
    parser.add_argument("--revision", default=_env("REVISION"), help="hub revision (branch, tag, commit)")
    parser.add_argument(
        "--threads",
        type=int,
        default=_env("THREADS"),
        help="ONNX Runtime threads for validation (default: usable CPUs) [env FEA_THREADS]",
    )
    parser.add_argument("--no-benchmark", action="store_true", help="skip the quick benchmark in the report")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--json", action="store_true", help="print report.json instead of REPORT.md")


def _run_prepare(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .prepare import STAGES, PrepareOptions, prepare_model
    from .prepare.report import render_markdown
    from .prepare.validate import QualityTarget

    try:
        target = QualityTarget.parse(args.quality_target)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc

    output = args.output or Path("models") / Path(str(args.model).rstrip("/")).name
    with tqdm(total=len(STAGES), desc="prepare", unit="stage", file=sys.stderr) as bar:

        def progress(stage: str) -> None:
            bar.set_description(f"prepare: {stage}")
            bar.update(STAGES.index(stage) - bar.n)

        options = PrepareOptions(
            model=str(args.model),
            output=output,
            quantize=args.quantize,
            target=args.target,
            max_seq_length=int(args.max_seq_length) if args.max_seq_length is not None else None,
            force=args.force,
            revision=args.revision,
            min_cosine_int8=float(args.min_cosine) if args.min_cosine is not None else target.min_cosine,
            min_mean_cosine_int8=target.mean_cosine,
            min_topk_agreement_int8=target.topk_agreement,
            allow_fp32_fallback=args.allow_fp32_fallback,
            calibration_texts=Path(args.calibration_texts) if args.calibration_texts else None,
            recipe=args.recipe,
            validation_texts=Path(args.validation_texts) if args.validation_texts else None,
            benchmark=not args.no_benchmark,
            threads=int(args.threads) if args.threads is not None else None,
            progress=progress,
        )
        report = prepare_model(options)
        bar.update(len(STAGES) - bar.n)
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else render_markdown(report))
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from .encoder import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(args.model, file_name=args.file_name)
    manifest = encoder.layout.manifest
    info = {
        "model": str(encoder.model_path),
        "file": encoder.file_name,
        "dimension": encoder.get_sentence_embedding_dimension(),
        "max_seq_length": encoder.max_seq_length,
        "pooling": [mode.value for mode in encoder.layout.pooling.modes],
        "normalize": encoder.layout.normalize,
        "onnx_files": list(encoder.layout.onnx_files),
        "validation": dict(manifest.data.get("validation", {})) if manifest else None,
    }
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    return 0


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    def env_int(name: str) -> int | None:
        value = _env(name)
        return int(value) if value is not None else None

    parser.add_argument(
        "--prepared",
        type=Path,
        default=_env("BENCH_PREPARED"),
        required=_env("BENCH_PREPARED") is None,
        help="folder written by `prepare` [env FEA_BENCH_PREPARED]",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=_env("BENCH_SOURCE"),
        required=_env("BENCH_SOURCE") is None,
        help="the sentence-transformers folder it was prepared from (PyTorch baseline) [env FEA_BENCH_SOURCE]",
    )
    parser.add_argument(
        "--name", default=_env("BENCH_NAME"), help="results subfolder (default: the prepared folder's name)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(_env("BENCH_OUTPUT", "bench/results")),
        help="results root; files go to OUTPUT/NAME/<date>.* [env FEA_BENCH_OUTPUT]",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    for name, what in (
        ("rounds", "rounds (each backend once per round, fresh process)"),
        ("queries", "batch-1 queries"),
        ("warmup", "warm-up queries"),
        ("short", "short sentences (throughput)"),
        ("long", "long passages (throughput)"),
    ):
        parser.add_argument(
            f"--{name}",
            type=int,
            default=env_int(f"BENCH_{name.upper()}"),
            help=f"number of {what} [env FEA_BENCH_{name.upper()}]",
        )
    parser.add_argument("--threads", type=int, default=env_int("THREADS"), help="threads per backend [env FEA_THREADS]")
    parser.add_argument("--backends", default=_env("BENCH_BACKENDS"), help="comma-separated subset (default: all)")
    parser.add_argument("--fp32-file", default=_env("BENCH_FP32_FILE", "onnx/model.onnx"), help="FP32 ONNX file")
    parser.add_argument("--int8-file", default=_env("BENCH_INT8_FILE"), help="INT8 ONNX file (default: this CPU's)")
    parser.add_argument("--peak-int8-gmacs", type=float, default=float(_env("BENCH_PEAK_INT8_GMACS", 850)))
    parser.add_argument("--peak-fp32-gmacs", type=float, default=float(_env("BENCH_PEAK_FP32_GMACS", 213)))
    parser.add_argument("--json", action="store_true", help="print the result JSON instead of the Markdown")


def _run_bench(args: argparse.Namespace) -> int:
    from .benchmark import BACKENDS, BenchOptions, run_bench
    from .benchmark.report import render_markdown
    from .benchmark.runner import FULL_SIZES, QUICK_SIZES

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    size = {key: getattr(args, key) if getattr(args, key) is not None else default for key, default in sizes.items()}
    names = tuple(b.strip() for b in args.backends.split(",") if b.strip()) if args.backends else None

    def progress(message: str) -> None:
        sys.stderr.write(f"bench: {message}\n")

    options = BenchOptions(
        prepared=args.prepared,
        source=args.source,
        name=args.name,
        output=args.output,
        rounds=size["rounds"],
        queries=size["queries"],
        warmup=size["warmup"],
        short=size["short"],
        long=size["long"],
        threads=args.threads,
        backends=names or tuple(b.name for b in BACKENDS),
        fp32_file=args.fp32_file,
        int8_file=args.int8_file,
        peak_int8_gmacs=args.peak_int8_gmacs,
        peak_fp32_gmacs=args.peak_fp32_gmacs,
        quick=args.quick,
        progress=progress,
    )
    report = run_bench(options)
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else render_markdown(report))
    return 0


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve`` flags; unset ones stay None so ``ServerSettings`` holds the defaults (named in the help)."""
    truthy = ("1", "true", "yes", "on")
    parser.add_argument(
        "--model",
        default=_env("MODEL"),
        required=_env("MODEL") is None,
        help="folder written by `prepare` (or hub id with onnx/*.onnx) [env FEA_MODEL]",
    )
    parser.add_argument(
        "--model-name",
        default=_env("MODEL_NAME"),
        help="id reported to clients (default: folder name) [env FEA_MODEL_NAME]",
    )
    parser.add_argument("--file-name", default=_env("FILE_NAME"), help="ONNX file in the folder [env FEA_FILE_NAME]")
    parser.add_argument("--host", default=_env("HOST"), help="address to bind (default 127.0.0.1) [env FEA_HOST]")
    parser.add_argument(
        "--port",
        type=int,
        default=_env("PORT", os.environ.get("PORT")),
        help="port (default 8080) [env FEA_PORT, then PORT]",
    )
    parser.add_argument("--threads", type=int, default=_env("THREADS"), help="ONNX Runtime threads [env FEA_THREADS]")
    for flag, kind, what in (
        ("max-batch-texts", int, "texts per micro-batch (default 32)"),
        ("max-batch-tokens", int, "tokens per micro-batch (default 16384)"),
        ("max-batch-wait-ms", float, "how long a request waits for others to join its batch (default 2)"),
        ("max-queue", int, "requests queued or running; more get 429 (default 256)"),
        ("max-inputs", int, "texts per request; more get 413 (default 512)"),
        ("max-body-bytes", int, "request body size; larger gets 413 (default 2097152)"),
        ("cache-size", int, "LRU embedding cache entries per replica, 0 = off (default 1024)"),
        ("drain-timeout", float, "seconds in-flight requests get after SIGTERM (default 30)"),
    ):
        env = flag.replace("-", "_").upper()
        parser.add_argument(f"--{flag}", type=kind, default=_env(env), help=f"{what} [env FEA_{env}]")
    auto = _env("AUTO_TRUNCATE")
    parser.add_argument(
        "--auto-truncate",
        action=argparse.BooleanOptionalAction,
        default=None if auto is None else auto.strip().lower() in truthy,
        help="truncate texts over max_seq_length instead of 413 (default off) [env FEA_AUTO_TRUNCATE]",
    )
    parser.add_argument("--log-format", choices=("json", "text"), default=_env("LOG_FORMAT", "json"))
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "info"), help="[env FEA_LOG_LEVEL]")


def _run_serve(args: argparse.Namespace) -> int:
    from .server import ServerSettings, run
    from .server.logs import configure_logging

    given = {name: value for name, value in vars(args).items() if value is not None and name != "command"}
    settings = ServerSettings(**given, api_key=_env("API_KEY") or None)  # the key only from the environment
    configure_logging(settings.log_format, settings.log_level)
    return run(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastembed-adapter",
        description="Sentence embeddings on ONNX Runtime INT8: prepare a model, inspect it.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare",
        help="export, optimize, quantize and validate a sentence-transformers model",
        description="Export a sentence-transformers model to ONNX, quantize it to INT8, validate it "
        "against PyTorch and write a self-describing model folder with REPORT.md.",
    )
    _add_prepare_arguments(prepare)
    info = commands.add_parser("info", help="describe a prepared model folder")
    info.add_argument("model", help="model folder or hub id")
    info.add_argument("--file-name", default=None, help="ONNX file inside the folder")
    bench = commands.add_parser(
        "bench",
        help="side-by-side benchmark: PyTorch, sentence-transformers ONNX, fastembed, OnnxSentenceEncoder",
        description="Benchmark every backend in its own fresh process, interleaved and repeated; write "
        "JSON, Markdown and PNG plots to OUTPUT/NAME/ (extra 'bench').",
    )
    _add_bench_arguments(bench)
    serve = commands.add_parser(
        "serve",
        help="HTTP embedding service: OpenAI /v1/embeddings, TEI /embed, /health, /metrics (extra 'serve')",
        description="Serve a prepared model over HTTP with dynamic micro-batching. Every flag has an "
        "FEA_* environment fallback; FEA_API_KEY enables bearer authentication.",
    )
    _add_serve_arguments(serve)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {"prepare": _run_prepare, "info": _run_info, "bench": _run_bench, "serve": _run_serve}
    try:
        return handlers[args.command](args)
    except FastembedAdapterError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 1
    except Exception as exc:  # one-line cause; FEA_DEBUG=1 shows the traceback
        if _env("DEBUG"):
            raise
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fastembed-adapter``."""
    return _dispatch(_parser().parse_args(argv))


def prepare_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prepare`` shortcut (same options as ``fastembed-adapter prepare``)."""
    parser = argparse.ArgumentParser(
        prog="prepare",
        description="Export a sentence-transformers model to ONNX, quantize it to INT8, validate it "
        "against PyTorch and write a self-describing model folder with REPORT.md.",
    )
    _add_prepare_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "prepare"
    return _dispatch(args)


if __name__ == "__main__":
    raise SystemExit(main())
