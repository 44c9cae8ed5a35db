"""Command line: ``fastembed-adapter {prepare,info}`` and the ``prepare`` shortcut.

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
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {"prepare": _run_prepare, "info": _run_info}
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
