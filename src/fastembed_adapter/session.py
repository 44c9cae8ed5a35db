"""The only place an ONNX Runtime session is built or run (ORT errors translated here), and where a runtime is chosen.

``Session`` is what the encoders drive: ``OnnxSession`` here, or ``openvino_session.OpenVinoSession``
(extra ``openvino``, imported only when chosen). ``open_session`` is the one place that picks between them.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import onnxruntime as ort

from .cpu import available_cpus, detect_target
from .errors import CorruptModelError, InferenceError, InvalidInputError, ModelNotFoundError

if TYPE_CHECKING:
    from .layout import Manifest

T = TypeVar("T")

__all__ = [
    "DISABLED_OPTIMIZERS",
    "TOKEN_OUTPUTS",
    "OnnxSession",
    "Runtime",
    "Session",
    "load_beside",
    "model_feeds",
    "open_session",
    "output_runner",
    "release_freed_memory",
    "resolve_runtime",
    "runtime_arguments",
]

# ORT's fusion of a residual Add + LayerNormalization into SkipLayerNormalization: its CPU kernel is slower
# than the two ops it replaces (the figures are in the CHANGELOG; tests/test_quantize.py pins the setting),
# so `prepare` leaves them apart and the session does not fuse them back. Files that already hold
# SkipLayerNormalization keep it.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# Output names that carry per-token hidden states, most specific first.
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
# ORT's own log (written straight to stderr, in red, before the exception) stays off at every severity
# below fatal: each error it reports reaches the caller as our exception, translated below.
_ORT_LOG_FATAL_ONLY = 4


class Runtime(str, Enum):
    """The engine that runs the transformer graph; ``AUTO`` follows the manifest's measured winner."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: object) -> Runtime:
        """``value`` as a ``Runtime`` (None: ONNX Runtime); anything else raises ``InvalidInputError``."""
        if value is None:
            return cls.ONNXRUNTIME
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(runtime.value) for runtime in cls)
            raise InvalidInputError(f"Unknown runtime {value!r}. Valid runtimes: {valid}.") from None


