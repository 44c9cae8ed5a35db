"""``prepare --kind colbert``: a ColBERT model → one ONNX graph (transformer + projection), INT8, validated.

The export, ORT fusions, INT8 recipes, staging and manifest are the dense pipeline's; what
differs is here: the projection appended to the graph (token vectors out), the reference, and the
quality figures — per-token cosine, token counts text by text, and the MaxSim ranking of documents
for each query (top-10 overlap, Spearman).

The reference (:class:`Reference`) is PyLate's ``ColBERT.encode(is_query=...)`` when PyLate is
installed and the source is not a sentence-transformers 6 ``MultiVectorEncoder`` folder; otherwise
``sentence_transformers.MultiVectorEncoder.encode_query`` / ``encode_document``. The reference
library loads the model and saves the output folder, so the folder is in its format and our
encoder follows that library's tokenization and masking.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..colbert_layout import ONNX_CONFIG_NAME, ColbertFormat, colbert_format, read_colbert_layout
from ..cpu import QuantTarget, available_cpus, detect_target
from ..errors import MissingExtraError, UnsupportedModelError, ValidationFailedError
from ..extras import versions
from ..late_interaction import colbert_scores
from ..layout import FP32_FILE, MANIFEST_NAME, int8_file_name, onnx_size, read_json
from ..modules import DenseModule, normalize
from ..texts import calibration_texts, retrieval_set
from .export import export_optimized
from .quantize import RECIPES, Calibration, Recipe, quantize_int8
from .report import QuickBenchmark, benchmark_lines, fastest_file_lines
from .speed import fastest_file_record, quick_colbert_benchmark
from .writer import WEIGHT_SUFFIXES, check_output, file_table, remove_onnx, save_onnx, staging, write_json

__all__ = [
    "COLBERT_INT8_TARGET",
    "ColbertQuality",
    "ColbertTarget",
    "Reference",
    "append_projection",
    "compare_colbert",
    "load_reference",
    "prepare_colbert",
    "render_colbert_markdown",
]

_TOKEN_OUTPUT = "token_embeddings"
_ACTIVATIONS = {"torch.nn.modules.linear.Identity": None, "torch.nn.modules.activation.Tanh": "Tanh"}
_VERSIONED = ("fastembed-adapter", "onnxruntime", "onnx", "torch", "transformers", "sentence-transformers", "pylate")


@dataclass(frozen=True)
class ColbertQuality:
    """Agreement of one file's token vectors and rankings with PyLate's, over the validation queries/documents."""

    min_token_cosine: float
    mean_token_cosine: float
    token_counts_equal: bool
    topk_agreement: float
    spearman: float
    k: int
    queries: int
    documents: int
    topk_misses: int = 0  # documents in PyLate's top-k that are not in ours, over all queries
    near_tie_misses: int = 0  # of those, PyLate scores within ``score_error_p95`` of its k-th document
    score_error_p95: float = 0.0  # 95th percentile of |our MaxSim - PyLate's| over all query-document pairs
    boundary_gap_median: float = 0.0  # median over queries of PyLate's k-th minus (k+1)-th MaxSim score


@dataclass(frozen=True)
class ColbertTarget:
    """A ColBERT gate: every figure at least this (token counts always equal)."""

    min_token_cosine: float = 0.0
    mean_token_cosine: float = 0.0
    topk_agreement: float = 0.0

    def failures(self, quality: ColbertQuality) -> list[str]:
        """Why ``quality`` misses this target (empty when it passes)."""
        failed = [] if quality.token_counts_equal else ["token counts differ from the reference's"]
        checks = [
            ("min per-token cosine", quality.min_token_cosine, self.min_token_cosine),
            ("mean per-token cosine", quality.mean_token_cosine, self.mean_token_cosine),
            (f"top-{quality.k} ranking agreement", quality.topk_agreement, self.topk_agreement),
        ]
        return failed + [f"{name} {value:.4f} < {limit}" for name, value, limit in checks if value < limit]


# The INT8 gate ``prepare --kind colbert`` applies unless told otherwise.
COLBERT_INT8_TARGET = ColbertTarget(min_token_cosine=0.0, mean_token_cosine=0.995, topk_agreement=0.95)


def render_colbert_markdown(report: dict[str, Any]) -> str:
    """``REPORT.md`` of a ColBERT folder: every file and recipe against the reference library."""
    api = report.get("reference", {}).get("api", "pylate.models.ColBERT.encode")
    lines = [
        f"# {report['source']['id']} (ColBERT)",
        "",
        f"Default file `{report['default_file']}`, recipe {report['recipe'] or 'none'}, target {report['target']}, "
        f"{report['dimension']}-d token vectors; validated on {report['validation']['queries']} queries and "
        f"{report['validation']['documents']} documents against `{api}`, and on a held-out "
        f"split ({report['validation']['held_out']['queries']} queries, "
        f"{report['validation']['held_out']['documents']} documents) the recipe search never saw.",
        "",
        "A top-10 miss is a *near tie* when the reference's own score for the missed document is within the file's "
        "95th-percentile MaxSim error of the reference's 10th score: the file cannot order such documents the way "
        "the reference does, whatever its recipe. Many near ties and a small median gap between its 10th and "
        "11th scores mean the model barely separates its top 10 on these texts.",
        "",
        "| file / recipe | min token cos | mean token cos | token counts | top-10 ranking | Spearman "
        "| top-10 misses (near ties) | MaxSim error p95 / gap 10-11 | held-out mean / top-10 | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(name, row) for name, row in report["validation"]["files"].items()]
    rows += [(f"recipe {row['recipe']}", row) for row in report["recipes"]]
    for name, row in rows:
        if "min_token_cosine" not in row:
            lines.append(f"| {name} | | | | | | | | | {row['result']} |")
            continue
        result = row.get("result") or ("pass" if row["passed"] else "; ".join(row["failures"]))
        held = row["held_out"]
        lines.append(
            f"| {name} | {row['min_token_cosine']:.4f} | {row['mean_token_cosine']:.5f} | "
            f"{'equal' if row['token_counts_equal'] else 'differ'} | {row['topk_agreement']:.3f} | "
            f"{row['spearman']:.4f} | {row.get('topk_misses', 0)} ({row.get('near_tie_misses', 0)}) | "
            f"{row.get('score_error_p95', 0.0):.3f} / {row.get('boundary_gap_median', 0.0):.3f} | "
            f"{held['mean_token_cosine']:.5f} / {held['topk_agreement']:.3f} | {result} |"
        )
    if report.get("benchmark"):
        lines += benchmark_lines(QuickBenchmark.from_json(report["benchmark"]))
        lines += ["", "(ColBERT: batch-1 is one query; texts/s are documents at batch 32.)"]
    lines += fastest_file_lines(report.get("fastest_file", {}), report["default_file"])
    return "\n".join(lines) + "\n"


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)).astype(np.float64), np.argsort(np.argsort(b)).astype(np.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denominator) if denominator else 1.0


def compare_colbert(
    reference: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    candidate: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    k: int = 10,
) -> ColbertQuality:
    """Per-token cosines (texts whose token counts differ count as cosine 0), and MaxSim rankings.

    ``reference`` and ``candidate`` are ``(query vectors, document vectors)``, one ``(tokens, dim)``
    array per text. The top-k agreement is the mean overlap of each query's k best documents.
    """
    cosines: list[np.ndarray] = []
    equal = True
    for ref_side, cand_side in zip(reference, candidate, strict=True):
        for ref, cand in zip(ref_side, cand_side, strict=True):
            if ref.shape != cand.shape:
                equal = False
                cosines.append(np.zeros(1))
                continue
            cosines.append(np.sum(normalize(ref, np.float64) * normalize(cand, np.float64), axis=1))
    flat = np.concatenate(cosines) if cosines else np.ones(1)
    ref_scores = colbert_scores(reference[0], reference[1]).astype(np.float64)
    cand_scores = colbert_scores(candidate[0], candidate[1]).astype(np.float64)
    k = max(1, min(k, ref_scores.shape[1]))
    error = float(np.percentile(np.abs(cand_scores - ref_scores), 95)) if ref_scores.size else 0.0
    overlaps, spearmans, gaps = [], [], []
    misses = near_ties = 0
    for ref_row, cand_row in zip(ref_scores, cand_scores, strict=True):
        ref_order = np.argsort(-ref_row, kind="stable")
        best_ref = set(ref_order[:k].tolist())
        best_cand = set(np.argsort(-cand_row, kind="stable")[:k].tolist())
        overlaps.append(len(best_ref & best_cand) / k)
        spearmans.append(_spearman(ref_row, cand_row))
        kth = ref_row[ref_order[k - 1]]
        if len(ref_order) > k:
            gaps.append(float(kth - ref_row[ref_order[k]]))
        missed = best_ref - best_cand
        misses += len(missed)
        near_ties += sum(1 for doc in missed if ref_row[doc] - kth <= error)
    return ColbertQuality(
        min_token_cosine=float(flat.min()),
        mean_token_cosine=float(flat.mean()),
        token_counts_equal=equal,
        topk_agreement=float(np.mean(overlaps)),
        spearman=float(np.mean(spearmans)),
        k=k,
        queries=len(reference[0]),
        documents=len(reference[1]),
        topk_misses=misses,
        near_tie_misses=near_ties,
        score_error_p95=error,
        boundary_gap_median=float(np.median(gaps)) if gaps else 0.0,
    )


def append_projection(path: Path, projection: Sequence[DenseModule]) -> None:
    """Append the Dense projection(s) to the ONNX file at ``path``: ``last_hidden_state`` → ``token_embeddings``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    (output,) = [value for value in graph.output]
    current = output.name
    nodes: list[Any] = []
    for index, module in enumerate(projection):
        if module.activation not in _ACTIVATIONS:
            raise UnsupportedModelError(
                f"ColBERT Dense activation {module.activation!r} cannot be exported; "
                f"supported: {', '.join(_ACTIVATIONS)}."
            )
        name = f"colbert_dense_{index}"
        x = current

        def constant(suffix: str, value: np.ndarray, name: str = name) -> str:
            graph.initializer.append(
                numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), f"{name}.{suffix}")
            )
            return f"{name}.{suffix}"

        nodes.append(
            helper.make_node(
                "MatMul", [x, constant("weight", module.weight.T)], [f"{name}/matmul"], name=f"{name}/MatMul"
            )
        )
        current = f"{name}/matmul"
        if module.bias is not None:
            nodes.append(helper.make_node("Add", [current, constant("bias", module.bias)], [f"{name}/bias"]))
            current = f"{name}/bias"
        op = _ACTIVATIONS[module.activation]
        if op is not None:
            nodes.append(helper.make_node(op, [current], [f"{name}/act"]))
            current = f"{name}/act"
        if module.use_residual:
            residual = x
            if module.residual is not None:
                nodes.append(
                    helper.make_node(
                        "MatMul", [x, constant("residual", module.residual.T)], [f"{name}/res"], name=f"{name}/Residual"
                    )
                )
                residual = f"{name}/res"
            nodes.append(helper.make_node("Add", [current, residual], [f"{name}/out"]))
            current = f"{name}/out"
    nodes.append(helper.make_node("Identity", [current], [_TOKEN_OUTPUT]))
    graph.node.extend(nodes)
    dims = [d.dim_param or d.dim_value for d in output.type.tensor_type.shape.dim][:2]
    graph.ClearField("output")
    graph.output.append(
        helper.make_tensor_value_info(_TOKEN_OUTPUT, onnx.TensorProto.FLOAT, [*dims, projection[-1].dimension])
    )
    save_onnx(model, path)


