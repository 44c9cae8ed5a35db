"""Batch planning for ``encode()``: which texts are tokenized together, which share one ONNX call.

Pure functions over lengths (no tokenizer, no session), so every encoder plans the same way.
Texts go longest first by characters, as sentence-transformers sorts them, and are tokenized a
window at a time. Inside a window, batches are cut by token count (or kept in that order where the
batch shows in the result), each at most ``batch_size`` texts **and** at most a padded-token
budget, whatever ``batch_size`` says: memory is bounded by tokens per ONNX call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["COLBERT_BATCH_TOKENS", "MAX_BATCH_TOKENS", "REGROUPED_BATCH_TOKENS", "WINDOW_TEXTS", "batches", "windows"]

# Texts tokenized per call of the Rust tokenizer: enough batches to regroup by token count, and a cap
# on the padded arrays held at once (2,048 x 512 tokens x 3 int64 arrays = 25 MB).
WINDOW_BATCHES = 16
WINDOW_TEXTS = 2048
# Padded tokens per ONNX call (batch rows x longest row) where the batch shows in the result and is kept
# as sentence-transformers cuts it: 32 texts of 512 tokens, its default batch of full-length texts, is
# never split; a larger batch_size of long texts is.
MAX_BATCH_TOKENS = 32 * 512
# Padded tokens per ONNX call where rows are regrouped (a row's output does not depend on its batch).
# Smaller calls are faster on a CPU's caches and halve the peak memory. Measured on an AVX2 EPYC,
# 2 threads, MiniLM, 32 passages of 256 tokens (bench/op_profile.py): one call of 32 rows 2,089 ms FP32
# / 1,840 ms INT8, four of 8 rows 1,754 / 1,599 ms, eight of 4 rows 1,807 / 1,915 ms (the FP32 GEMMs
# gain most; the INT8 GEMMs lose below ~2,048 rows). Peak RSS of encode() on 1,000 short sentences
# and 96 such passages: MiniLM FP32 486 -> 240 MB, INT8 510 -> 224 MB; all-mpnet-base-v2 FP32 1,459 -> 690 MB.
REGROUPED_BATCH_TOKENS = 2048
# The same for ColBERT documents (at most 180 tokens): PyLate's MiniLM ColBERT, 128 documents, against
# 32 x 512: 1.24x FP32 / 1.18x INT8 documents/s at 1,024 (1.16x / 1.09x at 2,048), peak RSS 284 -> 207 MB.
COLBERT_BATCH_TOKENS = 1024


def windows(char_lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of the texts, longest first by characters, in windows tokenized together.

    A window holds whole batches of ``batch_size`` (up to ``WINDOW_BATCHES`` of them) and at most
    ``WINDOW_TEXTS`` texts, so a huge ``batch_size`` does not tokenize the whole input at once.
    """
    order = np.argsort([-length for length in char_lengths])
    if batch_size > WINDOW_TEXTS:
        size = WINDOW_TEXTS
    else:
        size = batch_size * max(1, min(WINDOW_BATCHES, WINDOW_TEXTS // batch_size))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def batches(
    token_lengths: Sequence[int], batch_size: int, regroup: bool, max_tokens: int | None = None
) -> list[np.ndarray]:
    """Positions (into ``token_lengths``) of each ONNX batch of one window.

    ``regroup``: longest first by tokens (little padding); otherwise in the given order, as
    sentence-transformers batches (where the batch shows in the result). A batch closes at
    ``batch_size`` rows or before its padded size (rows x longest row) would pass ``max_tokens``
    (default: ``REGROUPED_BATCH_TOKENS`` when regrouping, else ``MAX_BATCH_TOKENS``); a single row
    longer than ``max_tokens`` is a batch of its own.
    """
    if max_tokens is None:
        max_tokens = REGROUPED_BATCH_TOKENS if regroup else MAX_BATCH_TOKENS
    lengths = np.asarray(token_lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable") if regroup else np.arange(len(lengths))
    planned: list[np.ndarray] = []
    start, longest = 0, 0
    for position, index in enumerate(order):
        length = int(lengths[index])
        rows = position - start
        if rows and (rows == batch_size or (rows + 1) * max(longest, length) > max_tokens):
            planned.append(order[start:position])
            start, longest = position, 0
        longest = max(longest, length)
    if start < len(order):
        planned.append(order[start:])
    return planned
