"""The backends compared, and how each one is loaded and called inside a worker process.

Every loader imports its library when called (never at module import), so a worker process
holds only the library of the backend it measures (plus this package's light runtime).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import OPENVINO_FILE

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["BACKENDS", "BASELINE", "Backend", "Embedder", "Kind", "LoadContext", "UnavailableError", "by_name", "load"]

BATCH_SIZE = 32  # sentence-transformers' default, used by every backend for the throughput runs


class Kind(str, Enum):
    """Which library runs the model."""

    PYTORCH = "pytorch"
    ST_ONNX = "st-onnx"
    ST_OPENVINO = "st-openvino"
    FASTEMBED = "fastembed"
    OURS = "ours"


class Precision(str, Enum):
    """Which file the backend runs: the optimized FP32 ONNX file, the INT8 one, or the PyTorch weights."""

    FP32 = "fp32"
    INT8 = "int8"
    BF16 = "bf16"  # the FP32 OpenVINO IR run with INFERENCE_PRECISION_HINT=bf16 (AVX-512 BF16 / AMX CPUs)


@dataclass(frozen=True)
class Backend:
    """One column of the comparison."""

    name: str
    kind: Kind
    precision: Precision
    label: str
    runtime: str = "onnxruntime"  # ours only: which runtime OnnxSentenceEncoder runs the file on


BACKENDS: tuple[Backend, ...] = (
    Backend("pytorch-fp32", Kind.PYTORCH, Precision.FP32, "SentenceTransformer PyTorch FP32"),
    Backend("st-onnx-fp32", Kind.ST_ONNX, Precision.FP32, "SentenceTransformer ONNX FP32"),
    Backend("st-onnx-int8", Kind.ST_ONNX, Precision.INT8, "SentenceTransformer ONNX INT8"),
    Backend("st-openvino-fp32", Kind.ST_OPENVINO, Precision.FP32, "SentenceTransformer OpenVINO FP32 (IR)", "openvino"),
    Backend("fastembed-int8", Kind.FASTEMBED, Precision.INT8, "fastembed TextEmbedding INT8"),
    Backend("ours-int8", Kind.OURS, Precision.INT8, "OnnxSentenceEncoder INT8"),
    Backend("ours-fp32", Kind.OURS, Precision.FP32, "OnnxSentenceEncoder FP32"),
    Backend("ours-openvino-fp32", Kind.OURS, Precision.FP32, "OnnxSentenceEncoder OpenVINO FP32 (IR)", "openvino"),
    Backend("ours-openvino-bf16", Kind.OURS, Precision.BF16, "OnnxSentenceEncoder OpenVINO BF16 (IR)", "openvino"),
)
BASELINE = BACKENDS[0]


class UnavailableError(RuntimeError):
    """The backend cannot run here (library missing, file missing, cannot load offline); the message says why."""


@dataclass(frozen=True)
class LoadContext:
    """What a worker needs to load any backend."""

    source: Path  # the sentence-transformers folder (PyTorch weights)
    prepared: Path  # the folder written by `prepare`
    fp32_file: str
    int8_file: str | None
    threads: int

    def file_for(self, backend: Backend) -> str:
        """The model file (relative to ``prepared``) the backend runs: the OpenVINO IR for OpenVINO backends."""
        if backend.runtime == "openvino":
            return OPENVINO_FILE
        if backend.precision is Precision.FP32:
            return self.fp32_file
        if self.int8_file is None:
            raise UnavailableError(f"{self.prepared} has no INT8 file (prepare --quantize none or no recipe passed).")
        return self.int8_file


@dataclass
class Embedder:
    """A loaded backend: ``encode(texts)`` returns ``(n, dim)`` float32, ``encode_one(text)`` a ``(dim,)`` vector."""

    encode: Callable[[list[str]], np.ndarray]
    encode_one: Callable[[str], np.ndarray]
    details: dict[str, Any]
    stages: Callable[[], dict[str, float]] | None = None  # cumulative seconds per stage (our encoder only)


def _pytorch(backend: Backend, ctx: LoadContext) -> Embedder:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(ctx.threads)
    model = SentenceTransformer(str(ctx.source), device="cpu")
    return Embedder(
        encode=lambda texts: model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False),
        encode_one=lambda text: model.encode(text, show_progress_bar=False),
        details={"file": "model.safetensors", "max_seq_length": model.max_seq_length, "torch": torch.__version__},
    )


def _st_onnx(backend: Backend, ctx: LoadContext) -> Embedder:
    import importlib.util

    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    if importlib.util.find_spec("optimum") is None:
        import transformers

        raise UnavailableError(
            "sentence-transformers' ONNX backend needs optimum, which is not installed: optimum-onnx requires "
            f"transformers < 4.58 and this environment has transformers {transformers.__version__}."
        )

    options = ort.SessionOptions()
    options.intra_op_num_threads = ctx.threads
    options.inter_op_num_threads = 1
    file_name = ctx.file_for(backend)
    model = SentenceTransformer(
        str(ctx.prepared),
        backend="onnx",
        device="cpu",
        model_kwargs={"file_name": file_name, "session_options": options, "provider": "CPUExecutionProvider"},
    )
    return Embedder(
        encode=lambda texts: model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False),
        encode_one=lambda text: model.encode(text, show_progress_bar=False),
        details={"file": file_name, "max_seq_length": model.max_seq_length},
    )


def _st_openvino(backend: Backend, ctx: LoadContext) -> Embedder:
    """sentence-transformers' ``backend="openvino"`` (optimum-intel) on the IR ``prepare`` wrote."""
    import importlib.util

    from sentence_transformers import SentenceTransformer

    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.intel") is None:
        raise UnavailableError(
            "sentence-transformers' OpenVINO backend needs optimum-intel, which is not installed "
            "(pip install 'sentence-transformers[openvino]'; optimum-intel 2.2 installs beside transformers 4.57)."
        )
    file_name = ctx.file_for(backend)
    try:
        model = SentenceTransformer(
            str(ctx.prepared),
            backend="openvino",
            device="cpu",
            model_kwargs={"file_name": file_name, "ov_config": {"INFERENCE_NUM_THREADS": str(ctx.threads)}},
        )
    except Exception as exc:  # a folder written under another sentence-transformers major, optimum errors
        where = ctx.prepared / file_name
        raise UnavailableError(f"sentence-transformers cannot load {where} with OpenVINO: {exc}") from exc
    return Embedder(
        encode=lambda texts: model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False),
        encode_one=lambda text: model.encode(text, show_progress_bar=False),
        details={"file": file_name, "max_seq_length": model.max_seq_length},
    )


