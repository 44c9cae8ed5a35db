"""Batch planning: windows of texts tokenized together, and ONNX batches bounded by rows and padded tokens."""

from __future__ import annotations

import numpy as np
import pytest

from checks import assert_close_fp32
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.planning import MAX_BATCH_TOKENS, REGROUPED_BATCH_TOKENS, WINDOW_TEXTS, batches, windows
from tiny import FP32_FILE, TinySpec


def test_windows_longest_first_whole_batches():
    lengths = [3, 10, 1, 7]
    (only,) = list(windows(lengths, batch_size=2))
    assert only.tolist() == [1, 3, 0, 2]
    assert [len(w) for w in windows([1] * 100, batch_size=2)] == [32, 32, 32, 4]  # 16 batches of 2
    assert [len(w) for w in windows([1] * 5000, batch_size=10**9)] == [WINDOW_TEXTS, WINDOW_TEXTS, 904]
    assert [len(w) for w in windows([1] * 5000, batch_size=1000)] == [2000, 2000, 1000]  # whole batches


@pytest.mark.parametrize("regroup", [True, False])
def test_batches_cover_every_position_once(regroup):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 600, size=500).tolist()
    plan = batches(lengths, batch_size=32, regroup=regroup)
    flat = np.concatenate(plan).tolist()
    assert sorted(flat) == list(range(500))
    for batch in plan:
        assert 1 <= len(batch) <= 32
        bound = REGROUPED_BATCH_TOKENS if regroup else MAX_BATCH_TOKENS
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= bound
    if not regroup:
        assert flat == list(range(500))  # the given order: sentence-transformers' batches


def test_batches_by_tokens_and_the_bound():
    assert [b.tolist() for b in batches([5, 9, 7, 2], batch_size=2, regroup=True)] == [[1, 2], [0, 3]]
    assert [b.tolist() for b in batches([5, 9, 7, 2], batch_size=2, regroup=False)] == [[0, 1], [2, 3]]
    # 10 rows of 100 tokens with room for 250 padded tokens: batches of 2, whatever batch_size says
    assert [len(b) for b in batches([100] * 10, batch_size=10**9, regroup=True, max_tokens=250)] == [2] * 5
    assert [len(b) for b in batches([999, 1], batch_size=8, regroup=True, max_tokens=100)] == [1, 1]


def test_regrouped_batches_take_the_smaller_budget():
    """Regrouped rows go to ONNX in calls of at most REGROUPED_BATCH_TOKENS; kept batches stay as ST cuts them."""
    assert REGROUPED_BATCH_TOKENS < MAX_BATCH_TOKENS
    rows = REGROUPED_BATCH_TOKENS // 100
    assert [len(b) for b in batches([100] * 32, batch_size=32, regroup=True)] == [rows] * (32 // rows) + [32 % rows]
    assert [len(b) for b in batches([100] * 32, batch_size=32, regroup=False)] == [32]
    assert [len(b) for b in batches([512] * 40, batch_size=32, regroup=False)] == [32, 8]


def test_a_huge_batch_size_is_bounded_and_changes_nothing(tiny_model, monkeypatch):
    """``encode(texts, batch_size=10**9)`` used to make the whole input one ONNX batch (11.6 GB for 5,000 texts)."""
    _, folder = tiny_model(TinySpec("bert"))
    encoder = OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, cache_size=0)
    texts = [f"word {i} " * (1 + i % 40) for i in range(3000)]
    widths = []
    real = encoder.session.run

    def spy(features):
        widths.append(features["input_ids"].size)
        return real(features)

    monkeypatch.setattr(encoder.session, "run", spy)
    huge = encoder.encode(texts, batch_size=10**9)
    assert max(widths) <= REGROUPED_BATCH_TOKENS and len(widths) > 1  # rows regrouped: the smaller budget
    assert_close_fp32(huge, encoder.encode(texts, batch_size=32))
