"""``fastembed-adapter info``: a model folder described for people, or its manifest as JSON."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError

if TYPE_CHECKING:
    from ..encoder import OnnxSentenceEncoder

from .options import add_common_arguments, add_flag

__all__ = ["add_info_arguments", "run_info"]


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``info`` sub-command's flags."""
    parser.add_argument("model", help="model folder or hub id")
    add_flag(parser, "--file-name", env="FEA_FILE_NAME", help="ONNX file inside the folder (default: this CPU's)")
    add_flag(parser, "--revision", env="FEA_REVISION", help="hub revision (branch, tag, commit)")
    add_flag(
        parser,
        "--json",
        env="FEA_JSON",
        switch=True,
        default=False,
        help="print the folder's manifest (fastembed_adapter.json) as written by prepare",
    )
    add_common_arguments(parser)


def run_info(args: argparse.Namespace) -> int:
    """Describe the folder (or print its manifest with ``--json``); the exit code."""
    from ..encoder import OnnxSentenceEncoder
    from ..hub import resolve_model
    from ..layout import MANIFEST_NAME, read_json

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
    from ..layout import onnx_size

    layout = encoder.layout
    manifest = layout.manifest
    modes = "+".join(mode.value for mode in layout.pooling.modes)
    shape = f"{encoder.get_sentence_embedding_dimension()} dimensions, {modes} pooling"
    shape += ", normalized" if layout.normalize else ""
    shape += f", up to {encoder.max_seq_length} tokens" if encoder.max_seq_length else ""
    rows = [("folder", str(encoder.model_path.absolute())), ("embedding", shape), ("file", encoder.file_name)]
    if manifest is None:
        rows.append(("manifest", "none: not written by `prepare`, so nothing was validated"))
    else:
        if manifest.source_id:
            revision = f" @ {manifest.source_revision}" if manifest.source_revision else ""
            rows.insert(1, ("source", f"{manifest.source_id}{revision}"))
        recipe, target = manifest.recipe, manifest.target
        rows.append(("recipe", f"{recipe} (INT8 for {target})" if recipe else "none: FP32 only"))
        goal = manifest.quality_target
        if goal:
            rows.append(
                (
                    "target",
                    f"min cosine >= {goal.get('min_cosine')}, mean cosine >= {goal.get('mean_cosine')}, "
                    f"top-10 agreement >= {goal.get('topk_agreement')} (INT8 vs PyTorch)",
                )
            )
        if manifest.fp32_fallback:
            rows.append(("WARNING", "no INT8 recipe met the target; only the FP32 model was published"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    validation = manifest.validation if manifest is not None else {}
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
