"""Command line: ``fastembed-adapter {prepare,info,bench,serve}`` and the ``prepare`` shortcut.

Exit codes: 0 success; 1 failure (a one-line ``error: ...`` on stderr, the traceback too with
``--debug`` / ``FEA_DEBUG=1``); 2 usage error (argparse: a bad flag, or a bad ``FEA_*`` value of the
command being run); 130 / 143 stopped by SIGINT / SIGTERM (``prepare`` removes its staging folder).

Every flag is declared by ``_option`` with an environment fallback (``FEA_`` prefix, shown in
``--help`` as ``[env: FEA_X]``), read when the command runs and parsed by the flag's own type.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .errors import FastembedAdapterError, ModelNotFoundError

if TYPE_CHECKING:
    from .encoder import OnnxSentenceEncoder
    from .prepare.validate import QualityTarget

__all__ = ["main", "prepare_main"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_TYPE_NAMES: dict[Any, str] = {int: "an integer", float: "a number", str: "a string"}
_PREPARE_DESCRIPTION = (
    "Export a sentence-transformers model to ONNX, quantize it to INT8, validate it against PyTorch "
    "and write a self-describing model folder with REPORT.md."
)


# -- flags with environment fallbacks ------------------------------------------------------------


class _EnvText(str):
    """A flag's default taken from an environment variable; argparse parses it with the flag's type."""

    variable: str

    def __new__(cls, value: str, variable: str) -> _EnvText:
        text = super().__new__(cls, value)
        text.variable = variable
        return text


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def _fraction(text: str) -> float:
    """A cosine or agreement threshold: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a value in (0, 1], e.g. 0.99") from None
    if not 0.0 < value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: cosines are in (0, 1], e.g. 0.99")
    return value


def _quality_target(text: str) -> QualityTarget:
    """``--quality-target``: parts it does not name keep the default target's values."""
    from .prepare.validate import QualityTarget

    try:
        return QualityTarget.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parsed_by(kind: Callable[[str], Any], choices: Sequence[Any] | None) -> Callable[[str], Any]:
    """``kind`` for argparse; a bad environment value is reported with its variable's name."""

    def parse(text: str) -> Any:
        if not isinstance(text, _EnvText):
            return kind(text)
        try:
            value = kind(text)
        except argparse.ArgumentTypeError as exc:
            reason = str(exc)
        except (TypeError, ValueError):
            reason = f"expected {_TYPE_NAMES.get(kind, getattr(kind, '__name__', 'a value'))}"
        else:
            if choices is None or value in choices:
                return value
            reason = f"choose from {', '.join(map(str, choices))}"
        raise argparse.ArgumentTypeError(f"environment variable {text.variable}={str(text)!r} is invalid: {reason}")

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse's "invalid <name> value" for flags
    return parse


