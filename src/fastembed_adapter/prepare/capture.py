"""Run a graph on texts with chosen intermediate tensors as outputs: calibration statistics, sensitivity."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx

from .graph import with_outputs

__all__ = ["CAPTURE_BATCH", "calibrate_absmax", "capture_runner", "text_batches"]

# Texts per run when every MatMul input is a graph output: all-mpnet-base-v2 exposes ~0.4 MB per
# token, so 8 passages of 384 tokens already hold ~1.4 GB of activations.
CAPTURE_BATCH = 8


def capture_runner(
    model: onnx.ModelProto, tensors: list[str], threads: int | None = None
) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]:
    """A function: tokenizer features → the values of ``tensors`` in a copy of ``model`` that outputs them."""
    from ..session import output_runner

    return output_runner(with_outputs(model, tensors).SerializeToString(), tensors, threads)


def text_batches(folder: Path, texts: list[str], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Tokenizer features of ``texts`` (longest first) in batches of ``size``, as the folder's tokenizer pads them.

    A ColBERT folder's texts are truncated to its ``document_length`` (its documents' inputs).
    """
    from ..colbert_layout import is_colbert_folder, read_colbert_layout
    from ..layout import read_layout
    from ..tokenization import TextTokenizer

    if is_colbert_folder(folder):
        colbert = read_colbert_layout(folder)
        tokenizer = TextTokenizer(folder, colbert.document_length, colbert.do_lower_case)
    else:
        layout = read_layout(folder)
        tokenizer = TextTokenizer(folder, layout.max_seq_length, layout.do_lower_case)
    ordered = sorted(texts, key=len, reverse=True)
    for start in range(0, len(ordered), size):
        yield tokenizer.encode(ordered[start : start + size])


def calibrate_absmax(
    source: Path | onnx.ModelProto, folder: Path, texts: list[str], tensors: list[str], threads: int | None = None
) -> dict[str, np.ndarray]:
    """Per-channel ``max|x|`` of each tensor over the real (unpadded) tokens of ``texts``."""
    model = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))
    run = capture_runner(model, tensors, threads)
    stats: dict[str, np.ndarray] = {}
    for features in text_batches(folder, texts, CAPTURE_BATCH):
        mask = features["attention_mask"].astype(bool)
        for name, value in zip(tensors, run(features), strict=True):
            rows = value[mask] if value.shape[:2] == mask.shape else value.reshape(-1, value.shape[-1])
            peak = np.abs(rows).max(axis=0)
            stats[name] = peak if name not in stats else np.maximum(stats[name], peak)
    return stats
