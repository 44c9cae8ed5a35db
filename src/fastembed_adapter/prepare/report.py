"""What one ``prepare`` run measured and decided, typed; ``report.json``, ``REPORT.md`` and the manifest.

:class:`Report` holds the run; ``to_json()`` gives the keys ``report.json`` has always had (and
``prepare_model`` returns), ``manifest_json()`` those of the manifest (``fastembed_adapter.json``),
and ``from_json()`` reads a report back (the CLI renders the dict ``prepare_model`` returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..layout import REPORT_JSON, REPORT_MD
from .validate import Quality, QualityTarget
from .writer import write_json

__all__ = [
    "MANIFEST_SCHEMA_VERSION",
    "Machine",
    "QuickBenchmark",
    "RecipeResult",
    "Report",
    "SpeedFigures",
    "ValidationFigures",
    "benchmark_lines",
    "fastest_file_lines",
    "render_markdown",
    "write_reports",
]

MANIFEST_SCHEMA_VERSION = 1
_QUALITY_KEYS = tuple(f.name for f in fields(Quality))


@dataclass(frozen=True)
class ValidationFigures:
    """One ONNX file against the PyTorch reference: its quality, the gate it was held to, the verdict."""

    quality: Quality
    target: QualityTarget
    encode_seconds: float  # rounded to ms, as written
    failures: tuple[str, ...] = ()  # why it misses the target (either split); empty when it passes
    held_out: Quality | None = None  # the same file on the held-out texts the recipe search never saw

    @classmethod
    def measure(
        cls, quality: Quality, target: QualityTarget, seconds: float, held_out: Quality | None = None
    ) -> ValidationFigures:
        """Hold ``quality`` (encoded in ``seconds``) and the held-out split's ``held_out`` to ``target``."""
        failures = list(target.failures(quality))
        if held_out is not None:
            failures += [f"held-out: {reason}" for reason in target.failures(held_out)]
        return cls(quality, target, round(seconds, 3), tuple(failures), held_out)

    @property
    def passed(self) -> bool:
        """Whether every figure meets the target."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        """The JSON row (quality figures flat, then the target and the verdict)."""
        return {
            **self.quality.as_dict(),
            "target": self.target.as_dict(),
            "encode_seconds": self.encode_seconds,
            "passed": self.passed,
            "failures": list(self.failures),
            **({"held_out": self.held_out.as_dict()} if self.held_out is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ValidationFigures:
        """Read a row written by :meth:`to_json`."""
        quality = Quality(**{key: data[key] for key in _QUALITY_KEYS})
        held = data.get("held_out")
        held_out = Quality(**{key: held[key] for key in _QUALITY_KEYS}) if held else None
        target = QualityTarget(**data["target"])
        return cls(quality, target, data["encode_seconds"], tuple(data["failures"]), held_out)


@dataclass(frozen=True)
class RecipeResult:
    """One INT8 recipe tried: measured (``figures``), or it raised (``figures`` None, ``result`` says why)."""

    recipe: str
    result: str  # "pass", the failures joined by "; ", or "error: <exception>"
    figures: ValidationFigures | None = None
    size_bytes: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # what quantize_int8 decided (fp32_matmuls, ...)

    @classmethod
    def measured(
        cls, recipe: str, figures: ValidationFigures, size_bytes: int, details: Mapping[str, Any]
    ) -> RecipeResult:
        """A recipe whose INT8 file was written and validated."""
        result = "pass" if figures.passed else "; ".join(figures.failures)
        return cls(recipe, result, figures, size_bytes, dict(details))

    @classmethod
    def errored(cls, recipe: str, exc: BaseException) -> RecipeResult:
        """A recipe that raised; the report keeps the first 300 characters of the reason."""
        return cls(recipe, f"error: {type(exc).__name__}: {exc}"[:300])

    @property
    def passed(self) -> bool:
        """Whether the recipe's file met the quality target."""
        return self.figures is not None and self.figures.passed

    @property
    def fp32_matmuls(self) -> list[str]:
        """The MatMuls the recipe kept FP32."""
        return list(self.details.get("fp32_matmuls", []))

    def to_json(self) -> dict[str, Any]:
        """The JSON row: the figures flat, size, result, then the recipe's details."""
        if self.figures is None:
            return {"recipe": self.recipe, "passed": False, "result": self.result}
        return {
            "recipe": self.recipe,
            **self.figures.to_json(),
            "size_bytes": self.size_bytes,
            "result": self.result,
            **self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecipeResult:
        """Read a row written by :meth:`to_json`."""
        if "min_cosine" not in data:
            return cls(data["recipe"], data["result"])
        known = {*_QUALITY_KEYS, "recipe", "target", "encode_seconds", "passed", "failures", "size_bytes", "result"}
        known.add("held_out")
        details = {key: value for key, value in data.items() if key not in known}
        return cls(data["recipe"], data["result"], ValidationFigures.from_json(data), data["size_bytes"], details)


@dataclass(frozen=True)
class SpeedFigures:
    """One backend in the quick benchmark."""

    p50_ms: float  # batch-1 latency
    p95_ms: float
    throughput: float  # texts/s at batch 32


@dataclass(frozen=True)
class QuickBenchmark:
    """The quick in-process benchmark: every backend on the same texts (:mod:`.speed`)."""

    threads: int
    queries: int
    texts: int
    backends: Mapping[str, SpeedFigures]  # "pytorch" first, then each ONNX file

    def to_json(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "threads": self.threads,
            "queries": self.queries,
            "texts": self.texts,
            "backends": {name: asdict(figures) for name, figures in self.backends.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuickBenchmark:
        """Read what :meth:`to_json` wrote."""
        backends = {name: SpeedFigures(**row) for name, row in data["backends"].items()}
        return cls(data["threads"], data["queries"], data["texts"], backends)


@dataclass(frozen=True)
class Machine:
    """Where ``prepare`` ran."""

    cpus: int
    isa: str | None


@dataclass(frozen=True)
class Report:
    """One ``prepare`` run: the source, the files written and how each one validated, the recipes tried."""

    source: str  # --model as given
    revision: str | None  # the hub snapshot's commit; None for a local folder
    output: str
    target: str | None  # the INT8 target (QuantTarget value); None with --quantize none
    recipe: str | None  # the recipe published; None when no INT8 file was
    quality_target: QualityTarget
    fp32_fallback: str | None  # why only FP32 was published (--allow-fp32-fallback)
    calibration_texts_sha256: str
    default_file: str
    model_type: str
    fusions: Mapping[str, Any]
    dimension: int
    max_seq_length: int | None
    pooling: tuple[str, ...]
    normalize: bool
    validation_texts: int
    files: Mapping[str, ValidationFigures]  # per ONNX file written
    recipes: tuple[RecipeResult, ...]
    benchmark: QuickBenchmark | None
    timings: Mapping[str, float]
    versions: Mapping[str, str]
    machine: Machine
    sizes: Mapping[str, int]  # bytes per ONNX file, external weights included
    held_out_texts: int = 0  # texts of the held-out split every file was also held to
    # {CPU ISA: runtime} measured fastest here by the quick benchmark: what ``runtime="auto"`` follows
    fastest_runtime: Mapping[str, str] = field(default_factory=dict)
    # {CPU ISA: ONNX file} where the quick benchmark measured the FP32 file faster than the INT8 one at
    # batch-1 p50 and batch-32 throughput both (else the INT8 file): what the encoder loads by default there
    fastest_file: Mapping[str, str] = field(default_factory=dict)

    def _files_json(self) -> dict[str, Any]:
        return {name: figures.to_json() for name, figures in self.files.items()}

    def to_json(self) -> dict[str, Any]:
        """``report.json``: the keys (and their order) ``prepare`` has always written."""
        return {
            "source": {"id": self.source, "revision": self.revision},
            "output": self.output,
            "target": self.target,
            "recipe": self.recipe,
            "quality_target": self.quality_target.as_dict(),
            "fp32_fallback": self.fp32_fallback,
            "calibration_texts_sha256": self.calibration_texts_sha256,
            "default_file": self.default_file,
            "model_type": self.model_type,
            "fusions": dict(self.fusions),
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "pooling": list(self.pooling),
            "normalize": self.normalize,
            "validation": {
                "texts": self.validation_texts,
                "held_out_texts": self.held_out_texts,
                "files": self._files_json(),
            },
            "recipes": [row.to_json() for row in self.recipes],
            "benchmark": self.benchmark.to_json() if self.benchmark else {},
            "timings": dict(self.timings),
            "versions": dict(self.versions),
            "machine": asdict(self.machine),
            "sizes": dict(self.sizes),
            "fastest_runtime": dict(self.fastest_runtime),  # added last: the keys before keep their order
            "fastest_file": dict(self.fastest_file),
        }

    def manifest_json(self, files: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The manifest: where the folder came from, and ``files`` (``writer.file_table``) the runtime checks."""
        return {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "source": {"id": self.source, "revision": self.revision},
            "target": self.target,
            "recipe": self.recipe,
            "quality_target": self.quality_target.as_dict(),
            "fp32_fallback": self.fp32_fallback,
            "calibration_texts_sha256": self.calibration_texts_sha256,
            "machine": asdict(self.machine),
            "default_file": self.default_file,
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "pooling": list(self.pooling),
            "normalize": self.normalize,
            "versions": dict(self.versions),
            "validation": self._files_json(),
            "files": dict(files),
            "fastest_runtime": dict(self.fastest_runtime),  # what runtime="auto" follows
            "fastest_file": dict(self.fastest_file),  # what the encoder loads without file_name
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """Read a report written by :meth:`to_json` (``report.json``, or what ``prepare_model`` returned)."""
        validation = data["validation"]
        return cls(
            source=data["source"]["id"],
            revision=data["source"]["revision"],
            output=data["output"],
            target=data["target"],
            recipe=data["recipe"],
            quality_target=QualityTarget(**data["quality_target"]),
            fp32_fallback=data["fp32_fallback"],
            calibration_texts_sha256=data["calibration_texts_sha256"],
            default_file=data["default_file"],
            model_type=data["model_type"],
            fusions=dict(data["fusions"]),
            dimension=data["dimension"],
            max_seq_length=data["max_seq_length"],
            pooling=tuple(data["pooling"]),
            normalize=data["normalize"],
            validation_texts=validation["texts"],
            held_out_texts=validation.get("held_out_texts", 0),
            files={name: ValidationFigures.from_json(row) for name, row in validation["files"].items()},
            recipes=tuple(RecipeResult.from_json(row) for row in data["recipes"]),
            benchmark=QuickBenchmark.from_json(data["benchmark"]) if data["benchmark"] else None,
            timings=dict(data["timings"]),
            versions=dict(data["versions"]),
            machine=Machine(**data["machine"]),
            sizes=dict(data["sizes"]),
            fastest_runtime=dict(data.get("fastest_runtime", {})),
            fastest_file=dict(data.get("fastest_file", {})),
        )


def _fmt(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _held_out_cells(held: Quality | None) -> str:
    if held is None:
        return "-"
    return f"{_fmt(held.min_cosine)} / {_fmt(held.mean_cosine, 5)} / {_fmt(held.topk_agreement, 3)}"


def _validation_row(name: str, row: ValidationFigures) -> str:
    quality, target = row.quality, row.target
    return (
        f"| `{name}` | {_fmt(quality.min_cosine)} | {_fmt(quality.mean_cosine, 5)} "
        f"| {_fmt(quality.max_abs_error, 5)} | {_fmt(quality.topk_agreement, 3)} | {_held_out_cells(row.held_out)} "
        f"| {row.encode_seconds:.2f} "
        f"| min ≥ {target.min_cosine}, mean ≥ {target.mean_cosine}, top-10 ≥ {target.topk_agreement} "
        f"| {'pass' if row.passed else 'FAIL'} |"
    )


def _recipe_lines(recipes: tuple[RecipeResult, ...]) -> list[str]:
    lines = [
        "",
        "## INT8 recipes tried",
        "",
        "Recipes run in order of expected speed (fastest first); the first that meets the quality "
        "target wins, so every recipe above the winner failed the target for the reason given.",
        "",
        "| recipe | min cosine | mean cosine | top-10 | held-out min / mean / top-10 | encode s | size MB "
        "| MatMuls kept FP32 | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in recipes:
        if row.figures is None:  # the recipe raised; its result says what
            lines.append(f"| {row.recipe} | - | - | - | - | - | - | - | {row.result} |")
            continue
        quality, size = row.figures.quality, row.size_bytes or 0
        lines.append(
            f"| {row.recipe} | {_fmt(quality.min_cosine)} | {_fmt(quality.mean_cosine, 5)} "
            f"| {_fmt(quality.topk_agreement, 3)} | {_held_out_cells(row.figures.held_out)} "
            f"| {row.figures.encode_seconds:.2f} | {size / 1e6:.1f} "
            f"| {len(row.fp32_matmuls)} | {row.result} |"
        )
    for row in recipes:
        if row.recipe.endswith("sensitive-fp32"):
            names = ", ".join(f"`{name}`" for name in row.fp32_matmuls)
            lines += ["", f"`{row.recipe}` kept FP32 (most error added on the calibration texts first): {names}"]
    return lines


def benchmark_lines(bench: QuickBenchmark) -> list[str]:
    """REPORT.md lines of the quick benchmark (dense and ColBERT reports)."""
    lines = [
        "",
        f"## Quick benchmark ({bench.threads} threads, same process, one run)",
        "",
        "| backend | batch-1 p50 ms | batch-1 p95 ms | texts/s (batch 32) | vs PyTorch p50 |",
        "|---|---|---|---|---|",
    ]
    pytorch = bench.backends.get("pytorch")
    base = pytorch.p50_ms if pytorch else None
    for name, row in bench.backends.items():
        ratio = f"{base / row.p50_ms:.1f}x" if base else "-"
        lines.append(f"| {name} | {row.p50_ms:.2f} | {row.p95_ms:.2f} | {row.throughput:.0f} | {ratio} |")
    return lines


def render_markdown(report: Report | Mapping[str, Any]) -> str:
    """The report as a Markdown page (``report`` may be the JSON form ``prepare_model`` returns)."""
    if not isinstance(report, Report):
        report = Report.from_json(report)
    lines = [
        f"# fastembed-adapter report: {report.source}",
        "",
        f"- output: `{report.output}`",
        f"- target: `{report.target}`, recipe: `{report.recipe}`, default file: `{report.default_file}`",
        f"- dimension {report.dimension}, max_seq_length {report.max_seq_length}, "
        f"pooling {list(report.pooling)}, normalize {report.normalize}",
        "",
        "## Validation against PyTorch `SentenceTransformer.encode()`",
        "",
        f"{report.validation_texts} built-in texts (queries, sentences, long passages, 20+ languages, code, "
        f"numbers/URLs), and a held-out split of {report.held_out_texts} texts (whitespace, lone symbols, emoji, "
        "very short queries, single words of other scripts, code, numbers, other sentences and passages) that no "
        "recipe search or "
        "calibration ever sees; a file must meet its target on both.",
        "",
        "| file | min cosine | mean cosine | max abs error | top-10 agreement | held-out min / mean / top-10 "
        "| encode s | target | result |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_validation_row(name, row) for name, row in report.files.items()),
    ]
    if any(name.endswith(".xml") for name in report.files):
        version = report.versions.get("openvino", "")
        lines += [
            "",
            f"`.xml` files are run by OpenVINO {version} (FP32, `INFERENCE_PRECISION_HINT` f32; load them with "
            '`runtime="openvino"`), the `.onnx` files by ONNX Runtime.',
        ]
    if report.fp32_fallback:
        lines += ["", f"**WARNING: {report.fp32_fallback}**"]
    if report.recipes:
        lines += _recipe_lines(report.recipes)
    if report.benchmark:
        lines += benchmark_lines(report.benchmark)
    for isa, runtime in report.fastest_runtime.items():
        lines += [
            "",
            f"Fastest runtime on `{isa}` by this benchmark (batch-1 p50 and batch-32 throughput both): **{runtime}**; "
            '`runtime="auto"` follows it on CPUs of that kind.',
        ]
    lines += fastest_file_lines(report.fastest_file, report.default_file)
    lines += ["", "## Stage timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {secs:.2f} |" for name, secs in report.timings.items()]
    lines += ["", "## Files", "", "| file | MB |", "|---|---|"]
    lines += [f"| `{name}` | {size / 1e6:.2f} |" for name, size in report.sizes.items()]
    lines += ["", "## Versions", ""]
    lines += [f"- {name} {version}" for name, version in report.versions.items()]
    return "\n".join(lines) + "\n"


def fastest_file_lines(fastest: Mapping[str, str], default_file: str | None) -> list[str]:
    """REPORT.md lines for the measured ``fastest_file`` (dense and ColBERT reports)."""
    lines = []
    for isa, name in fastest.items():
        why = (
            "FP32 measured faster than the INT8 file at batch-1 p50 and batch-32 throughput, so the exact file runs"
            if name != default_file
            else "the INT8 file was faster than FP32 in at least one of the two"
        )
        lines += ["", f"File the encoder loads by default on `{isa}` (measured here): **`{name}`** ({why})."]
    return lines


def write_reports(folder: Path, report: Report) -> None:
    """Write ``report.json`` and ``REPORT.md`` into ``folder``."""
    write_json(folder / REPORT_JSON, report.to_json())
    (folder / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
