"""Pooling and embedding quantization in numpy, formula for formula as sentence-transformers.

``Pooling._forward_padded`` and ``quantize_embeddings`` of sentence-transformers 6.x are the spec
(5.x differs in two places, noted where they are); each branch below names the torch expression
it mirrors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InvalidInputError
from .layout import PoolingConfig, PoolingMode

__all__ = ["PRECISIONS", "exclude_prompt", "pool", "quantize", "quantize_matrices"]

_MIN_MASK = 1e-9  # torch.clamp(sum_mask, min=1e-9)


def exclude_prompt(mask: np.ndarray, prompt_length: int) -> np.ndarray:
    """Zero the prompt positions of a copy of ``mask`` (after any left padding), as ``_exclude_prompt_from_mask``."""
    mask = mask.copy()
    pad_lengths = mask.argmax(axis=1)
    if pad_lengths.sum() == 0:
        mask[:, :prompt_length] = 0
    else:
        positions = np.arange(mask.shape[1])[None, :]
        mask[positions < (pad_lengths + prompt_length)[:, None]] = 0
    return mask


def pool(
    config: PoolingConfig, tokens: np.ndarray, mask: np.ndarray, original_mask: np.ndarray | None = None
) -> np.ndarray:
    """Pool ``tokens`` (batch, seq, hidden) under ``mask`` (batch, seq) into (batch, dim) float32.

    ``original_mask`` is the attention mask before :func:`exclude_prompt` (default: ``mask``);
    ``weightedmean`` counts its weights from each row's first real token of it.
    """
    mask_f = mask.astype(np.float32)
    outputs: list[np.ndarray] = []
    mean_sum: np.ndarray | None = None
    mean_count: np.ndarray | None = None
    rows = np.arange(tokens.shape[0])
    for mode in config.modes:
        if mode is PoolingMode.CLS:
            # argmax on the 0/1 mask = first real token (index 0 unless left padded)
            outputs.append(tokens[rows, mask.argmax(axis=1)])
        elif mode is PoolingMode.MAX:
            outputs.append(np.where(mask_f[:, :, None] == 0, -np.inf, tokens).max(axis=1).astype(np.float32))
        elif mode in (PoolingMode.MEAN, PoolingMode.MEAN_SQRT_LEN):
            if mean_sum is None or mean_count is None:
                mean_sum = np.einsum("bsh,bs->bh", tokens, mask_f)
                mean_count = np.maximum(mask_f.sum(axis=1, keepdims=True), _MIN_MASK)
            divisor = mean_count if mode is PoolingMode.MEAN else np.sqrt(mean_count)
            outputs.append(mean_sum / divisor)
        elif mode is PoolingMode.WEIGHTED_MEAN:
            # ST 6: weights = arange(1, seq + 1) - pad_lengths, so left padding does not shift them
            # (ST 5 weighted the absolute positions).
            lead = (mask if original_mask is None else original_mask).argmax(axis=1).astype(np.float32)
            weights = mask_f * (np.arange(1, tokens.shape[1] + 1, dtype=np.float32)[None, :] - lead[:, None])
            total = np.einsum("bsh,bs->bh", tokens, weights)
            outputs.append(total / np.maximum(weights.sum(axis=1, keepdims=True), _MIN_MASK))
        else:  # PoolingMode.LAST_TOKEN: last position whose mask is 1 (seq-1 when none is)
            flipped = mask[:, ::-1]
            found = flipped.max(axis=1)
            last = tokens.shape[1] - 1 - np.where(found == 0, tokens.shape[1] - 1, flipped.argmax(axis=1))
            outputs.append(tokens[rows, last] * mask_f[rows, last][:, None])
    pooled = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=-1)
    result: np.ndarray = np.ascontiguousarray(pooled, dtype=np.float32)
    return result


PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def _ranges(embeddings: np.ndarray, precision: str) -> np.ndarray:
    """Per-dimension (min, max) of ``embeddings``; one embedding has no range (ST 6 raises, ST 5 divided by 0)."""
    if embeddings.ndim == 1 or embeddings.shape[0] == 1:
        raise InvalidInputError(
            f"Cannot compute {precision} quantization ranges from a single embedding: precision={precision!r} "
            "buckets each dimension between its min and max over the embeddings of one call. Encode a batch of "
            "texts, or encode in float32 and call sentence_transformers.quantize_embeddings with `ranges` or "
            "`calibration_embeddings` from a representative set of embeddings."
        )
    ranges: np.ndarray = np.vstack((np.min(embeddings, axis=0), np.max(embeddings, axis=0)))
    return ranges.astype(np.float32, copy=False)


def quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Same result as ``sentence_transformers.quantize_embeddings(embeddings, precision)`` (ST 6.x).

    ``int8``/``uint8`` use per-dimension min/max ``ranges`` computed from ``embeddings`` themselves
    (ST's default when neither ``ranges`` nor ``calibration_embeddings`` is given): 256 buckets,
    floored and clipped; a single embedding raises ``InvalidInputError`` as ST 6 raises ``ValueError``.
    ``binary``/``ubinary`` pack ``x > 0`` bits along the last axis (``binary`` shifted by -128 into int8).
    """
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        ranges = _ranges(embeddings, precision) if ranges is None else ranges
        starts = ranges[0, :]
        steps = (ranges[1, :] - ranges[0, :]) / 255
        steps = np.where(steps == 0, 1, steps)
        q_vals: np.ndarray = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return q_vals.astype(np.uint8) if precision == "uint8" else (q_vals - 128).astype(np.int8)
    packed: np.ndarray = np.packbits(embeddings > 0, axis=-1)
    return (packed - 128).astype(np.int8) if precision == "binary" else packed


def quantize_matrices(matrices: Sequence[np.ndarray], precision: str) -> list[np.ndarray]:
    """``quantize_embeddings`` of a list of ``(tokens, dim)`` matrices, as ST 6 quantizes token embeddings.

    ``int8``/``uint8`` buckets are calibrated once on all rows of all matrices, so every matrix
    shares them; binary precisions pack each matrix's rows.
    """
    if not matrices:
        return []
    ranges = None
    if precision.endswith("int8"):
        ranges = _ranges(np.concatenate(matrices, axis=0), precision)
    return [quantize(np.asarray(matrix), precision, ranges) for matrix in matrices]
