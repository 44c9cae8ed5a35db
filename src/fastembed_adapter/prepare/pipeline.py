"""``prepare``: load → export → optimize → quantize → validate → benchmark → report → publish.

Each stage is timed; ``progress`` (if given) is called with the stage name as each starts,
so the CLI can draw a progress display. The output folder appears only when every gate passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import QuantTarget, available_cpus, detect_target, int8_file_name
from ..errors import InvalidInputError, ModelNotFoundError, ValidationFailedError
from ..hub import FP32_FILE, check_model_source, download_snapshot
from ..layout import MANIFEST_NAME, onnx_size, read_json, read_layout
from ..texts import calibration_texts, load_texts, validation_texts
from .compat import loadable
from .export import export_fp32, optimize_fp32
from .quantize import RECIPES, Calibration, Recipe, quantize_int8
from .report import write_reports
from .speed import quick_benchmark
from .validate import Quality, QualityTarget, compare
from .writer import WEIGHT_SUFFIXES, check_output, file_table, remove_onnx, staging, write_json

__all__ = ["STAGES", "PrepareOptions", "prepare_model"]

STAGES = ("load", "export", "optimize", "validate", "quantize", "benchmark", "write")
_VERSIONED = (
    "fastembed-adapter",
    "onnxruntime",
    "onnx",
    "torch",
    "transformers",
    "sentence-transformers",
    "onnxscript",
    "tokenizers",
    "numpy",
)


@dataclass(frozen=True)
class PrepareOptions:
    """Everything ``prepare`` can be told; validated when built."""

    model: str
    output: Path
    quantize: str = "int8"
    target: str = "auto"
    max_seq_length: int | None = None
    force: bool = False
    revision: str | None = None
    min_cosine_int8: float = 0.99
    min_mean_cosine_int8: float = 0.997
    min_topk_agreement_int8: float = 0.95
    min_cosine_fp32: float = 0.9999
    recipe: str | None = None
    allow_fp32_fallback: bool = False
    validation_texts: Path | None = None
    calibration_texts: Path | None = None
    benchmark: bool = True
    threads: int | None = None
    progress: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.quantize not in ("int8", "none"):
            raise InvalidInputError(f"quantize must be 'int8' or 'none', got {self.quantize!r}.")
        targets = ["auto", *(t.value for t in QuantTarget)]
        if self.target not in targets:
            raise InvalidInputError(f"Unknown target {self.target!r}. Valid targets: {', '.join(targets)}.")
        if self.recipe is not None and self.recipe not in RECIPES:
            raise InvalidInputError(f"Unknown recipe {self.recipe!r}. Valid recipes: {', '.join(RECIPES)}.")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise InvalidInputError(f"max_seq_length must be positive, got {self.max_seq_length}.")

    @property
    def int8_target(self) -> QualityTarget:
        """The INT8 quality target every recipe is measured against."""
        return QualityTarget(self.min_cosine_int8, self.min_mean_cosine_int8, self.min_topk_agreement_int8)

    def resolved_target(self) -> QuantTarget:
        """The INT8 target: explicit, or this machine's."""
        if self.target != "auto":
            return QuantTarget(self.target)
        target = detect_target()
        if target is None:
            raise InvalidInputError("This CPU has no INT8 target (needs AVX2, AVX-512 or arm64); use --quantize none.")
        return target


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def _load_source(options: PrepareOptions) -> tuple[Path, str | None]:
    """A local folder, or a full hub snapshot (honours HF_HUB_OFFLINE and the HF cache; errors name the fix)."""
    source = check_model_source(options.model)
    if isinstance(source, Path):
        return source, None
    folder = download_snapshot(source, options.revision)
    return folder, folder.name  # snapshot folders are named by commit hash


class _Timer:
    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress is not None:
            self.progress(name)
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)


