"""Command line: ``fastembed-adapter {prepare,info,bench,serve,embed}`` and the ``prepare`` shortcut.

Exit codes: 0 success; 1 failure (a one-line ``error: ...`` on stderr, the traceback too with
``--debug`` / ``FEA_DEBUG=1``); 2 usage error (argparse: a bad flag, or a bad ``FEA_*`` value of the
command being run); 130 / 143 stopped by SIGINT / SIGTERM (``prepare`` removes its staging folder).

Every flag is declared by ``_option`` with an environment fallback (``FEA_`` prefix, shown in
``--help`` as ``[env: FEA_X]``), read when the command runs and parsed by the flag's own type.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import FastembedAdapterError, InvalidInputError
from ..layout import FP32_FILE
from .embed import DESCRIPTION as EMBED_DESCRIPTION
from .embed import add_embed_arguments, run_embed
from .info import add_info_arguments, run_info
from .noise import quiet_third_party
from .options import add_common_arguments, add_flag, fraction, quality_target

__all__ = ["main", "prepare_main"]

_PREPARE_DESCRIPTION = (
    "Export a sentence-transformers model to ONNX, quantize it to INT8, validate it against PyTorch "
    "and write a self-describing model folder with REPORT.md."
)


# -- prepare -------------------------------------------------------------------------------------


def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    def option(flag: str, **kwargs: Any) -> None:
        add_flag(parser, flag, env="FEA_" + flag.lstrip("-").replace("-", "_").upper(), **kwargs)

    option("--model", required=True, help="hub id (owner/name) or local sentence-transformers folder")
    option(
        "--kind",
        choices=("auto", "dense", "colbert"),
        default="auto",
        help="dense sentence embeddings or a PyLate ColBERT model; auto = read from the model's configs",
    )
    option("--output", type=Path, help="output folder (default: ./models/<model name>)")
    option("--quantize", choices=("int8", "none"), default="int8", help="also write an INT8 file (default int8)")
    option(
        "--target",
        choices=("auto", "avx512_vnni", "avx512", "avx2", "arm64"),
        default="auto",
        help="CPU the INT8 file is made for; auto = this machine",
    )
    option("--max-seq-length", type=int, help="truncate texts to N tokens (default: the model's own)")
    option(
        "--quality-target",
        type=quality_target,
        metavar="SPEC",
        help="INT8 quality target vs PyTorch: per-text min and mean cosine, top-10 neighbour agreement, each in "
        "(0, 1] (default min=0.99,mean=0.997,top10=0.95; parts left out keep these)",
    )
    option("--min-cosine", type=fraction, help="override only the min-cosine part of --quality-target, in (0, 1]")
    option(
        "--allow-fp32-fallback",
        switch=True,
        default=False,
        help="if no INT8 recipe meets the target, publish the FP32 model (exit 0) instead of failing",
    )
    option("--calibration-texts", type=Path, help="texts for calibrated recipes: one per line, or .jsonl 'text'")
    option("--recipe", help="force one INT8 recipe instead of trying them fastest-first")
    option("--validation-texts", type=Path, help="your own validation texts: one per line, or .jsonl 'text'")
    option("--revision", help="hub revision (branch, tag, commit)")
    option("--threads", type=int, help="ONNX Runtime threads for validation (default: usable CPUs)")
    option("--benchmark", switch=True, default=True, help="run the quick benchmark for the report (default on)")
    option(
        "--layout",
        choices=("default", "transformers.js"),
        default="default",
        help="also write OUTPUT/transformers.js/ for @huggingface/transformers (weights inline, model_quantized.onnx)",
    )
    option(
        "--torch-weights",
        switch=True,
        default=False,
        help="keep the source's PyTorch weights in the output, so sentence-transformers or PyLate load it with torch",
    )
    option(
        "--openvino",
        switch=True,
        default=True,
        help="also write openvino/openvino_model.xml (FP32 OpenVINO IR, validated like the ONNX files) when the "
        "openvino extra is installed (default on; --no-openvino skips it)",
    )
    option("--force", switch=True, default=False, help="replace an existing output folder")
    add_flag(parser, "--json", env="FEA_JSON", switch=True, default=False, help="print report.json, not REPORT.md")
    add_common_arguments(parser)


def _run_prepare(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..prepare import STAGES, PrepareOptions, prepare_model
    from ..prepare.report import render_markdown
    from ..prepare.validate import INT8_TARGET

    target = args.quality_target or INT8_TARGET
    output = args.output or Path("models") / Path(str(args.model).rstrip("/")).name
    with (
        quiet_third_party(),
        tqdm(total=len(STAGES), desc="prepare", unit="stage", file=sys.stderr) as bar,
        _log_above(bar),
    ):

        def progress(stage: str) -> None:
            bar.set_description(f"prepare: {stage}")
            bar.update(STAGES.index(stage) - bar.n)

        options = PrepareOptions(
            model=str(args.model),
            output=output,
            quantize=args.quantize,
            target=args.target,
            max_seq_length=args.max_seq_length,
            force=args.force,
            revision=args.revision,
            min_cosine_int8=args.min_cosine if args.min_cosine is not None else target.min_cosine,
            min_mean_cosine_int8=target.mean_cosine,
            min_topk_agreement_int8=target.topk_agreement,
            allow_fp32_fallback=args.allow_fp32_fallback,
            calibration_texts=args.calibration_texts,
            recipe=args.recipe,
            validation_texts=args.validation_texts,
            benchmark=args.benchmark,
            layouts=(args.layout,) if args.layout != "default" else (),
            torch_weights=args.torch_weights,
            openvino=args.openvino,
            threads=args.threads,
            progress=progress,
        )
        if _colbert_kind(args.kind, str(args.model), args.revision):
            from ..prepare.colbert import COLBERT_INT8_TARGET, prepare_colbert, render_colbert_markdown

            if args.quality_target is None:  # ColBERT's own default gate (per-token mean, ranking agreement)
                options = dataclasses.replace(
                    options,
                    min_mean_cosine_int8=COLBERT_INT8_TARGET.mean_token_cosine,
                    min_topk_agreement_int8=COLBERT_INT8_TARGET.topk_agreement,
                )
            report, render = prepare_colbert(options), render_colbert_markdown
        else:
            report, render = prepare_model(options), render_markdown
        bar.update(len(STAGES) - bar.n)
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else render(report))
    return 0


@contextlib.contextmanager
def _log_above(bar: Any) -> Iterator[None]:
    """While ``bar`` is drawn on stderr, log lines go above it (cleared, written, redrawn), not glued to its end."""

    class AboveBar:
        def write(self, text: str) -> int:
            with bar.external_write_mode(file=sys.stderr):
                return sys.stderr.write(text)

        def flush(self) -> None:
            sys.stderr.flush()

    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr]
    for handler in handlers:
        handler.setStream(AboveBar())
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(sys.stderr)


def _colbert_kind(kind: str, model: str, revision: str | None) -> bool:
    """``--kind``: colbert or dense; auto reads the folder's (or hub repo's) configs."""
    if kind != "auto":
        return kind == "colbert"
    from ..hub import is_colbert_model

    return is_colbert_model(model, revision)


# Third-party output during ``prepare`` that tells the user nothing they can act on: (logger, message start).
# -- bench ---------------------------------------------------------------------------------------


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    def option(flag: str, **kwargs: Any) -> None:
        add_flag(parser, flag, env="FEA_BENCH_" + flag.lstrip("-").replace("-", "_").upper(), **kwargs)

    option("--prepared", type=Path, required=True, help="folder written by `prepare`")
    option(
        "--source",
        type=Path,
        required=True,
        help="the sentence-transformers folder it was prepared from (PyTorch baseline)",
    )
    option("--name", help="results subfolder (default: the prepared folder's name)")
    option("--output", type=Path, default=Path("bench/results"), help="results root; files go to OUTPUT/NAME/")
    option("--quick", switch=True, default=False, help="tiny sizes: a smoke test, not a measurement")
    for name, what in (
        ("rounds", "rounds (each backend once per round, fresh process)"),
        ("queries", "batch-1 queries"),
        ("warmup", "warm-up queries"),
        ("short", "short sentences (throughput)"),
        ("long", "long passages (throughput)"),
    ):
        option(f"--{name}", type=int, help=f"number of {what}")
    add_flag(parser, "--threads", env="FEA_THREADS", type=int, help="threads per backend")
    option("--backends", help="comma-separated subset (default: all)")
    option("--fp32-file", default=FP32_FILE, help="FP32 ONNX file")
    option("--int8-file", help="INT8 ONNX file (default: this CPU's)")
    option("--peak-int8-gmacs", type=float, help="the CPU's peak INT8 GMAC/s (default: from its flags and clock)")
    option("--peak-fp32-gmacs", type=float, help="the CPU's peak FP32 GMAC/s (default: from its flags and clock)")
    add_flag(parser, "--json", env="FEA_JSON", switch=True, default=False, help="print the result JSON, not Markdown")
    add_common_arguments(parser)


def _run_bench(args: argparse.Namespace) -> int:
    from ..benchmark import BACKENDS, BenchOptions, run_bench
    from ..benchmark.report import render_markdown
    from ..benchmark.runner import FULL_SIZES, QUICK_SIZES

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


# -- serve ---------------------------------------------------------------------------------------


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve`` flags; unset ones stay None so ``ServerSettings`` holds the defaults (named in the help)."""

    def option(flag: str, **kwargs: Any) -> None:
        kwargs.setdefault("env", "FEA_" + flag.lstrip("-").replace("-", "_").upper())
        add_flag(parser, flag, **kwargs)

    option("--model", required=True, help="folder written by `prepare` (or hub id with onnx/*.onnx)")
    option("--model-name", help="id reported to clients (default: folder name)")
    option("--file-name", help="ONNX file in the folder")
    option("--host", help="address to bind (default 127.0.0.1)")
    option("--port", type=int, env=("FEA_PORT", "PORT"), help="port (default 8080)")
    option("--threads", type=int, help="ONNX Runtime threads")
    option("--runtime", choices=("onnxruntime", "openvino", "auto"), help="dense models: runtime (default onnxruntime)")
    for flag, kind, what in (
        ("--max-batch-texts", int, "texts per micro-batch (default 32)"),
        ("--max-batch-tokens", int, "tokens per micro-batch (default 16384)"),
        ("--max-batch-wait-ms", float, "how long a request waits for others to join its batch (default 2)"),
        ("--max-queue", int, "requests queued or running; more get 429 (default 256)"),
        ("--max-inputs", int, "texts per request; more get 413 (default 512)"),
        ("--max-body-bytes", int, "request body size; larger gets 413 (default 2097152)"),
        ("--cache-size", int, "LRU embedding cache entries per replica, 0 = off (default 1024)"),
        ("--drain-timeout", float, "seconds in-flight requests get after SIGTERM and the grace period (default 30)"),
        ("--drain-grace", float, "seconds after SIGTERM of /health 503 while still serving (default 5)"),
        ("--header-timeout", float, "seconds a client gets to send a request's headers; then 408 (default 10)"),
        ("--body-timeout", float, "seconds a client gets to send a request's body; then 408 (default 30)"),
        ("--max-connections", int, "connections open at once; more get 503 and are closed (default 512)"),
    ):
        option(flag, type=kind, help=what)
    option(
        "--auto-truncate",
        switch=True,
        help="truncate texts over max_seq_length unless a request sends truncate=false (default on); "
        "--no-auto-truncate: 413 unless it sends truncate=true",
    )
    option("--log-format", choices=("json", "text"), default="json", help="log line format")
    option("--log-level", default="info", help="log level")
    add_common_arguments(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from ..server import ServerSettings, run
    from ..server.logs import configure_logging

    cli_only = {"command", "debug"}
    given = {name: value for name, value in vars(args).items() if value is not None and name not in cli_only}
    key = os.environ.get("FEA_API_KEY")  # the key only from the env; set but empty is refused, not "no auth"
    try:
        settings = ServerSettings(**given, api_key=key)
    except InvalidInputError as exc:  # a setting the server cannot run with: a usage error, as a bad flag
        sys.stderr.write(f"fastembed-adapter serve: error: {exc}\n")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    return run(settings)


# -- entry points ----------------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("fastembed-adapter")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from .. import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastembed-adapter",
        description="Sentence embeddings on ONNX Runtime INT8: prepare a model, inspect it, benchmark it, serve it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare",
        help="export, optimize, quantize and validate a sentence-transformers model",
        description=_PREPARE_DESCRIPTION,
    )
    _add_prepare_arguments(prepare)
    info = commands.add_parser(
        "info",
        help="describe a model folder: recipe, quality target, files with sizes and validation",
        description="Describe a model folder; --json prints its manifest as `prepare` wrote it.",
    )
    add_info_arguments(info)
    bench = commands.add_parser(
        "bench",
        help="side-by-side benchmark: PyTorch, sentence-transformers ONNX, fastembed, OnnxSentenceEncoder",
        description="Benchmark every backend in its own fresh process, interleaved and repeated; write "
        "JSON, Markdown and PNG plots to OUTPUT/NAME/ (extra 'bench').",
    )
    _add_bench_arguments(bench)
    serve = commands.add_parser(
        "serve",
        help="HTTP embedding service: OpenAI /v1/embeddings, TEI /embed /embed_all /similarity /tokenize and "
        "POST /, /health, /metrics (extra 'serve')",
        description="Serve a prepared model over HTTP with dynamic micro-batching. Every flag has an "
        "FEA_* environment fallback; FEA_API_KEY enables bearer authentication.",
    )
    _add_serve_arguments(serve)
    embed = commands.add_parser(
        "embed",
        help="embed a corpus file (JSONL, CSV, Parquet, text) into Parquet/.npy/JSONL, resumable; --engine ray",
        description=EMBED_DESCRIPTION,
    )
    add_embed_arguments(embed)
    return parser


