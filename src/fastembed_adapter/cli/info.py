"""``fastembed-adapter info``: a model folder described for people, or its manifest as JSON."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError

if TYPE_CHECKING:
    from ..encoder import OnnxSentenceEncoder
    from ..layout import Manifest

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


def _file_choice(encoder: OnnxSentenceEncoder) -> str:
    """The file loaded, and why where ``prepare``'s benchmark, not the INT8 default, decided it."""
    from ..cpu import detect_target

    manifest, target = encoder.layout.manifest, detect_target()
    if manifest is None or target is None:
        return encoder.file_name
    measured = manifest.fastest_file.get(target.value)
    if measured != encoder.file_name or measured == manifest.default_file:
        return encoder.file_name
    return (
        f"{encoder.file_name} (prepare measured it faster than {manifest.default_file} at batch 1 and "
        f"batch 32 on {target.value})"
    )


def _describe(encoder: OnnxSentenceEncoder) -> str:
    """``info`` for humans: what the folder is, how it was made, the runtimes, and each model file's size and quality.

    The model files are the ONNX files and the OpenVINO IRs (``openvino/*.xml``, listed in the manifest
    or on disk); ``auto`` is the runtime (and file) ``runtime="auto"`` loads on this CPU.
    """
    layout = encoder.layout
    manifest = layout.manifest
    modes = "+".join(mode.value for mode in layout.pooling.modes)
    shape = f"{encoder.get_sentence_embedding_dimension()} dimensions, {modes} pooling"
    shape += ", normalized" if layout.normalize else ""
    shape += f", up to {encoder.max_seq_length} tokens" if encoder.max_seq_length else ""
    rows = [("folder", str(encoder.model_path.absolute())), ("embedding", shape), ("file", _file_choice(encoder))]
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
    version = _openvino_version()
    installed = f"installed ({version})" if version else "not installed (pip install 'fastembed-adapter[openvino]')"
    rows += [("openvino", installed), ("auto", _auto_choice(encoder.model_path, manifest))]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    validation = manifest.validation if manifest is not None else {}
    table: list[tuple[str, ...]] = [("model file", "size", "min cos", "mean cos", "top-10", "gate")]
    for name in [*sorted(layout.onnx_files), *_ir_files(encoder.model_path, manifest)]:
        row = validation.get(name) or {}
        figures = [f"{row[key]:.6f}" if key in row else "-" for key in ("min_cosine", "mean_cosine")]
        top = f"{row['topk_agreement']:.3f}" if "topk_agreement" in row else "-"
        gate = ("pass" if row["passed"] else "FAIL") if "passed" in row else "-"
        marker = " *" if name == encoder.file_name else ""
        table.append((name + marker, _file_size(encoder.model_path, name, manifest), *figures, top, gate))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["", *("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)]
    lines.append(
        "(* the file loaded: this CPU's choice unless --file-name; sizes include the weights, .onnx_data or "
        ".bin; an .xml IR runs on OpenVINO)"
    )
    return "\n".join(lines) + "\n"


def _openvino_version() -> str | None:
    """The installed ``openvino``'s version (found as ``runtime="auto"`` finds it), or None; it is not imported."""
    try:
        if importlib.util.find_spec("openvino") is None:
            return None
    except (ImportError, ValueError):  # sys.modules["openvino"] is None
        return None
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "version unknown"


def _auto_choice(root: Path, manifest: Manifest | None) -> str:
    """What ``runtime="auto"`` loads here (``session.resolve_runtime``), and why."""
    from ..cpu import detect_target
    from ..hub import resolve_model
    from ..openvino_session import choose_openvino_file
    from ..session import Runtime, resolve_runtime

    target = detect_target()
    isa = target.value if target is not None else ""
    winner = manifest.fastest_runtime.get(isa) if manifest is not None else None
    if manifest is not None and resolve_runtime(Runtime.AUTO, manifest, None) is Runtime.OPENVINO:
        chosen = choose_openvino_file(root, None, manifest.files)
        return f"openvino, {chosen} (prepare measured OpenVINO fastest on {isa})"
    if manifest is None:
        why = "no manifest, so no benchmark of the two runtimes"
    elif target is None:
        why = "prepare benchmarks x86-64 AVX2+ and arm64 CPUs only; this is neither"
    elif winner == Runtime.OPENVINO.value:
        why = f"OpenVINO measured fastest on {isa}, but openvino is not installed"
    elif winner:
        why = f"prepare measured {winner} fastest on {isa}"
    else:
        why = f"no benchmark of both runtimes recorded for {isa}: prepare runs one with the IR, unless --no-benchmark"
    return f"onnxruntime, {resolve_model(root, None)[1]} ({why})"


def _ir_files(root: Path, manifest: Manifest | None) -> list[str]:
    """The folder's OpenVINO IRs (``openvino/*.xml``): on disk, and those the manifest lists (maybe not downloaded)."""
    listed = manifest.files if manifest is not None else {}
    names = {p.relative_to(root).as_posix() for p in root.glob("openvino/*.xml")}
    return sorted(names | {name for name in listed if name.startswith("openvino/") and name.endswith(".xml")})


def _file_size(root: Path, name: str, manifest: Manifest | None) -> str:
    """A model file's size with its weights; for one the manifest lists but the folder lacks, the listed size."""
    from ..layout import onnx_size, weights_path

    if (root / name).is_file():
        return _size(onnx_size(root / name))
    listed = manifest.files if manifest is not None else {}
    weights = weights_path(Path(name)).as_posix()
    total = sum(listed[part].size for part in (name, weights) if part in listed)
    return f"{_size(total)}, absent" if name in listed else "absent"


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