def _fastembed(backend: Backend, ctx: LoadContext) -> Embedder:
    try:
        import fastembed
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType
    except ImportError as exc:
        raise UnavailableError(f"fastembed is not installed ({exc}); pip install 'fastembed-adapter[bench]'") from exc
    from ..layout import PoolingMode, read_layout

    layout = read_layout(ctx.prepared)
    modes = layout.pooling.modes
    poolings = {PoolingMode.MEAN: PoolingType.MEAN, PoolingMode.CLS: PoolingType.CLS}
    if len(modes) != 1 or modes[0] not in poolings:
        raise UnavailableError(f"fastembed custom models support mean or cls pooling, not {[m.value for m in modes]}.")
    file_name = ctx.file_for(backend)
    name = f"fastembed-adapter-bench/{ctx.prepared.name}-{Path(file_name).stem}"
    try:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=poolings[modes[0]],
            normalization=layout.normalize,
            sources=ModelSource(hf=name),  # never fetched: specific_model_path points at the local folder
            dim=layout.dimension,
            model_file=file_name,
        )
        model = TextEmbedding(model_name=name, specific_model_path=str(ctx.prepared), threads=ctx.threads)
    except Exception as exc:  # fastembed raises ValueError/OSError/ORT errors; record the reason
        raise UnavailableError(f"fastembed cannot load {ctx.prepared / file_name} offline: {exc}") from exc
    # fastembed truncates at tokenizer_config's max_length (128 for MiniLM); match sentence-transformers.
    tokenizer = model.model.tokenizer  # type: ignore[attr-defined]
    default_truncation = dict(tokenizer.truncation or {})
    if layout.max_seq_length is not None:
        tokenizer.enable_truncation(max_length=layout.max_seq_length)

    def encode(texts: list[str]) -> np.ndarray:
        return np.stack(list(model.embed(texts, batch_size=BATCH_SIZE)))

    return Embedder(
        encode=encode,
        encode_one=lambda text: np.asarray(next(iter(model.embed([text], batch_size=1)))),
        details={
            "file": file_name,
            "max_seq_length": layout.max_seq_length,
            "fastembed": fastembed.__version__,
            "fastembed_default_truncation": default_truncation.get("max_length"),
            "truncation_override": f"set to max_seq_length={layout.max_seq_length} (sentence-transformers')",
        },
    )


