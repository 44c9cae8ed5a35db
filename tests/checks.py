"""Tolerances and the assertions parity tests share (vs sentence-transformers computed live)."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

# Tiny random models have near-isotropic, small-magnitude outputs that INT8 perturbs much more
# than trained weights do; the real-model gate stays at 0.99 (test_real_minilm.py).
TINY_INT8_MIN_COSINE = 0.9
TINY_INT8_MIN_MEAN_COSINE = 0.95
TINY_INT8_MIN_TOPK = 0.5
REAL_INT8_MIN_COSINE = 0.99
REAL_INT8_MIN_MEAN_COSINE = 0.997
REAL_INT8_MIN_TOPK = 0.95
FP32_MAX_ABS = 1e-4
FP32_MIN_COSINE = 0.9999


def assert_close_fp32(ours: np.ndarray, ref: np.ndarray) -> None:
    """FP32 parity: same shape/dtype, max abs diff and row cosine within the named tolerances."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype
    if ours.size == 0:
        return
    assert np.abs(ours.astype(np.float64) - ref).max() <= FP32_MAX_ABS
    assert cosines(ours, ref).min() >= FP32_MIN_COSINE


# quantize_embeddings(int8/uint8) puts each dimension's own min/max exactly on a bucket edge, so an
# FP32 difference of one ulp can move a value into the neighbouring bucket (or flip a bit near 0).
FP32_PRECISION_MIN_EQUAL = 0.99


def assert_precision_close(got: np.ndarray, ref: np.ndarray, precision: str) -> None:
    """Quantized embeddings of FP32-equal inputs: same dtype/shape, at most one bucket (bit) apart, mostly equal."""
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if precision.endswith("binary"):
        diff = np.abs(np.unpackbits(got.view(np.uint8)).astype(int) - np.unpackbits(ref.view(np.uint8)))
    else:
        diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    assert np.mean(diff == 0) >= FP32_PRECISION_MIN_EQUAL


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two arrays of shape (n, d) or (d,)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    dot = (a * b).sum(axis=1)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return np.where((np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0), 1.0, dot / norms)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# The installed sentence-transformers major: where 5.x and 6.x differ we follow 6.x, and compare to the
# reference only where it has that behaviour (CI runs both stacks).
ST6 = int(version("sentence-transformers").split(".")[0]) >= 6


def st_dimension(st: Any) -> int:
    """``get_embedding_dimension`` (ST >= 5.7; the old name warns in ST 6, the new one is missing in 5.3)."""
    method = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(method())


def record_in_manifest(folder: Path, key: str, value: Any) -> None:
    """Set ``key`` of the folder's manifest (``fastembed_adapter.json``), as if ``prepare``'s benchmark wrote it."""
    path = folder / "fastembed_adapter.json"
    manifest = read_json(path)
    manifest[key] = value
    path.write_text(json.dumps(manifest), encoding="utf-8")


def name_winner(folder: Path, runtime: str) -> None:
    """Record ``runtime`` as measured fastest on this CPU in the folder's manifest (what ``auto`` follows)."""
    from fastembed_adapter.cpu import detect_target

    target = detect_target()
    assert target is not None
    record_in_manifest(folder, "fastest_runtime", {target.value: runtime})
