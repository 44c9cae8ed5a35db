"""Top-k agreement, the one definition behind ``prepare``'s gate and the benchmark's quality column."""

from __future__ import annotations

import numpy as np
import pytest

from fastembed_adapter.benchmark.stats import quality
from fastembed_adapter.prepare.validate import compare, topk_agreement


def _circle(*degrees: float) -> np.ndarray:
    angles = np.radians(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _brute_force(reference: np.ndarray, candidate: np.ndarray, k: int, skip_self: bool) -> float:
    """Row by row in plain Python: the k best columns (ties: lower index first), minus the row's own column."""

    def top(row: np.ndarray, i: int) -> set[int]:
        columns = [j for j in range(len(row)) if not (skip_self and j == i)]
        return set(sorted(columns, key=lambda j: (-row[j], j))[:k])

    shares = [len(top(r, i) & top(c, i)) / k for i, (r, c) in enumerate(zip(reference, candidate, strict=True))]
    return sum(shares) / len(shares)


def test_topk_agreement_on_score_matrices():
    reference = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    candidate = np.array([[3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    assert topk_agreement(reference, candidate, 2) == 0.75  # row 0 keeps 1 of {0, 1}; row 1 keeps both
    assert topk_agreement(reference, candidate, 4) == 1.0
    ties = np.array([[1.0, 1.0, 0.0]])
    assert topk_agreement(ties, ties, 1) == 1.0  # ties keep the lower column: deterministic
    assert topk_agreement(ties, np.array([[0.5, 1.0, 0.0]]), 1) == 0.0
    with pytest.raises(ValueError, match="Shape mismatch"):
        topk_agreement(reference, candidate[:1], 2)


def test_compare_counts_neighbours_among_the_other_texts():
    reference = _circle(0, 10, 50, 180)  # nearest other text: 10°, 0°, 10°, 50°
    candidate = _circle(0, 10, 50, 45)  # the last moved next to 50°: 10°, 0°, 45°, 50°
    quality_ = compare(reference, candidate, k=1)
    assert quality_.topk_agreement == 0.75 and quality_.k == 1 and quality_.texts == 4
    assert quality_.min_cosine == pytest.approx(-np.sqrt(0.5))
    same = compare(reference, reference)
    assert same.k == 3 and same.topk_agreement == 1.0  # k capped at the other texts: a text is not its neighbour
    duplicates = np.ones((3, 2))
    assert compare(duplicates, duplicates, k=1).topk_agreement == 1.0


def test_both_uses_match_a_brute_force_definition():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((40, 8))
    candidate = reference + 0.3 * rng.standard_normal((40, 8))
    unit = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    unit_c = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    expected = _brute_force(unit @ unit.T, unit_c @ unit_c.T, 10, skip_self=True)
    got = compare(reference, candidate).topk_agreement
    assert got == pytest.approx(expected, abs=1e-15) and 0.3 < got < 1.0  # the noise moves some neighbours

    parts = {"queries": slice(0, 10), "short": slice(10, 30), "long": slice(30, 40)}
    ref = {name: reference[s] for name, s in parts.items()}
    cand = {name: candidate[s] for name, s in parts.items()}
    expected = _brute_force(unit[:10] @ unit[10:].T, unit_c[:10] @ unit_c[10:].T, 10, skip_self=False)
    got = quality(ref, cand)["top10_agreement"]
    assert got == pytest.approx(expected, abs=1e-15) and 0.3 < got < 1.0
