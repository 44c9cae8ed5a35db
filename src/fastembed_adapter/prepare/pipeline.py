"""``prepare``: load → export → optimize → (OpenVINO IR) → quantize → validate → benchmark → report → publish.

Each stage is timed; ``progress`` (if given) is called with the stage name as each starts,
so the CLI can draw a progress display. The output folder appears only when every gate passed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import QuantTarget, available_cpus, detect_target
from ..errors import InvalidInputError, ModelNotFoundError, ValidationFailedError
from ..extras import versions
from ..hub import check_model_source, download_snapshot
from ..layout import FP32_FILE, MANIFEST_NAME, OPENVINO_FILE, int8_file_name, onnx_size, read_json, read_layout
from ..texts import calibration_texts, held_out_texts, load_texts, validation_texts
from .compat import loadable
from .export import export_optimized
from .openvino import openvino_installed, write_openvino
from .quantize import RECIPES, Calibration, Recipe, quantize_int8
from .report import Machine, QuickBenchmark, RecipeResult, Report, ValidationFigures, write_reports
from .speed import fastest_file_record, fastest_runtime, quick_benchmark
from .validate import QualityTarget, compare
from .writer import WEIGHT_SUFFIXES, check_output, disk_full_errno, file_table, remove_onnx, staging, write_json

__all__ = ["STAGES", "PrepareOptions", "prepare_model"]

STAGES = ("load", "export", "validate", "quantize", "benchmark", "write")
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
    "openvino",
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
    layouts: tuple[str, ...] = ()  # extra layouts written inside the output: "transformers.js"
    torch_weights: bool = False  # keep the source's PyTorch weights, so the output also loads with torch
    openvino: bool = True  # also write openvino/openvino_model.xml where the openvino extra is installed
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
        unknown = sorted(set(self.layouts) - {"transformers.js"})
        if unknown:
            raise InvalidInputError(f"Unknown layout(s) {unknown}. Valid layouts: transformers.js.")
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


def _encode(
    folder: Path, file_name: str, texts: list[str], threads: int | None, runtime: str
) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` with one model file on ``runtime`` (no cache) and the seconds the encode took."""
    from ..encoder import OnnxSentenceEncoder

    encoder = OnnxSentenceEncoder(
        folder, file_name=file_name, threads=threads, cache_size=0, metrics=False, runtime=runtime
    )
    start = time.perf_counter()
    embeddings = np.asarray(encoder.encode(texts, batch_size=32))
    return embeddings, time.perf_counter() - start


