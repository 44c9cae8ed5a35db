"""The only place an OpenVINO model is compiled or run (extra ``openvino``); OpenVINO errors are translated here.

``OpenVinoSession`` has ``OnnxSession``'s surface (``path``, ``threads``, ``input_names``,
``output_name``, ``output_width``, ``run``), so the encoders never know which runtime they drive;
``session.open_session`` picks one. It loads an OpenVINO IR (``openvino/openvino_model.xml`` + ``.bin``,
the layout sentence-transformers' ``backend="openvino"`` reads) or an FP32 ONNX file, and refuses an
ONNX Runtime INT8 file: OpenVINO compiles those and runs them silently wrong (cosine 0.58 vs PyTorch on
all-MiniLM-L6-v2, bench/results/openvino/feasibility.md). OpenVINO also accepts feeds ONNX Runtime
refuses (a mask of another length, float or out-of-vocabulary ids), so every feed is checked here first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .cpu import available_cpus
from .errors import (
    CorruptModelError,
    InferenceError,
    InvalidInputError,
    MissingExtraError,
    ModelNotFoundError,
    UnsupportedModelError,
)
from .layout import FP32_FILE, OPENVINO_FILE, weights_path
from .session import TOKEN_OUTPUTS, model_feeds, release_freed_memory

__all__ = ["PRECISIONS", "OpenVinoSession", "choose_openvino_file", "import_openvino", "openvino_reason"]

# INFERENCE_PRECISION_HINT values: f32 (exact; OpenVINO's default is bf16 on AMX/AVX512-BF16 hosts) or bf16.
PRECISIONS = ("f32", "bf16")
# Element types of the constants ONNX Runtime's quantizer writes (weights, zero points): an INT8 file.
_QUANTIZED_TYPES = ("i8", "u8")
_QUANTIZE_OPS = ("FakeQuantize",)
# ONNX Runtime's quantized ops OpenVINO has no conversion for (named in its error): an INT8 file too.
_ORT_QUANTIZED_OPS = ("QAttention", "QuantizeLinear", "MatMulInteger", "QLinear", "DynamicQuantize", "QGemm", "QEmbed")
# How ONNX Runtime INT8 files are named (``onnx/model_qint8_avx512_vnni.onnx``, ``model_quantized.onnx``).
_INT8_NAMES = ("int8", "quantized", "qint", "quint")


def choose_openvino_file(root: Path, file_name: str | None, listed: Iterable[str] = ()) -> str:
    """The file ``runtime="openvino"`` loads from the folder ``root``: ``file_name``, else the IR, else FP32 ONNX.

    ``file_name`` may name the IR as sentence-transformers does (``openvino_model.xml``, found in
    ``openvino/``). ``listed`` are the manifest's files: one listed but missing is still chosen, so the
    manifest check names it. An ONNX Runtime INT8 file is refused (OpenVINO runs those silently wrong).
    """
    present = {*listed, *(p.relative_to(root).as_posix() for p in root.glob("openvino/*.xml"))}
    present |= {p.relative_to(root).as_posix() for p in root.glob("onnx/*.onnx")}
    if file_name is None:
        for candidate in (OPENVINO_FILE, FP32_FILE):
            if candidate in present or (root / candidate).is_file():
                return candidate
        raise ModelNotFoundError(
            f"{str(root)!r} has neither {OPENVINO_FILE} nor {FP32_FILE} for runtime='openvino'. Run "
            f"`prepare --model {root} --output DIR` with the openvino extra installed."
        )
    if Path(file_name).suffix not in (".xml", ".onnx"):
        raise InvalidInputError(
            f"file_name={file_name!r}: runtime='openvino' loads an OpenVINO IR (.xml) or an FP32 ONNX file (.onnx)."
        )
    if Path(file_name).suffix == ".onnx" and any(mark in Path(file_name).name for mark in _INT8_NAMES):
        raise InvalidInputError(
            f"file_name={file_name!r} is an ONNX Runtime INT8 file, which OpenVINO runs silently wrong (cosine ~0.6 "
            f"vs PyTorch). With runtime='openvino' pass {OPENVINO_FILE!r} or {FP32_FILE!r}, or run the INT8 file "
            "with runtime='onnxruntime'."
        )
    for candidate in (file_name, f"openvino/{file_name}"):
        if candidate in present or (root / candidate).is_file():
            return candidate
    raise ModelNotFoundError(
        f"{str(root)!r} has no model file {file_name!r} for runtime='openvino'. Available: {sorted(present) or 'none'}."
    )


def import_openvino() -> Any:
    """The ``openvino`` module, or ``MissingExtraError`` naming ``pip install 'fastembed-adapter[openvino]'``."""
    try:
        import openvino  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise MissingExtraError("openvino", "openvino") from exc
    return openvino


def openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says what was wrong (its first lines name C++ source files)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


class OpenVinoSession:
    """One compiled OpenVINO model on the CPU, one ``InferRequest`` behind a lock, fed only checked inputs."""

    def __init__(self, path: Path, threads: int | None = None, precision: str = "f32") -> None:
        """Read ``path`` (``.xml`` IR or FP32 ``.onnx``), compile it for ``threads`` CPUs and run one warm-up batch.

        Args:
            path: an OpenVINO IR ``.xml`` (its ``.bin`` beside it) or an FP32 ONNX file.
            threads: ``INFERENCE_NUM_THREADS`` (default: the CPUs this process may use).
            precision: ``INFERENCE_PRECISION_HINT``, ``"f32"`` (exact) or ``"bf16"`` (only on CPUs with BF16).

        Raises:
            InvalidInputError: bad ``threads``/``precision``, bf16 on a CPU without it, or an ONNX Runtime
                INT8 file.
            ModelNotFoundError: ``path`` does not exist.
            CorruptModelError: OpenVINO cannot read or compile the file.
            UnsupportedModelError: the graph holds an op OpenVINO has no conversion for.
            MissingExtraError: the ``openvino`` extra is not installed.
        """
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InvalidInputError(f"threads must be a positive int or None, got {threads!r}.")
        if precision not in PRECISIONS:
            raise InvalidInputError(f"precision {precision!r} is not an OpenVINO CPU precision; valid: {PRECISIONS}.")
        if not path.is_file():
            raise ModelNotFoundError(f"Model file {str(path)!r} does not exist.")
        ov = import_openvino()
        self.path = path
        self.threads = threads or available_cpus()
        self.precision = precision
        core = ov.Core()
        model = self._read(ov, path)
        if path.suffix == ".onnx":
            _refuse_quantized(model, path)
        if precision == "bf16":
            capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            if "BF16" not in capabilities:
                raise InvalidInputError(
                    f"precision='bf16' needs a CPU with BF16 (AVX512-BF16 or AMX); this one offers {capabilities}. "
                    "Use precision='f32'."
                )
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_PRECISION_HINT": precision,
        }
        try:
            self._compiled = core.compile_model(model, "CPU", config)
            self._request = self._compiled.create_infer_request()
        except Exception as exc:  # OpenVINO raises plain RuntimeErrors with multi-line C++ context
            raise CorruptModelError(
                f"OpenVINO cannot compile {str(path)!r}: {openvino_reason(exc)}. Re-run `prepare`."
            ) from exc
        self._lock = threading.Lock()
        parameters = {_name(port): port for port in self._compiled.inputs}
        self.input_names = tuple(parameters)
        self._dtypes = {name: np.dtype(port.get_element_type().to_dtype()) for name, port in parameters.items()}
        outputs = {_name(port): port for port in self._compiled.outputs}
        self.output_name = next((name for name in TOKEN_OUTPUTS if name in outputs), next(iter(outputs)))
        self._output = outputs[self.output_name]
        width = outputs[self.output_name].get_partial_shape()
        last = width[width.rank.get_length() - 1] if width.rank.is_static and width.rank.get_length() else None
        self.output_width: int | None = last.get_length() if last is not None and last.is_static else None
        self.vocab_size = _vocab_size(model)
        del model
        release_freed_memory()
        if "input_ids" not in self.input_names:
            raise CorruptModelError(
                f"{str(path)!r} takes inputs {list(self.input_names)}, not 'input_ids': "
                "it is not a transformer exported for feature extraction."
            )
        self._warm_up()

    @staticmethod
    def _read(ov: Any, path: Path) -> Any:
        """The ``ov.Model`` of ``path``, read by its own frontend (probing others makes the TF one print to stderr)."""
        framework = "ir" if path.suffix == ".xml" else "onnx"
        if framework == "ir" and not weights_path(path).is_file():
            raise ModelNotFoundError(f"OpenVINO weights {str(weights_path(path))!r} (beside {path.name}) are missing.")
        try:
            frontend = ov.frontend.FrontEndManager().load_by_framework(framework)
            return frontend.convert(frontend.load(str(path)))
        except Exception as exc:
            reason = openvino_reason(exc)
            if framework == "onnx" and any(op in reason for op in _ORT_QUANTIZED_OPS):
                raise _int8_error(path) from exc
            if "No conversion rule found" in reason:
                raise UnsupportedModelError(
                    f"OpenVINO {ov.__version__} cannot run {str(path)!r}: {reason}. Use runtime='onnxruntime'."
                ) from exc
            what = f"{str(path)!r} (weights {weights_path(path).name})" if framework == "ir" else repr(str(path))
            raise CorruptModelError(
                f"OpenVINO cannot read {what}: {reason}. The file is truncated, corrupted or not an "
                f"{'OpenVINO IR' if framework == 'ir' else 'ONNX'} model; re-run `prepare`."
            ) from exc

    def _warm_up(self) -> None:
        """One tiny batch at load, so the first real call does not pay OpenVINO's first-inference set-up."""
        ids = np.ones((1, 2), dtype=np.int64)
        try:
            self.run({"input_ids": ids, "attention_mask": np.ones_like(ids)})
        except InferenceError as exc:
            raise CorruptModelError(f"OpenVINO compiled {str(self.path)!r} but cannot run it: {exc}") from exc

    def _feeds(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph's inputs, checked: OpenVINO itself accepts wrong dtypes, shapes and ids without a word."""
        ids = features.get("input_ids")
        if not isinstance(ids, np.ndarray) or ids.ndim != 2:
            shape = getattr(ids, "shape", type(ids).__name__)
            raise InvalidInputError(f"input_ids must be a 2-d int64 array (batch, tokens), got {shape}.")
        feeds = model_feeds(self.input_names, features)
        for name, value in feeds.items():
            value = np.asarray(value)
            if value.dtype != self._dtypes[name]:
                raise InvalidInputError(
                    f"{name} has dtype {value.dtype}, but {self.path.name} takes {self._dtypes[name]} "
                    f"(batch of shape {ids.shape})."
                )
            if value.shape != ids.shape:
                raise InvalidInputError(
                    f"{name} has shape {value.shape}, but input_ids has {ids.shape}: every input of a batch is "
                    "(batch, tokens)."
                )
        if self.vocab_size is not None and ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            bad = int(ids.max()) if int(ids.max()) >= self.vocab_size else int(ids.min())
            raise InvalidInputError(
                f"input_ids holds token id {bad}, outside this model's vocabulary 0..{self.vocab_size - 1} "
                f"(batch of shape {ids.shape}): the tokenizer belongs to another model."
            )
        return feeds

    def run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run one batch and return the token embeddings ``(batch, seq, hidden)`` as float32."""
        feeds = self._feeds(features)
        try:
            with self._lock:  # one InferRequest: concurrent callers take turns, as on one ORT session
                results = self._request.infer(feeds, share_inputs=False, share_outputs=False)
                output = results[self._output]
        except Exception as exc:
            raise InferenceError(
                f"OpenVINO failed on a batch of shape {feeds['input_ids'].shape}: {openvino_reason(exc)}"
            ) from exc
        return np.asarray(output, dtype=np.float32)


def _name(port: Any) -> str:
    """A port's tensor name (the ONNX name the graph was exported with)."""
    return str(port.get_any_name()) if port.get_names() else str(port.get_node().get_friendly_name())


def _refuse_quantized(model: Any, path: Path) -> None:
    """Refuse an ONNX Runtime INT8 file: OpenVINO runs its MatMulIntegerToFloat ops silently wrong."""
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        quantized = kind == "Constant" and op.get_element_type().get_type_name() in _QUANTIZED_TYPES
        if quantized or kind in _QUANTIZE_OPS:
            raise _int8_error(path)


def _int8_error(path: Path) -> InvalidInputError:
    return InvalidInputError(
        f"{str(path)!r} is an ONNX Runtime INT8 file, which OpenVINO runs silently wrong (cosine ~0.6 vs "
        "PyTorch) or not at all. With runtime='openvino' load openvino/openvino_model.xml or the FP32 "
        "onnx/model.onnx; run INT8 files with runtime='onnxruntime'."
    )


def _vocab_size(model: Any) -> int | None:
    """Rows of the embedding table ``input_ids`` indexes (through Converts), when the graph shows it."""
    parameter = next((p for p in model.get_parameters() if "input_ids" in p.output(0).get_names()), None)
    if parameter is None:
        return None
    frontier = [parameter]
    for _ in range(4):  # Parameter -> (Convert ->) Gather(table, ids)
        names = {node.get_friendly_name() for node in frontier}
        consumers = [target.get_node() for node in frontier for target in node.output(0).get_target_inputs()]
        for node in consumers:
            indices = node.input(1).get_source_output().get_node() if node.get_input_size() > 1 else None
            if node.get_type_name() == "Gather" and indices is not None and indices.get_friendly_name() in names:
                table = node.input(0).get_partial_shape()
                if table.rank.is_static and table.rank.get_length() == 2 and table[0].is_static:
                    return int(table[0].get_length())
        frontier = [node for node in consumers if node.get_type_name() == "Convert"]
    return None