def _encode_onnx(folder: Path, file_name: str, texts: list[str], threads: int | None) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` with one ONNX file (no cache) and the seconds the encode took."""
    from ..encoder import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(folder, file_name=file_name, threads=threads, cache_size=0, metrics=False)
    start = time.perf_counter()
    embeddings = np.asarray(encoder.encode(texts, batch_size=32))
    return embeddings, time.perf_counter() - start


def _gate_row(quality: Quality, target: QualityTarget, seconds: float) -> dict[str, Any]:
    failures = target.failures(quality)
    return {
        **quality.as_dict(),
        "target": target.as_dict(),
        "encode_seconds": round(seconds, 3),
        "passed": not failures,
        "failures": failures,
    }


def _texts_hash(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


def prepare_model(options: PrepareOptions) -> dict[str, Any]:
    """Run the whole pipeline; return the report. Raises ``ValidationFailedError`` when a gate fails."""
    from sentence_transformers import SentenceTransformer

    check_model_source(options.model)  # a bad --model is the error to report, not an existing output
    check_output(options.output, options.force)
    target = options.resolved_target() if options.quantize == "int8" else None
    timer = _Timer(options.progress)
    texts = load_texts(options.validation_texts) if options.validation_texts else validation_texts()
    calibration = load_texts(options.calibration_texts) if options.calibration_texts else calibration_texts()
    with timer.stage("load"):
        source, revision = _load_source(options)
        read_layout(source)  # rejects unsupported modules/pooling before any heavy work
        with tempfile.TemporaryDirectory(prefix="fea-st-view-") as work:  # loaded into memory, then removed
            model = SentenceTransformer(str(loadable(source, Path(work))), device="cpu", backend="torch")
        if options.max_seq_length is not None:
            model.max_seq_length = options.max_seq_length
        hf_dir = transformer_dir(source)
        model_type = str(read_json(hf_dir / "config.json").get("model_type"))
    with staging(options.output, options.force) as out:
        model.save(str(out), create_model_card=False)
        # The transformer's weights live in the ONNX files now; Dense/LayerNorm modules keep theirs.
        for weights in [p for p in out.glob("*") if p.suffix in WEIGHT_SUFFIXES]:
            weights.unlink()
        with timer.stage("export"):
            raw = export_fp32(hf_dir, out / "onnx" / "_export", model_type)
        with timer.stage("optimize"):
            fusions = optimize_fp32(raw, out / FP32_FILE, model_type, hf_dir)
            shutil.rmtree(raw.parent)
        with timer.stage("validate"):
            reference = np.asarray(model.encode(texts, batch_size=32, convert_to_numpy=True))
            fp32_embeddings, fp32_seconds = _encode_onnx(out, FP32_FILE, texts, options.threads)
        fp32_target = QualityTarget(min_cosine=options.min_cosine_fp32)
        files = {FP32_FILE: _gate_row(compare(reference, fp32_embeddings), fp32_target, fp32_seconds)}
        recipes: list[dict[str, Any]] = []
        default_file, recipe_name, fallback = FP32_FILE, None, None
        if target is not None:
            with timer.stage("quantize"):
                int8_name = int8_file_name(target)
                calibration_set = Calibration(out, tuple(calibration), options.threads)
                chosen = _search_recipes(out, int8_name, target, options, texts, reference, recipes, calibration_set)
            if chosen is None and not options.allow_fp32_fallback:
                raise ValidationFailedError(_failure_message(options, recipes))
            if chosen is None:
                fallback = _failure_message(options, recipes, published=True)
            else:
                recipe_name, row = chosen
                files[int8_name] = row
                default_file = int8_name
        if not files[FP32_FILE]["passed"]:
            raise ValidationFailedError(
                f"The optimized FP32 ONNX model drifted from PyTorch: min cosine {files[FP32_FILE]['min_cosine']:.6f} "
                f"< {options.min_cosine_fp32}. Nothing was written."
            )
        bench: dict[str, Any] = {}
        if options.benchmark:
            with timer.stage("benchmark"):
                bench = quick_benchmark(model, out, [FP32_FILE, *([default_file] if target else [])], options.threads)
        with timer.stage("write"):
            layout = read_layout(out)
            report = {
                "source": {"id": options.model, "revision": revision},
                "output": str(options.output),
                "target": target.value if target else None,
                "recipe": recipe_name,
                "quality_target": options.int8_target.as_dict(),
                "fp32_fallback": fallback,
                "calibration_texts_sha256": _texts_hash(calibration),
                "default_file": default_file,
                "model_type": model_type,
                "fusions": fusions,
                "dimension": layout.dimension,
                "max_seq_length": layout.max_seq_length,
                "pooling": [mode.value for mode in layout.pooling.modes],
                "normalize": layout.normalize,
                "validation": {"texts": len(texts), "files": files},
                "recipes": recipes,
                "benchmark": bench,
                "timings": timer.timings,
                "versions": _versions(),
                "machine": {"cpus": available_cpus(), "isa": getattr(detect_target(), "value", None)},
            }
            report["sizes"] = {name: onnx_size(out / name) for name in files}
            write_reports(out, report)
            manifest = {
                "schema_version": 1,
                **{
                    key: report[key]
                    for key in (
                        "source",
                        "target",
                        "recipe",
                        "quality_target",
                        "fp32_fallback",
                        "calibration_texts_sha256",
                        "machine",
                        "default_file",
                        "dimension",
                        "max_seq_length",
                        "pooling",
                        "normalize",
                        "versions",
                    )
                },
                "validation": files,
                "files": file_table(out),
            }
            write_json(out / MANIFEST_NAME, manifest)
    return report


def transformer_dir(source: Path) -> Path:
    """Folder of the Transformer module inside a sentence-transformers folder (``""`` → the root)."""
    import json

    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        if str(module.get("type", "")).endswith("Transformer"):
            return source / str(module.get("path", ""))
    raise ModelNotFoundError(f"{str(source)!r} has no Transformer module in modules.json.")


def _search_recipes(
    out: Path,
    int8_name: str,
    target: QuantTarget,
    options: PrepareOptions,
    texts: list[str],
    reference: np.ndarray,
    tried: list[dict[str, Any]],
    calibration: Calibration,
) -> tuple[str, dict[str, Any]] | None:
    """Try recipes in order of expected speed; keep the first whose INT8 file meets the quality target."""
    candidates: list[Recipe] = [RECIPES[options.recipe]] if options.recipe else list(RECIPES.values())
    for recipe in candidates:
        try:
            details = quantize_int8(out / FP32_FILE, out / int8_name, target, recipe, calibration)
            embeddings, seconds = _encode_onnx(out, int8_name, texts, options.threads)
        except Exception as exc:  # one broken recipe must not stop the search; the report says why
            if options.recipe:
                raise
            reason = f"error: {type(exc).__name__}: {exc}"[:300]
            tried.append({"recipe": recipe.name, "passed": False, "result": reason})
            continue
        row = _gate_row(compare(reference, embeddings), options.int8_target, seconds)
        tried.append(
            {
                "recipe": recipe.name,
                **row,
                "size_bytes": onnx_size(out / int8_name),
                "result": "pass" if row["passed"] else "; ".join(row["failures"]),
                **details,
            }
        )
        if row["passed"]:
            return recipe.name, row
    remove_onnx(out / int8_name)
    return None


def _failure_message(options: PrepareOptions, tried: list[dict[str, Any]], published: bool = False) -> str:
    rows = ", ".join(f"{row['recipe']}: {row['result']}" for row in tried)
    target = options.int8_target
    head = (
        f"No INT8 recipe met the quality target (min cosine >= {target.min_cosine}, mean >= {target.mean_cosine}, "
        f"top-10 agreement >= {target.topk_agreement}) against PyTorch ({rows}). "
    )
    if published:
        return head + "Published the optimized FP32 model only (--allow-fp32-fallback)."
    return head + (
        f"Nothing was written to {str(options.output)!r}. Relax the target (--quality-target), "
        "pass --allow-fp32-fallback to publish FP32 only, or use --quantize none."
    )