class _Terminated(SystemExit):
    """SIGTERM, raised in the main thread so ``finally`` blocks and context managers run (like Ctrl-C)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM (docker stop, a CI timeout) into ``_Terminated`` while the command runs."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise _Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(message: str, debug: bool, code: int = 1) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(f"error: {message}\n")
    return code


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {"prepare": _run_prepare, "info": run_info, "bench": _run_bench, "serve": _run_serve, "embed": run_embed}
    debug = bool(getattr(args, "debug", False))
    try:
        # serve drains on SIGTERM itself (server/runner.py)
        with _sigterm_raises() if args.command != "serve" else contextlib.nullcontext():
            return handlers[args.command](args)
    except _Terminated as exc:
        return _fail("terminated by SIGTERM", debug, exc.code if isinstance(exc.code, int) else 143)
    except KeyboardInterrupt:
        return _fail("interrupted", debug, 130)
    except FastembedAdapterError as exc:
        return _fail(str(exc), debug)
    except Exception as exc:  # one-line cause; --debug / FEA_DEBUG=1 shows the traceback
        return _fail(f"{type(exc).__name__}: {exc}", debug)


def _parse_and_dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None, command: str | None) -> int:
    try:
        args = parser.parse_args(argv)
    except FastembedAdapterError as exc:  # raised by a flag's type, e.g. the prepare extra is missing
        return _fail(str(exc), False)
    if command is not None:
        args.command = command
    return _dispatch(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fastembed-adapter``."""
    return _parse_and_dispatch(_parser(), argv, None)


def prepare_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prepare`` shortcut (same options as ``fastembed-adapter prepare``)."""
    parser = argparse.ArgumentParser(prog="prepare", description=_PREPARE_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"fastembed-adapter {_version()}")
    _add_prepare_arguments(parser)
    return _parse_and_dispatch(parser, argv, "prepare")