class _Switch(argparse.Action):
    """A boolean flag ``--x`` with its ``--no-x``, so a command line can override ``FEA_X`` either way."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: Any = None,
        type: Callable[[str], Any] | None = None,
        required: bool = False,
        help: str | None = None,
    ) -> None:
        negated = [f"--no-{flag[2:]}" for flag in option_strings if flag.startswith("--")]
        flags = [*option_strings, *negated]
        super().__init__(flags, dest, nargs=0, default=default, type=type, required=required, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))

    def format_usage(self) -> str:
        """``--x | --no-x`` in the usage line."""
        return " | ".join(self.option_strings)


def _option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str | tuple[str, ...],
    help: str,
    type: Callable[[str], Any] = str,
    default: Any = None,
    choices: Sequence[Any] | None = None,
    required: bool = False,
    switch: bool = False,
    metavar: str | None = None,
) -> None:
    """Declare ``flag`` with its environment fallback: the first of ``env`` set (and not empty) wins.

    The variable's text becomes the flag's default, which argparse parses with the flag's ``type``
    only when the flag is absent and only for the command being run; a bad value is a usage error
    (exit 2) naming the variable. ``switch`` makes a boolean ``--x`` / ``--no-x`` flag.
    """
    variables = (env,) if isinstance(env, str) else env
    found = next((name for name in variables if os.environ.get(name)), None)
    if found is not None:
        default = _EnvText(os.environ[found], found)
    kwargs: dict[str, Any] = {
        "default": default,
        "type": _parsed_by(_boolean if switch else type, choices),
        "required": required and found is None,
        "help": f"{help} [env: {' or '.join(variables)}]",
    }
    if switch:
        parser.add_argument(flag, action=_Switch, **kwargs)
    else:
        parser.add_argument(flag, choices=choices, metavar=metavar, **kwargs)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--debug", env="FEA_DEBUG", switch=True, default=False, help="show the traceback of an error")


# -- prepare -------------------------------------------------------------------------------------


def _add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    def option(flag: str, **kwargs: Any) -> None:
        _option(parser, flag, env="FEA_" + flag.lstrip("-").replace("-", "_").upper(), **kwargs)

    option("--model", required=True, help="hub id (owner/name) or local sentence-transformers folder")
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
        type=_quality_target,
        metavar="SPEC",
        help="INT8 quality target vs PyTorch: per-text min and mean cosine, top-10 neighbour agreement, each in "
        "(0, 1] (default min=0.99,mean=0.997,top10=0.95; parts left out keep these)",
    )
    option("--min-cosine", type=_fraction, help="override only the min-cosine part of --quality-target, in (0, 1]")
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
    option("--force", switch=True, default=False, help="replace an existing output folder")
    _option(parser, "--json", env="FEA_JSON", switch=True, default=False, help="print report.json, not REPORT.md")
    _add_common_arguments(parser)


def _run_prepare(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .prepare import STAGES, PrepareOptions, prepare_model
    from .prepare.report import render_markdown
    from .prepare.validate import INT8_TARGET

    target = args.quality_target or INT8_TARGET
    output = args.output or Path("models") / Path(str(args.model).rstrip("/")).name
    with _quiet_third_party(), tqdm(total=len(STAGES), desc="prepare", unit="stage", file=sys.stderr) as bar:

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
            threads=args.threads,
            progress=progress,
        )
        report = prepare_model(options)
        bar.update(len(STAGES) - bar.n)
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else render_markdown(report))
    return 0


# Third-party output during ``prepare`` that tells the user nothing they can act on: (logger, message start).
_NOISE = (
    # onnxruntime.quantization, on the root logger, once per quantize_static/quantize_dynamic call
    ("root", "Please consider to run pre-processing before quantization"),
    # transformers, when anything reads config.torch_dtype (optimum's exporter and older libraries did)
    ("transformers", "`torch_dtype` is deprecated"),
    # optimum's exporter, on every export without accelerate installed
    ("optimum", "Weight deduplication check in the ONNX export requires accelerate"),
)
_NOISY_PACKAGES = r"(torch|transformers|sentence_transformers|optimum|onnx|onnxscript|onnxruntime|huggingface_hub)"


class _DropNoise(logging.Filter):
    """Drops the records listed in ``_NOISE``; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(
            (record.name == name or record.name.startswith(f"{name}.")) and message.startswith(start)
            for name, start in _NOISE
        )


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def _quiet_third_party() -> Iterator[None]:
    """While ``prepare`` runs: hide third-party lines no user can act on, keep everything else.

    Library warnings addressed to developers (DeprecationWarning/FutureWarning raised inside torch,
    transformers, ...; torch's TracerWarning) are ignored; transformers' own progress bars (weights
    loaded, shards written) are off; the ``_NOISE`` log records are dropped. Our warnings, hub
    download bars and third-party warnings about the model itself (missing weights) still show,
    as ``warning: ...`` lines. Everything is restored on exit: the library never configures logging.
    """
    drop = _DropNoise()
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    handler.setLevel(logging.WARNING)
    # a handler of our own keeps ORT's logging.warning from calling logging.basicConfig()
    installed = not root.handlers
    if installed:
        root.addHandler(handler)
    loggers = [root, *(logging.getLogger(name) for name, _ in _NOISE if name != "root")]
    handlers = [h for logger in loggers for h in logger.handlers]
    if logging.lastResort is not None:  # prints WARNING records when no handler is configured
        handlers.append(logging.lastResort)
    for target in [*loggers, *handlers]:
        target.addFilter(drop)
    hook_restore = _silence_transformers_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=_NOISY_PACKAGES + r"(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, module=_NOISY_PACKAGES + r"(\.|$)")
            with contextlib.suppress(ImportError):
                from torch.jit import TracerWarning  # type: ignore[attr-defined]

                warnings.filterwarnings("ignore", category=TracerWarning)
            yield
    finally:
        hook_restore()
        for target in [*loggers, *handlers]:
            target.removeFilter(drop)
        if installed:
            root.removeHandler(handler)


