"""Pooling and embedding quantization in numpy, formula for formula as sentence-transformers.

``Pooling._forward_padded`` (ST 5.x) and ``quantize_embeddings`` are the spec; each branch
below names the torch expression it mirrors.
"""

from __future__ import annotations

import numpy as np

from .layout import PoolingConfig, PoolingMode

__all__ = ["PRECISIONS", "exclude_prompt", "pool", "quantize"]

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


def pool(config: PoolingConfig, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pool ``tokens`` (batch, seq, hidden) under ``mask`` (batch, seq) into (batch, dim) float32."""
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
            weights = mask_f * np.arange(1, tokens.shape[1] + 1, dtype=np.float32)[None, :]
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


def quantize(embeddings: np.ndarray, precision: str) -> np.ndarray:
    """Same result as ``sentence_transformers.quantize_embeddings(embeddings, precision)``.

    ``int8``/``uint8`` use per-dimension min/max ranges computed from ``embeddings`` themselves
    (ST's default when neither ``ranges`` nor ``calibration_embeddings`` is given): 256 buckets.
    ``binary``/``ubinary`` pack ``x > 0`` bits (``binary`` shifted by -128 into int8).
    """
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        ranges = np.vstack((np.min(embeddings, axis=0), np.max(embeddings, axis=0)))
        starts = ranges[0, :]
        steps = (ranges[1, :] - ranges[0, :]) / 255
        steps = np.where(steps == 0, 1, steps)
        q_vals: np.ndarray = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return q_vals.astype(np.uint8) if precision == "uint8" else (q_vals - 128).astype(np.int8)
    packed: np.ndarray = np.packbits(embeddings > 0, axis=-1).reshape(embeddings.shape[0], -1)
    return (packed - 128).astype(np.int8) if precision == "binary" else packed
