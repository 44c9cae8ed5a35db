"""``compare_colbert``'s ranking figures on hand-made token vectors (no PyLate needed)."""

from __future__ import annotations

import numpy as np
import pytest

from fastembed_adapter.prepare.colbert import compare_colbert


def _doc(score: float) -> np.ndarray:
    """One token whose dot product with the query token ``e0`` is ``score``."""
    return np.array([[score, np.sqrt(1 - score**2), 0.0, 0.0]], dtype=np.float32)


QUERY = [np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)]
SCORES = [0.9, 0.8, 0.7, 0.69, *np.linspace(0.0, 0.3, 36).tolist()]  # enough pairs for a p95


def test_a_swap_at_the_boundary_is_a_near_tie_miss():
    reference = (QUERY, [_doc(s) for s in SCORES])
    moved = list(SCORES)
    moved[3] = 0.71  # document 3 overtakes document 2 (0.70): one miss, 0.01 inside the top-3 boundary
    quality = compare_colbert(reference, (QUERY, [_doc(s) for s in moved]), k=3)
    assert quality.topk_agreement == pytest.approx(2 / 3)
    assert quality.topk_misses == 1 and quality.near_tie_misses == 1
    assert quality.boundary_gap_median == pytest.approx(0.01, abs=1e-6)
    errors = np.zeros(len(SCORES))
    errors[3] = 0.02
    assert quality.score_error_p95 == pytest.approx(np.percentile(errors, 95), abs=1e-6)


def test_a_clear_miss_is_not_a_near_tie():
    reference = (QUERY, [_doc(s) for s in SCORES])
    moved = list(SCORES)
    moved[0] = 0.05  # the best document falls to the bottom: far outside any score error
    quality = compare_colbert(reference, (QUERY, [_doc(s) for s in moved]), k=3)
    assert quality.topk_misses == 1 and quality.near_tie_misses == 0
    assert quality.token_counts_equal and quality.min_token_cosine < 0.99


def test_identical_vectors_have_no_misses():
    reference = (QUERY, [_doc(s) for s in SCORES])
    quality = compare_colbert(reference, reference, k=3)
    assert quality.topk_agreement == 1.0 and quality.topk_misses == 0 and quality.score_error_p95 == 0.0
    assert quality.min_token_cosine == pytest.approx(1.0)
