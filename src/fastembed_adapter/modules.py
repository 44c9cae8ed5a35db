"""Modules after pooling — ``Dense``, ``LayerNorm``, ``Normalize`` — in numpy, as sentence-transformers runs them.

Their weights are read from the module folder's ``model.safetensors`` with the ``safetensors``
library's numpy loader (no torch); its errors, and a missing or unexpected tensor, become
``CorruptModelError``/``UnsupportedModelError`` naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError

__all__ = [
    "ACTIVATIONS",
    "DenseModule",
    "LayerNormModule",
    "NormalizeModule",
    "PostModule",
    "normalize",
    "read_safetensors",
]

_NORM_EPS = 1e-12  # torch.nn.functional.normalize default eps

_DTYPES = ("F16", "F32", "F64")
_erf = np.vectorize(math.erf, otypes=[np.float64])

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.linear.Identity": lambda x: x,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0),
    "torch.nn.modules.activation.Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "torch.nn.modules.activation.GELU": lambda x: (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype),
}


def normalize(vectors: np.ndarray, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """L2-normalise rows: ``x / max(||x||, 1e-12)`` like ``torch.nn.functional.normalize``, in ``dtype``.

    float32 (the default) is what the model's ``Normalize`` module computes; quality measurements
    pass float64.
    """
    vectors = np.asarray(vectors, dtype=dtype)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    result: np.ndarray = vectors / np.maximum(norms, _NORM_EPS)
    return result


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as float32 numpy arrays (F16, F32, F64)."""
    from safetensors import SafetensorError, safe_open

    tensors, unsupported = {}, {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open is not a Mapping)
                dtype = handle.get_slice(name).get_dtype()
                if dtype in _DTYPES:
                    tensors[name] = handle.get_tensor(name).astype(np.float32)
                else:
                    unsupported[name] = dtype
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"Missing weights file {str(path)!r}.") from exc
    except PermissionError as exc:
        raise CorruptModelError(f"Cannot read {str(path)!r}: permission denied.") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptModelError(f"Cannot read {str(path)!r} as safetensors: {exc}") from exc
    if unsupported:
        raise UnsupportedModelError(
            f"{str(path)!r}: tensors {unsupported} have unsupported dtypes; supported: {', '.join(_DTYPES)}. "
            "Re-save the module in float32 (folders written by `prepare` are)."
        )
    return tensors


def _tensor(weights: Mapping[str, np.ndarray], name: str, folder: Path, ndim: int) -> np.ndarray:
    """``weights[name]`` with ``ndim`` dimensions, or a ``CorruptModelError`` naming the file."""
    tensor = weights.get(name)
    if tensor is None or tensor.ndim != ndim:
        found = {key: value.shape for key, value in weights.items()}
        raise CorruptModelError(
            f"{str(folder / 'model.safetensors')!r} has no {ndim}-d tensor {name!r} (found {found}): "
            "the module's weights are damaged or belong to another module."
        )
    return tensor


def _weights(folder: Path) -> dict[str, np.ndarray]:
    path = folder / "model.safetensors"
    if not path.exists() and (folder / "pytorch_model.bin").exists():
        raise UnsupportedModelError(
            f"{str(folder)!r} stores weights as pytorch_model.bin (a pickle); run `prepare`, which re-saves "
            "them as model.safetensors."
        )
    return read_safetensors(path)


@dataclass(frozen=True)
class DenseModule:
    """``activation(x @ weight.T + bias)``, like ST's ``Dense`` (an ``nn.Linear`` plus activation).

    With ``use_residual`` (sentence-transformers >= 6) the input is added back: ``x`` itself, or
    ``x @ residual.T`` when the widths differ.
    """

    weight: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(repr=False)
    activation: str
    use_residual: bool = False
    residual: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def load(cls, folder: Path, config: Mapping[str, Any]) -> DenseModule:
        """Read ``config.json`` values and the weights of one ``Dense`` module folder."""
        activation = str(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
        if activation not in ACTIVATIONS:
            raise UnsupportedModelError(
                f"Dense activation {activation!r} is not supported. Supported: {', '.join(ACTIVATIONS)}."
            )
        for key in ("module_input_name", "module_output_name"):
            if config.get(key) not in (None, "sentence_embedding"):
                raise UnsupportedModelError(f"Dense {key}={config[key]!r} is not supported (only sentence_embedding).")
        weights = _weights(folder)
        weight = _tensor(weights, "linear.weight", folder, 2)
        bias = _tensor(weights, "linear.bias", folder, 1) if "linear.bias" in weights else None
        use_residual = bool(config.get("use_residual", False))
        projected = use_residual and weight.shape[0] != weight.shape[1]
        residual = _tensor(weights, "residual.weight", folder, 2) if projected else None
        return cls(weight, bias, activation, use_residual, residual)

    @property
    def dimension(self) -> int:
        """Output size."""
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch ``(n, in_features)``."""
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        result: np.ndarray = ACTIVATIONS[self.activation](y).astype(np.float32, copy=False)
        if self.use_residual:
            result = result + (x if self.residual is None else x @ self.residual.T)
        return result


@dataclass(frozen=True)
class LayerNormModule:
    """``nn.LayerNorm(dimension)`` (eps 1e-5) over the sentence embedding."""

    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    eps: float = 1e-5

    @classmethod
    def load(cls, folder: Path) -> LayerNormModule:
        """Read the weights of one ``LayerNorm`` module folder."""
        weights = _weights(folder)
        return cls(weight=_tensor(weights, "norm.weight", folder, 1), bias=_tensor(weights, "norm.bias", folder, 1))

    @property
    def dimension(self) -> int:
        """Output size."""
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch ``(n, dimension)``."""
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        result: np.ndarray = ((x - mean) / np.sqrt(var + self.eps) * self.weight + self.bias).astype(np.float32)
        return result


@dataclass(frozen=True)
class NormalizeModule:
    """ST's ``Normalize``: L2 normalisation of the sentence embedding."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch ``(n, dimension)``."""
        return normalize(x)


PostModule = DenseModule | LayerNormModule | NormalizeModule