def _silence_transformers_bars() -> Callable[[], None]:
    """Turn transformers' own tqdm bars off (not huggingface_hub's); return the undo."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return lambda: None
    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)  # transformers >= 5; 4.x has no such bars
    if set_hook is None:
        return lambda: None
    previous = set_hook(lambda factory, args, kwargs: factory(*args, **{**kwargs, "disable": True}))
    return lambda: set_hook(previous)


# -- info ----------------------------------------------------------------------------------------


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model folder or hub id")
    _option(parser, "--file-name", env="FEA_FILE_NAME", help="ONNX file inside the folder (default: this CPU's)")
    _option(parser, "--revision", env="FEA_REVISION", help="hub revision (branch, tag, commit)")
    _option(
        parser,
        "--json",
        env="FEA_JSON",
        switch=True,
        default=False,
        help="print the folder's manifest (fastembed_adapter.json) as written by prepare",
    )
    _add_common_arguments(parser)


def _run_info(args: argparse.Namespace) -> int:
    from .encoder import OnnxSentenceEncoder
    from .hub import resolve_model
    from .layout import MANIFEST_NAME, read_json

    if args.json:
        root, _ = resolve_model(args.model, args.file_name, args.revision)
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise ModelNotFoundError(
                f"{str(root)!r} has no {MANIFEST_NAME}: `prepare` did not write it, so there is no manifest to "
                f"print. Run `fastembed-adapter info {args.model}` without --json to see what it holds."
            )
        read_json(path)  # a damaged manifest is an error, not output
        text = path.read_text(encoding="utf-8")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    encoder = OnnxSentenceEncoder(
        args.model, file_name=args.file_name, revision=args.revision, cache_size=0, metrics=False
    )
    sys.stdout.write(_describe(encoder))
    return 0


def _describe(encoder: OnnxSentenceEncoder) -> str:
    """``info`` for humans: what the folder is, how it was made, and each ONNX file's size and quality."""
    from .layout import onnx_size

    layout = encoder.layout
    data: dict[str, Any] = dict(layout.manifest.data) if layout.manifest is not None else {}
    modes = "+".join(mode.value for mode in layout.pooling.modes)
    shape = f"{encoder.get_sentence_embedding_dimension()} dimensions, {modes} pooling"
    shape += ", normalized" if layout.normalize else ""
    shape += f", up to {encoder.max_seq_length} tokens" if encoder.max_seq_length else ""
    rows = [("folder", str(encoder.model_path.absolute())), ("embedding", shape), ("file", encoder.file_name)]
    if not data:
        rows.append(("manifest", "none: not written by `prepare`, so nothing was validated"))
    else:
        source = data.get("source") or {}
        if source.get("id"):
            revision = f" @ {source['revision']}" if source.get("revision") else ""
            rows.insert(1, ("source", f"{source['id']}{revision}"))
        recipe, target = data.get("recipe"), data.get("target")
        rows.append(("recipe", f"{recipe} (INT8 for {target})" if recipe else "none: FP32 only"))
        goal = data.get("quality_target") or {}
        if goal:
            rows.append(
                (
                    "target",
                    f"min cosine >= {goal.get('min_cosine')}, mean cosine >= {goal.get('mean_cosine')}, "
                    f"top-10 agreement >= {goal.get('topk_agreement')} (INT8 vs PyTorch)",
                )
            )
        if data.get("fp32_fallback"):
            rows.append(("WARNING", "no INT8 recipe met the target; only the FP32 model was published"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    validation: dict[str, Any] = data.get("validation") or {}
    table: list[tuple[str, ...]] = [("ONNX file", "size", "min cos", "mean cos", "top-10", "gate")]
    for name in sorted(layout.onnx_files):
        row = validation.get(name) or {}
        figures = [f"{row[key]:.6f}" if key in row else "-" for key in ("min_cosine", "mean_cosine")]
        top = f"{row['topk_agreement']:.3f}" if "topk_agreement" in row else "-"
        gate = ("pass" if row["passed"] else "FAIL") if "passed" in row else "-"
        marker = " *" if name == encoder.file_name else ""
        table.append((name + marker, _size(onnx_size(encoder.model_path / name)), *figures, top, gate))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["", *("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)]
    lines.append("(* the file loaded: this CPU's choice unless --file-name; sizes include the .onnx_data weights)")
    return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


# -- bench ---------------------------------------------------------------------------------------


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    def option(flag: str, **kwargs: Any) -> None:
        _option(parser, flag, env="FEA_BENCH_" + flag.lstrip("-").replace("-", "_").upper(), **kwargs)

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
    _option(parser, "--threads", env="FEA_THREADS", type=int, help="threads per backend")
    option("--backends", help="comma-separated subset (default: all)")
    option("--fp32-file", default="onnx/model.onnx", help="FP32 ONNX file")
    option("--int8-file", help="INT8 ONNX file (default: this CPU's)")
    option("--peak-int8-gmacs", type=float, default=850.0, help="the machine's peak INT8 GMAC/s, for the roofline")
    option("--peak-fp32-gmacs", type=float, default=213.0, help="the machine's peak FP32 GMAC/s, for the roofline")
    _option(parser, "--json", env="FEA_JSON", switch=True, default=False, help="print the result JSON, not Markdown")
    _add_common_arguments(parser)


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


# -- serve ---------------------------------------------------------------------------------------


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve`` flags; unset ones stay None so ``ServerSettings`` holds the defaults (named in the help)."""

    def option(flag: str, **kwargs: Any) -> None:
        kwargs.setdefault("env", "FEA_" + flag.lstrip("-").replace("-", "_").upper())
        _option(parser, flag, **kwargs)

    option("--model", required=True, help="folder written by `prepare` (or hub id with onnx/*.onnx)")
    option("--model-name", help="id reported to clients (default: folder name)")
    option("--file-name", help="ONNX file in the folder")
    option("--host", help="address to bind (default 127.0.0.1)")
    option("--port", type=int, env=("FEA_PORT", "PORT"), help="port (default 8080)")
    option("--threads", type=int, help="ONNX Runtime threads")
    for flag, kind, what in (
        ("--max-batch-texts", int, "texts per micro-batch (default 32)"),
        ("--max-batch-tokens", int, "tokens per micro-batch (default 16384)"),
        ("--max-batch-wait-ms", float, "how long a request waits for others to join its batch (default 2)"),
        ("--max-queue", int, "requests queued or running; more get 429 (default 256)"),
        ("--max-inputs", int, "texts per request; more get 413 (default 512)"),
        ("--max-body-bytes", int, "request body size; larger gets 413 (default 2097152)"),
        ("--cache-size", int, "LRU embedding cache entries per replica, 0 = off (default 1024)"),
        ("--drain-timeout", float, "seconds in-flight requests get after SIGTERM (default 30)"),
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
    _add_common_arguments(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from .server import ServerSettings, run
    from .server.logs import configure_logging

    cli_only = {"command", "debug"}
    given = {name: value for name, value in vars(args).items() if value is not None and name not in cli_only}
    settings = ServerSettings(**given, api_key=os.environ.get("FEA_API_KEY") or None)  # the key only from the env
    configure_logging(settings.log_format, settings.log_level)
    return run(settings)


# -- entry points ----------------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("fastembed-adapter")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from . import __version__

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
    _add_info_arguments(info)
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
    handlers = {"prepare": _run_prepare, "info": _run_info, "bench": _run_bench, "serve": _run_serve}
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


if __name__ == "__main__":
    raise SystemExit(main())