@dataclass(frozen=True)
class Reference:
    """The library ``prepare`` validates against, and its loaded model."""

    library: str  # "pylate" or "sentence-transformers"
    api: str
    model: Any = field(repr=False)

    def encode(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        """Token vectors of each text, as float32 numpy arrays."""
        if self.library == "pylate":
            return list(self.model.encode(texts, is_query=is_query))
        method = self.model.encode_query if is_query else self.model.encode_document
        return [np.asarray(vectors, dtype=np.float32) for vectors in method(texts, convert_to_numpy=True)]

    def save(self, folder: Path) -> None:
        """The loaded model in the library's own save format."""
        self.model.save(str(folder))


def _multi_vector_encoder_class() -> Any:
    try:
        from sentence_transformers import MultiVectorEncoder
    except ImportError:
        return None
    return MultiVectorEncoder


def load_reference(source: Path) -> Reference:
    """PyLate for a PyLate (or plain) source when it is installed, else sentence-transformers 6's MultiVectorEncoder."""
    native = colbert_format(source) is ColbertFormat.MULTI_VECTOR_ENCODER if source.is_dir() else False
    if not native:
        try:
            from pylate import models
        except ImportError:
            pass
        else:
            return Reference("pylate", "pylate.models.ColBERT.encode", models.ColBERT(str(source), device="cpu"))
    encoder_class = _multi_vector_encoder_class()
    if encoder_class is None:
        raise MissingExtraError(
            "prepare",
            "a ColBERT reference: sentence-transformers>=6.2 (MultiVectorEncoder) or, beside sentence-transformers "
            "5.3, PyLate (prepare --kind colbert validates against one of them)"
            + (" — this is a MultiVectorEncoder folder, which only sentence-transformers>=6.2 reads" if native else ""),
            install="pip install 'sentence-transformers>=6.2', or pip install pylate==1.6.0 fastkmeans==0.5.0 "
            "--no-deps beside sentence-transformers 5.3 (FEA_STACK=st5 bash scripts/setup.sh does it)",
        )
    return Reference(
        "sentence-transformers",
        "sentence_transformers.MultiVectorEncoder.encode_query/encode_document",
        encoder_class(str(source), device="cpu"),
    )


Split = tuple[list[str], list[str]]  # (queries, documents)
Vectors = tuple[list[np.ndarray], list[np.ndarray]]


def _encode_split(model: Any, split: Split) -> Vectors:
    """The reference's (or our encoder's) query and document vectors of one split."""
    return list(model.encode(split[0], is_query=True)), list(model.encode(split[1], is_query=False))


def _encode_ours(
    out: Path, file_name: str, splits: Sequence[Split], threads: int | None
) -> tuple[list[Vectors], float]:
    """Our vectors of each split with one ONNX file, and the seconds the first split took."""
    from ..colbert import OnnxColbertEncoder

    encoder = OnnxColbertEncoder(out, file_name=file_name, threads=threads, cache_size=0, metrics=False)
    start = time.perf_counter()
    results = [_encode_split(encoder, splits[0])]
    seconds = time.perf_counter() - start
    return results + [_encode_split(encoder, split) for split in splits[1:]], seconds


def _row(
    reference: Sequence[Vectors], ours: Sequence[Vectors], target: ColbertTarget, seconds: float
) -> dict[str, Any]:
    """A file's figures on the validation split (and on the held-out one), gated on both."""
    validation, held_out = (compare_colbert(ref, got) for ref, got in zip(reference, ours, strict=True))
    failures = target.failures(validation) + [f"held-out: {reason}" for reason in target.failures(held_out)]
    return {**asdict(validation), "held_out": asdict(held_out), "target": asdict(target),
            "encode_seconds": round(seconds, 3), "passed": not failures, "failures": failures}  # fmt: skip


def prepare_colbert(options: Any) -> dict[str, Any]:
    """``prepare`` for a PyLate ColBERT folder or hub id (``options`` is a ``PrepareOptions``); return the report."""
    from .pipeline import _load_source, _Timer, write_extra_layouts

    check_output(options.output, options.force)
    timer = _Timer(options.progress)
    target: QuantTarget | None = options.resolved_target() if options.quantize == "int8" else None
    splits = (retrieval_set(), retrieval_set(held_out=True))  # the gate holds on both; the search sees neither
    with timer.stage("load"):
        source, revision = _load_source(options)
        model = load_reference(Path(source))
        reference = [_encode_split(model, split) for split in splits]
    files: dict[str, dict[str, Any]] = {}
    tried: list[dict[str, Any]] = []
    recipe_name: str | None = None
    default_file = FP32_FILE
    with staging(options.output, options.force) as out, tempfile.TemporaryDirectory(prefix="fea-colbert-") as work:
        full = Path(work) / "model"
        model.save(full)  # the loaded model (Stanford and base checkpoints get the library's projection)
        model_type = str(read_json(full / "config.json").get("model_type"))
        model.save(out)
        for weights in [p for p in out.glob("*") if p.suffix in WEIGHT_SUFFIXES]:  # the projection keeps its own
            if not options.torch_weights:  # --torch-weights: PyLate / MultiVectorEncoder load the folder too
                weights.unlink()
        (out / "README.md").unlink(missing_ok=True)
        layout = read_colbert_layout(out)
        with timer.stage("export"):
            (out / "onnx").mkdir(exist_ok=True)
            fusions = export_optimized(full, Path(work) / "export", out / FP32_FILE, model_type)
            append_projection(out / FP32_FILE, layout.projection)
        with timer.stage("validate"):
            ours, seconds = _encode_ours(out, FP32_FILE, splits, options.threads)
            fp32_target = ColbertTarget(min_token_cosine=options.min_cosine_fp32)
            files[FP32_FILE] = _row(reference, ours, fp32_target, seconds)
            if not files[FP32_FILE]["passed"]:
                raise ValidationFailedError(
                    f"The FP32 ColBERT ONNX model drifted from {model.api}: "
                    + "; ".join(files[FP32_FILE]["failures"])
                    + ". No INT8 recipe was tried and nothing was written."
                )
        int8_target = ColbertTarget(0.0, options.min_mean_cosine_int8, options.min_topk_agreement_int8)
        if target is not None:
            with timer.stage("quantize"):
                name = int8_file_name(target)
                calibration = Calibration(out, tuple(calibration_texts()), options.threads)
                candidates: list[Recipe] = [RECIPES[options.recipe]] if options.recipe else list(RECIPES.values())
                for recipe in candidates:
                    try:
                        details = quantize_int8(out / FP32_FILE, out / name, target, recipe, calibration)
                        ours, seconds = _encode_ours(out, name, splits, options.threads)
                    except Exception as exc:  # one broken recipe must not stop the search
                        if options.recipe:
                            raise
                        tried.append({"recipe": recipe.name, "passed": False, "result": f"error: {exc}"[:300]})
                        continue
                    row = _row(reference, ours, int8_target, seconds)
                    tried.append({"recipe": recipe.name, **row, "size_bytes": onnx_size(out / name), **details,
                                  "result": "pass" if row["passed"] else "; ".join(row["failures"])})  # fmt: skip
                    if row["passed"]:
                        recipe_name, default_file, files[name] = recipe.name, name, row
                        break
                else:
                    remove_onnx(out / name)
                    if not options.allow_fp32_fallback:
                        raise ValidationFailedError(
                            "No INT8 recipe kept the ColBERT rankings (mean per-token cosine >= "
                            f"{int8_target.mean_token_cosine}, top-10 agreement >= {int8_target.topk_agreement}): "
                            + ", ".join(f"{row['recipe']}: {row['result']}" for row in tried)
                            + ". Relax the target, pass --allow-fp32-fallback, or use --quantize none."
                        )
        bench: QuickBenchmark | None = None
        if options.benchmark:
            with timer.stage("benchmark"):
                timed = list(dict.fromkeys([FP32_FILE, default_file]))
                bench = quick_colbert_benchmark(model, out, timed, options.threads)
        fastest = fastest_file_record(bench, default_file)
        with timer.stage("write"):
            from ..colbert import OnnxColbertEncoder

            settings = OnnxColbertEncoder(out, file_name=FP32_FILE, threads=1, metrics=False).onnx_config()
            write_json(out / ONNX_CONFIG_NAME, settings)
            report = {
                "kind": "colbert",
                "source": {"id": options.model, "revision": revision},
                "output": str(options.output),
                "target": target.value if target else None,
                "recipe": recipe_name,
                "default_file": default_file,
                "model_type": model_type,
                "format": layout.format.value,
                "reference": {"library": model.library, "api": model.api},
                "fusions": fusions,
                "dimension": layout.dimension,
                "colbert": settings,
                "validation": {
                    "queries": len(splits[0][0]),
                    "documents": len(splits[0][1]),
                    "held_out": {"queries": len(splits[1][0]), "documents": len(splits[1][1])},
                    "files": files,
                },
                "recipes": tried,
                "timings": timer.timings,
                "versions": versions(_VERSIONED),
                "machine": {"cpus": available_cpus(), "isa": getattr(detect_target(), "value", None)},
                "sizes": {file: onnx_size(out / file) for file in files},
                "benchmark": bench.to_json() if bench else {},
                "fastest_file": fastest,  # what OnnxColbertEncoder loads on this CPU without file_name
            }
            write_extra_layouts(out, options, default_file)
            write_json(out / "report.json", report)
            (out / "REPORT.md").write_text(render_colbert_markdown(report), encoding="utf-8")
            manifest = {
                "schema_version": 1,
                "kind": "colbert",
                **{
                    key: report[key]
                    for key in ("source", "target", "recipe", "default_file", "dimension", "versions", "machine")
                },
                "validation": files,
                "files": file_table(out),
                "fastest_file": fastest,
            }
            write_json(out / MANIFEST_NAME, manifest)
        shutil.rmtree(Path(work) / "export", ignore_errors=True)
    return report