class Session(Protocol):
    """What an encoder needs of a runtime session: its inputs, its token output, and ``run``."""

    path: Path
    threads: int
    input_names: tuple[str, ...]
    output_name: str
    output_width: int | None

    def run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run one batch and return the token embeddings ``(batch, seq, hidden)`` as float32."""
        ...


def open_session(
    path: Path,
    runtime: Runtime = Runtime.ONNXRUNTIME,
    threads: int | None = None,
    spinning: bool = True,
    precision: str = "f32",
) -> Session:
    """The session of ``path`` on ``runtime``: the one place a runtime is picked.

    ``spinning`` applies to ONNX Runtime only, ``precision`` (OpenVINO's ``INFERENCE_PRECISION_HINT``,
    ``"f32"`` or ``"bf16"``) to OpenVINO only; ``runtime`` must be resolved (not ``AUTO``).
    """
    if runtime is Runtime.OPENVINO:
        from .openvino_session import OpenVinoSession

        return OpenVinoSession(path, threads, precision)
    if runtime is not Runtime.ONNXRUNTIME:
        raise InvalidInputError(f"open_session needs a resolved runtime, got {runtime.value!r}.")
    if precision != "f32":
        raise InvalidInputError(f"precision={precision!r} applies to runtime='openvino'; ONNX Runtime runs the file.")
    return OnnxSession(path, threads, spinning)


def resolve_runtime(runtime: Runtime, manifest: Manifest | None, file_name: str | None) -> Runtime:
    """``AUTO`` made concrete: OpenVINO where the manifest records it measured fastest on this CPU, else ONNX Runtime.

    Only without an explicit ``file_name`` (an INT8 ONNX file must stay on ONNX Runtime) and only when
    ``openvino`` is importable. ``prepare`` records the winner of its quick benchmark, keyed by the ISA it ran on.
    """
    if runtime is not Runtime.AUTO:
        return runtime
    target = detect_target()
    winner = manifest.fastest_runtime.get(target.value) if manifest is not None and target is not None else None
    if winner == Runtime.OPENVINO.value and file_name is None and _importable("openvino"):
        return Runtime.OPENVINO
    return Runtime.ONNXRUNTIME


def runtime_arguments(
    runtime: str | None, backend: str, model_kwargs: Mapping[str, Any] | None
) -> tuple[Runtime, dict[str, Any], str]:
    """The runtime ``runtime``/``backend`` ask for, ``model_kwargs`` without ``ov_config``, and OpenVINO's precision.

    ``backend="openvino"`` is sentence-transformers' name for ``runtime="openvino"``; ``backend="torch"``
    and a contradicting pair raise. ``ov_config`` may only set ``INFERENCE_PRECISION_HINT``.
    """
    if backend not in ("onnx", "openvino"):
        raise InvalidInputError(
            f"backend={backend!r}: OnnxSentenceEncoder runs the 'onnx' backend on ONNX Runtime or OpenVINO "
            "(backend='openvino'), never torch; for 'torch' use sentence_transformers.SentenceTransformer."
        )
    chosen = Runtime.parse(runtime if runtime is not None else ("openvino" if backend == "openvino" else None))
    if backend == "openvino" and chosen is not Runtime.OPENVINO:
        raise InvalidInputError(f"backend='openvino' and runtime={runtime!r} disagree; pass one of them.")
    kwargs = dict(model_kwargs or {})
    ov_config = kwargs.pop("ov_config", None)
    if ov_config is None:
        return chosen, kwargs, "f32"
    if chosen is not Runtime.OPENVINO:
        raise InvalidInputError("model_kwargs['ov_config'] configures OpenVINO: pass it with runtime='openvino'.")
    if not isinstance(ov_config, Mapping) or set(ov_config) - {"INFERENCE_PRECISION_HINT"}:
        raise InvalidInputError(
            f"model_kwargs['ov_config']={ov_config!r:.120}: only INFERENCE_PRECISION_HINT ('f32' or 'bf16') can be "
            "set; threads come from threads=, and the other OpenVINO settings are fixed (LATENCY, one stream)."
        )
    return chosen, kwargs, str(ov_config.get("INFERENCE_PRECISION_HINT", "f32")).lower()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # sys.modules[module] is None
        return False


class OnnxSession:
    """A CPU ``InferenceSession`` fed only the inputs its graph declares."""

    def __init__(self, path: Path, threads: int | None = None, spinning: bool = True) -> None:
        """Build the session for ``path`` with ``threads`` intra-op threads (default: usable CPUs).

        ``spinning=False`` stops idle ORT worker threads from busy-waiting between runs: slightly
        slower single calls, but no CPU burnt between requests (throttled containers, servers).
        """
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InvalidInputError(f"threads must be a positive int or None, got {threads!r}.")
        if not path.is_file():
            raise ModelNotFoundError(f"ONNX file {str(path)!r} does not exist.")
        self.path = path
        self.threads = threads or available_cpus()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = _ORT_LOG_FATAL_ONLY
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_OPTIMIZERS
            )
        except Exception as exc:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, ...)
            raise CorruptModelError(
                f"ONNX Runtime cannot load {str(path)!r}: {str(exc).strip().splitlines()[0][:300]}. "
                "The file is truncated, corrupted or not an ONNX model; re-run `prepare`."
            ) from exc
        release_freed_memory()
        self.input_names = tuple(node.name for node in self._session.get_inputs())
        outputs = {node.name: node for node in self._session.get_outputs()}
        self.output_name = next((name for name in TOKEN_OUTPUTS if name in outputs), next(iter(outputs)))
        shape = outputs[self.output_name].shape
        # The width of each token vector when the graph declares it (a symbolic or missing dim: None).
        self.output_width: int | None = shape[-1] if shape and isinstance(shape[-1], int) else None
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = _ORT_LOG_FATAL_ONLY
        if "input_ids" not in self.input_names:
            raise CorruptModelError(
                f"{str(path)!r} takes inputs {list(self.input_names)}, not 'input_ids': "
                "it is not a transformer exported for feature extraction."
            )

    def run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run one batch and return the token embeddings ``(batch, seq, hidden)`` as float32."""
        feeds = model_feeds(self.input_names, features)
        try:
            (output,) = self._session.run([self.output_name], feeds, self._run_options)
        except Exception as exc:
            raise InferenceError(
                f"ONNX Runtime failed on a batch of shape {features['input_ids'].shape}: "
                f"{str(exc).strip().splitlines()[0][:300]}"
            ) from exc
        return np.asarray(output, dtype=np.float32)