def _encode_onnx(folder: Path, file_name: str, texts: list[str], threads: int | None) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` with one ONNX file on ONNX Runtime, and the seconds the encode took."""
    return _encode(folder, file_name, texts, threads, "onnxruntime")


def _encode_openvino(folder: Path, file_name: str, texts: list[str], threads: int | None) -> tuple[np.ndarray, float]:
    """Embeddings of ``texts`` with the OpenVINO IR on OpenVINO, and the seconds the encode took."""
    return _encode(folder, file_name, texts, threads, "openvino")


def _measure(
    run: _Run,
    out: Path,
    file_name: str,
    target: QualityTarget,
    encode: Callable[[Path, str, list[str], int | None], tuple[np.ndarray, float]] | None = None,
) -> ValidationFigures:
    """One model file on the validation texts (timed) and on the held-out ones, both held to ``target``.

    ``encode`` runs the file (default ``_encode_onnx``, looked up at call time).
    """
    encode = encode or _encode_onnx
    embeddings, seconds = encode(out, file_name, run.texts, run.options.threads)
    held_out, _ = encode(out, file_name, run.held_out, run.options.threads)
    return ValidationFigures.measure(
        compare(run.reference, embeddings), target, seconds, compare(run.held_out_reference, held_out)
    )


def _texts_hash(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


@dataclass
class _Run:
    """What the stages of one ``prepare`` run hand each other."""

    options: PrepareOptions
    target: QuantTarget | None
    texts: list[str]
    calibration: list[str]
    timer: _Timer
    held_out: list[str] = field(default_factory=held_out_texts)  # never seen by the recipe search or calibration
    held_out_reference: np.ndarray = field(default_factory=lambda: np.empty(0))
    source: Path = Path()
    revision: str | None = None
    model: Any = None
    hf_dir: Path = Path()
    model_type: str = ""
    fusions: dict[str, Any] = field(default_factory=dict)
    reference: np.ndarray = field(default_factory=lambda: np.empty(0))
    files: dict[str, ValidationFigures] = field(default_factory=dict)
    recipes: list[RecipeResult] = field(default_factory=list)
    default_file: str = FP32_FILE
    recipe_name: str | None = None
    fallback: str | None = None
    bench: QuickBenchmark | None = None


def prepare_model(options: PrepareOptions) -> dict[str, Any]:
    """Run the whole pipeline; return the report as JSON (:meth:`.Report.to_json`).

    Raises ``ValidationFailedError`` when a gate fails.
    """
    check_model_source(options.model)  # a bad --model is the error to report, not an existing output
    check_output(options.output, options.force)
    run = _Run(
        options=options,
        target=options.resolved_target() if options.quantize == "int8" else None,
        texts=load_texts(options.validation_texts) if options.validation_texts else validation_texts(),
        calibration=load_texts(options.calibration_texts) if options.calibration_texts else calibration_texts(),
        timer=_Timer(options.progress),
    )
    stage = run.timer.stage
    with stage("load"):
        _load(run)
    with staging(options.output, options.force) as out:
        _save_configs(run, out)
        with stage("export"):  # export and ORT's fusions (both attention graphs tried where it matters)
            work = out / "onnx" / "_export"
            run.fusions = export_optimized(run.hf_dir, work, out / FP32_FILE, run.model_type)
            shutil.rmtree(work)
        with stage("validate"):
            _validate_fp32(run, out)  # a drifted export fails here, before any INT8 recipe runs
            if options.openvino and openvino_installed():
                _validate_openvino(run, out)
        if run.target is not None:
            with stage("quantize"):
                _quantize(run, out, run.target)
        if options.benchmark:
            with stage("benchmark"):
                files = [FP32_FILE, *([run.default_file] if run.target else [])]
                files += [OPENVINO_FILE] if OPENVINO_FILE in run.files else []
                run.bench = quick_benchmark(run.model, out, files, options.threads)
        with stage("write"):
            report = _write(run, out)
    return replace(report, timings=dict(run.timer.timings)).to_json()  # the write stage's time too


def _load(run: _Run) -> None:
    """Resolve the source, check its modules, and load it in sentence-transformers (PyTorch, FP32)."""
    from sentence_transformers import SentenceTransformer

    run.source, run.revision = _load_source(run.options)
    read_layout(run.source)  # rejects unsupported modules/pooling before any heavy work
    with tempfile.TemporaryDirectory(prefix="fea-st-view-") as work:  # loaded into memory, then removed
        run.model = SentenceTransformer(str(loadable(run.source, Path(work))), device="cpu", backend="torch")
    if run.options.max_seq_length is not None:
        run.model.max_seq_length = run.options.max_seq_length
    run.hf_dir = transformer_dir(run.source)
    run.model_type = str(read_json(run.hf_dir / "config.json").get("model_type"))


def _save_configs(run: _Run, out: Path) -> None:
    """The sentence-transformers configs; the transformer's weights live in the ONNX files instead."""
    run.model.save(str(out), create_model_card=False)
    if run.options.torch_weights:  # --torch-weights: the folder also loads in sentence-transformers with torch
        return
    for weights in [p for p in out.glob("*") if p.suffix in WEIGHT_SUFFIXES]:  # Dense/LayerNorm keep theirs
        weights.unlink()


def _validate_fp32(run: _Run, out: Path) -> None:
    """PyTorch's reference embeddings, and the FP32 gate on the optimized ONNX file."""
    run.reference = np.asarray(run.model.encode(run.texts, batch_size=32, convert_to_numpy=True))
    run.held_out_reference = np.asarray(run.model.encode(run.held_out, batch_size=32, convert_to_numpy=True))
    _fp32_gate(
        run, out, FP32_FILE, "The optimized FP32 ONNX model", "No INT8 recipe was tried and nothing was written."
    )


def _validate_openvino(run: _Run, out: Path) -> None:
    """Convert the validated FP32 graph to the OpenVINO IR and hold it, run by OpenVINO, to the FP32 gate."""
    write_openvino(out / FP32_FILE, out / OPENVINO_FILE)
    _fp32_gate(
        run,
        out,
        OPENVINO_FILE,
        f"The OpenVINO IR {OPENVINO_FILE}",
        "Nothing was written; pass --no-openvino to prepare without it.",
        _encode_openvino,
    )


def _fp32_gate(
    run: _Run,
    out: Path,
    file_name: str,
    what: str,
    consequence: str,
    encode: Callable[[Path, str, list[str], int | None], tuple[np.ndarray, float]] | None = None,
) -> None:
    """Measure an FP32 file (both splits) into ``run.files``; below ``--min-cosine-fp32`` it fails ``prepare``."""
    threshold = run.options.min_cosine_fp32
    row = _measure(run, out, file_name, QualityTarget(min_cosine=threshold), encode)
    run.files[file_name] = row
    if not row.passed:
        worst = min(row.quality.min_cosine, row.held_out.min_cosine if row.held_out else 1.0)
        raise ValidationFailedError(
            f"{what} drifted from PyTorch: min cosine {worst:.6f} < {threshold} ({'; '.join(row.failures)}). "
            f"{consequence}"
        )


def _quantize(run: _Run, out: Path, target: QuantTarget) -> None:
    """Search the recipes; publish the first that passes, else fail (or fall back to FP32 if allowed)."""
    options = run.options
    int8_name = int8_file_name(target)
    calibration = Calibration(out, tuple(run.calibration), options.threads)
    chosen = _search_recipes(run, out, int8_name, target, calibration)
    if chosen is None and not options.allow_fp32_fallback:
        raise ValidationFailedError(_failure_message(options, run.recipes))
    if chosen is None:
        run.fallback = _failure_message(options, run.recipes, published=True)
        return
    run.recipe_name, row = chosen
    run.files[int8_name] = row
    run.default_file = int8_name


def _write(run: _Run, out: Path) -> Report:
    """``report.json``, ``REPORT.md`` and the manifest (with every file's sha256); returns the report."""
    options, target = run.options, run.target
    layout = read_layout(out)
    fastest = fastest_file_record(run.bench, run.default_file)
    report = Report(
        source=options.model,
        revision=run.revision,
        output=str(options.output),
        target=target.value if target else None,
        recipe=run.recipe_name,
        quality_target=options.int8_target,
        fp32_fallback=run.fallback,
        calibration_texts_sha256=_texts_hash(run.calibration),
        default_file=run.default_file,
        model_type=run.model_type,
        fusions=run.fusions,
        dimension=layout.dimension,
        max_seq_length=layout.max_seq_length,
        pooling=tuple(mode.value for mode in layout.pooling.modes),
        normalize=layout.normalize,
        validation_texts=len(run.texts),
        held_out_texts=len(run.held_out),
        files=dict(run.files),
        recipes=tuple(run.recipes),
        benchmark=run.bench,
        timings=dict(run.timer.timings),
        versions=versions(_VERSIONED),
        machine=Machine(cpus=available_cpus(), isa=getattr(detect_target(), "value", None)),
        sizes={name: onnx_size(out / name) for name in run.files},
        fastest_runtime=_fastest_runtime(run, fastest),
        fastest_file=fastest,
    )
    write_reports(out, report)
    write_extra_layouts(out, options, run.default_file)
    write_json(out / MANIFEST_NAME, report.manifest_json(file_table(out)))
    return report


def _fastest_runtime(run: _Run, fastest: dict[str, str]) -> dict[str, str]:
    """``{ISA: runtime}`` from the quick benchmark of this CPU, where it measured both runtimes.

    OpenVINO is held against the ONNX file the encoder loads by default here (``fastest``, the report's
    ``fastest_file``).
    """
    target = detect_target()
    if run.bench is None or target is None:
        return {}
    onnx_file = fastest.get(target.value, run.default_file)
    winner = fastest_runtime(run.bench, onnx_file, OPENVINO_FILE)
    return {target.value: winner} if winner else {}


def write_extra_layouts(out: Path, options: PrepareOptions, default_file: str) -> None:
    """The ``--layout`` copies, inside the output (so the manifest lists their files too)."""
    if "transformers.js" in options.layouts:
        from .transformers_js import write_transformers_js

        write_transformers_js(out, FP32_FILE, default_file if default_file != FP32_FILE else None)


def transformer_dir(source: Path) -> Path:
    """Folder of the Transformer module inside a sentence-transformers folder (``""`` → the root)."""
    import json

    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        if str(module.get("type", "")).endswith("Transformer"):
            return source / str(module.get("path", ""))
    raise ModelNotFoundError(f"{str(source)!r} has no Transformer module in modules.json.")


def _search_recipes(
    run: _Run, out: Path, int8_name: str, target: QuantTarget, calibration: Calibration
) -> tuple[str, ValidationFigures] | None:
    """Try recipes in order of expected speed; keep the first whose INT8 file meets the quality target.

    The target must hold on the validation texts and on the held-out ones; calibration and every
    recipe's own choices (smoothing, outliers, sensitive MatMuls) see only the calibration texts.
    """
    options, tried = run.options, run.recipes
    candidates: list[Recipe] = [RECIPES[options.recipe]] if options.recipe else list(RECIPES.values())
    for recipe in candidates:
        try:
            details = quantize_int8(out / FP32_FILE, out / int8_name, target, recipe, calibration)
            row = _measure(run, out, int8_name, options.int8_target)
        except Exception as exc:  # one broken recipe must not stop the search; the report says why
            if options.recipe or disk_full_errno(exc) is not None:  # a full disk breaks every recipe
                raise
            tried.append(RecipeResult.errored(recipe.name, exc))
            continue
        tried.append(RecipeResult.measured(recipe.name, row, onnx_size(out / int8_name), details))
        if row.passed:
            return recipe.name, row
    remove_onnx(out / int8_name)
    return None


def _failure_message(options: PrepareOptions, tried: list[RecipeResult], published: bool = False) -> str:
    rows = ", ".join(f"{row.recipe}: {row.result}" for row in tried)
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