def _ours(backend: Backend, ctx: LoadContext) -> Embedder:
    from prometheus_client import CollectorRegistry

    from ..encoder import OnnxSentenceEncoder
    from ..errors import FastembedAdapterError

    file_name = ctx.file_for(backend)
    registry = CollectorRegistry()  # default metrics=True (what users get), read back for the stage breakdown
    extra: dict[str, Any] = {}
    if backend.precision is Precision.BF16:
        extra["model_kwargs"] = {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}}
    try:
        model = OnnxSentenceEncoder(
            ctx.prepared,
            file_name=file_name,
            threads=ctx.threads,
            cache_size=0,
            registry=registry,
            model_name="bench",
            runtime=backend.runtime,
            **extra,
        )
    except FastembedAdapterError as exc:  # no openvino installed, no BF16 on this CPU: a column that cannot run
        if backend.runtime == "onnxruntime":
            raise
        raise UnavailableError(str(exc)) from exc
    return Embedder(
        encode=lambda texts: model.encode(texts, batch_size=BATCH_SIZE),
        encode_one=lambda text: model.encode(text),
        details={"file": file_name, "runtime": model.runtime, "max_seq_length": model.max_seq_length, "cache_size": 0},
        stages=lambda: stage_seconds(registry),
    )


_LOADERS: dict[Kind, Callable[[Backend, LoadContext], Embedder]] = {
    Kind.PYTORCH: _pytorch,
    Kind.ST_ONNX: _st_onnx,
    Kind.ST_OPENVINO: _st_openvino,
    Kind.FASTEMBED: _fastembed,
    Kind.OURS: _ours,
}


def load(backend: Backend, ctx: LoadContext) -> Embedder:
    """Load ``backend`` in this process; raises :class:`UnavailableError` with the reason when it cannot run."""
    path = ctx.prepared / ctx.file_for(backend) if backend.kind is not Kind.PYTORCH else ctx.source
    if not path.exists():
        raise UnavailableError(f"{path} does not exist.")
    return _LOADERS[backend.kind](backend, ctx)


def stage_seconds(registry: CollectorRegistry) -> dict[str, float]:
    """Cumulative seconds per stage (encode, tokenize, inference, pooling) from our encoder's metrics."""
    names = ("encode", "tokenize", "inference", "pooling")
    values = {
        name: registry.get_sample_value(f"fastembed_adapter_{name}_seconds_sum", {"model": "bench"}) for name in names
    }
    return {name: float(value or 0.0) for name, value in values.items()}


def by_name(name: str) -> Backend:
    """The backend called ``name``; the message lists the valid names."""
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise ValueError(f"Unknown backend {name!r}. Valid backends: {', '.join(b.name for b in BACKENDS)}")


def dumps(data: Any) -> str:
    """JSON for the worker protocol (floats as-is, numpy scalars converted)."""
    return json.dumps(data, default=lambda value: value.item() if hasattr(value, "item") else str(value))