def load_beside(
    root: Path,
    file_name: str,
    threads: int | None,
    spinning: bool,
    manifest: Manifest | None,
    build: Callable[[], T],
    runtime: Runtime = Runtime.ONNXRUNTIME,
    precision: str = "f32",
) -> tuple[Session, T]:
    """Build the session of ``root/file_name`` and check the manifest in worker threads while ``build()`` runs here.

    The session build releases the GIL, so a cold start overlaps it with the tokenizer and metrics
    set-up ``build`` does. A manifest mismatch explains a failed load better than the runtime
    does, so it is raised first whatever else failed.
    """
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fea-load") as workers:
        session = workers.submit(open_session, root / file_name, runtime, threads, spinning, precision)
        check = workers.submit(manifest.verify, root, file_name) if manifest is not None else None
        try:
            built = build()
            result = session.result()
        except Exception:
            if check is not None:
                check.result()  # a manifest mismatch names the damaged file: raise that first
            raise
        if check is not None:
            check.result()
    return result, built


def output_runner(
    model: bytes, outputs: Sequence[str], threads: int | None = None
) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]:
    """A function: tokenizer features → the values of ``outputs`` in the serialized ``model`` (prepare's calibration).

    Unlike ``OnnxSession`` it keeps every ORT optimizer and, with ``threads`` None, ORT's own thread
    count, so the values are those the calibrated INT8 files were always computed from.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.log_severity_level = _ORT_LOG_FATAL_ONLY
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, ...)
        raise CorruptModelError(
            f"ONNX Runtime cannot load the graph: {str(exc).strip().splitlines()[0][:300]}."
        ) from exc
    input_names = [node.name for node in session.get_inputs()]
    names = list(outputs)

    def run(features: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(session.run(names, model_feeds(input_names, features)))
        except Exception as exc:
            raise InferenceError(
                f"ONNX Runtime failed on a batch of shape {features['input_ids'].shape}: "
                f"{str(exc).strip().splitlines()[0][:300]}"
            ) from exc

    return run


def _default_input(name: str, input_ids: np.ndarray) -> np.ndarray:
    """What the PyTorch model uses when an input is not passed, as sentence-transformers calls it.

    ``token_type_ids`` are zeros; decoder ``position_ids`` are ``arange(seq)`` for every row
    (HF's ``cache_position`` default, which counts left padding too).
    """
    if name == "token_type_ids":
        return np.zeros_like(input_ids)
    if name == "position_ids":
        return np.ascontiguousarray(np.broadcast_to(np.arange(input_ids.shape[1], dtype=np.int64), input_ids.shape))
    raise InferenceError(f"The model needs input {name!r}, which the tokenizer does not produce.")


def model_feeds(input_names: Sequence[str], features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's inputs from tokenizer ``features``, filling the ones the tokenizer does not give."""
    return {
        name: value if (value := features.get(name)) is not None else _default_input(name, features["input_ids"])
        for name in input_names
    }


def release_freed_memory() -> None:
    """Hand the heap freed after a model load (the parsed protobuf copy) back to the OS.

    glibc keeps freed small-block heap mapped; ``malloc_trim`` returns it, ~3 MB of resident
    memory for all-MiniLM-L6-v2. A no-op where there is no glibc (macOS, musl, Windows).
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
