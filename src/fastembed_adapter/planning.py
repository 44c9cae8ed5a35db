"""Batch planning for ``encode()``: which texts are tokenized together, which share one ONNX call.

Pure functions over lengths (no tokenizer, no session), so every encoder plans the same way.
Texts go longest first by characters, as sentence-transformers sorts them, and are tokenized a
window at a time. Inside a window, batches are cut by token count (or kept in that order where the
batch shows in the result), each at most ``batch_size`` texts **and** at most ``max_tokens``
padded tokens, whatever ``batch_size`` says: memory is bounded by tokens per ONNX call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["MAX_BATCH_TOKENS", "WINDOW_TEXTS", "batches", "windows"]

# Texts tokenized per call of the Rust tokenizer: enough batches to regroup by token count, and a cap
# on the padded arrays held at once (2,048 x 512 tokens x 3 int64 arrays = 25 MB).
WINDOW_BATCHES = 16
WINDOW_TEXTS = 2048
# Padded tokens per ONNX call (batch rows x longest row): 32 texts of 512 tokens, sentence-transformers'
# default batch of full-length texts, is never split; a larger batch_size of long texts is.
MAX_BATCH_TOKENS = 32 * 512


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
    token_lengths: Sequence[int], batch_size: int, regroup: bool, max_tokens: int = MAX_BATCH_TOKENS
) -> list[np.ndarray]:
    """Positions (into ``token_lengths``) of each ONNX batch of one window.

    ``regroup``: longest first by tokens (little padding); otherwise in the given order, as
    sentence-transformers batches (where the batch shows in the result). A batch closes at
    ``batch_size`` rows or before its padded size (rows x longest row) would pass ``max_tokens``;
    a single row longer than ``max_tokens`` is a batch of its own.
    """
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
