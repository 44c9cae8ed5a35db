"""Quality of candidate embeddings against the PyTorch reference: cosines, max error, top-k agreement."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..modules import normalize

__all__ = ["INT8_TARGET", "Quality", "QualityTarget", "compare", "topk_agreement"]


@dataclass(frozen=True)
class Quality:
    """Per-text agreement of one model file with the reference, over one text set."""

    min_cosine: float
    mean_cosine: float
    max_abs_error: float
    topk_agreement: float
    k: int
    texts: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return asdict(self)


@dataclass(frozen=True)
class QualityTarget:
    """A gate: every figure must be at least this."""

    min_cosine: float
    mean_cosine: float = 0.0
    topk_agreement: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """JSON-ready copy."""
        return asdict(self)

    @classmethod
    def parse(cls, spec: str, base: QualityTarget | None = None) -> QualityTarget:
        """Parse ``"min=0.99,mean=0.997,top10=0.95"``: any subset, in any order.

        Args:
            spec: comma-separated ``key=value`` parts; keys ``min``, ``mean``, ``top10`` (alias ``topk``).
            base: the values of the parts ``spec`` does not name (default: ``INT8_TARGET``), so
                ``mean=0.999`` alone tightens the mean gate and keeps the min and top-10 gates.

        Raises:
            ValueError: an unknown or repeated key, a part that is not ``key=number``, or a value
                outside (0, 1] (every figure is a cosine or an agreement fraction).
        """
        keys = {"min": "min_cosine", "mean": "mean_cosine", "top10": "topk_agreement", "topk": "topk_agreement"}
        values = (base or INT8_TARGET).as_dict()
        named: set[str] = set()
        for part in filter(None, (item.strip() for item in spec.split(","))):
            name, equals, number = (piece.strip() for piece in part.partition("="))
            where = f" in {spec!r}" if part != spec.strip() else ""
            if name not in keys:
                raise ValueError(f"Unknown quality key {name!r} in {spec!r}; use min=, mean=, top10=.")
            if not equals or not number:
                raise ValueError(f"Quality part {part!r}{where} has no value; write it as {name}=0.99.")
            attr = keys[name]
            if attr in named:
                raise ValueError(
                    f"Quality key {name!r} is given twice in {spec!r} (top10 and topk are one key); name each once."
                )
            try:
                value = float(number)
            except ValueError:
                raise ValueError(f"Quality part {part!r}{where} is not a number; write it as {name}=0.99.") from None
            if not 0.0 < value <= 1.0:  # also rejects nan
                raise ValueError(
                    f"Quality part {part!r}{where} is out of range: cosines and agreement are in (0, 1], "
                    f"e.g. {name}=0.99."
                )
            named.add(attr)
            values[attr] = value
        return cls(**values)

    def failures(self, quality: Quality) -> list[str]:
        """Human-readable reasons ``quality`` misses this target (empty when it passes)."""
        checks = [
            ("min cosine", quality.min_cosine, self.min_cosine),
            ("mean cosine", quality.mean_cosine, self.mean_cosine),
            (f"top-{quality.k} agreement", quality.topk_agreement, self.topk_agreement),
        ]
        return [f"{name} {value:.4f} < {limit}" for name, value, limit in checks if value < limit]


# The INT8 gate ``prepare`` applies when it is not told otherwise (``--quality-target`` parts it omits).
INT8_TARGET = QualityTarget(min_cosine=0.99, mean_cosine=0.997, topk_agreement=0.95)


def topk_agreement(reference_scores: np.ndarray, candidate_scores: np.ndarray, k: int) -> float:
    """Mean share of each row's ``k`` best-scoring columns under the reference that the candidate also ranks top ``k``.

    The one top-k agreement of the project; the callers differ only in the score matrices they pass:
    ``compare`` (``prepare``'s gate) scores every text against every *other* text of the same set
    (self-similarity masked), the benchmark's ``stats.quality`` scores queries against a separate
    corpus. Ties keep the lower column index (stable sort), so the figure is deterministic.
    """
    if reference_scores.shape != candidate_scores.shape:
        raise ValueError(f"Shape mismatch: reference {reference_scores.shape} vs candidate {candidate_scores.shape}.")
    ref_top = np.argsort(-reference_scores, axis=1, kind="stable")[:, :k]
    cand_top = np.argsort(-candidate_scores, axis=1, kind="stable")[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref_top.tolist(), cand_top.tolist(), strict=True)]
    return float(np.mean(overlap))


def _neighbour_scores(unit: np.ndarray) -> np.ndarray:
    """Cosine of every text to every other text of the set; a text is never its own neighbour."""
    sims: np.ndarray = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return sims


def compare(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> Quality:
    """Compare row by row; top-k agreement is over each text's k nearest neighbours among the other texts."""
    if reference.shape != candidate.shape:
        raise ValueError(f"Shape mismatch: reference {reference.shape} vs candidate {candidate.shape}.")
    ref, cand = normalize(reference, np.float64), normalize(candidate, np.float64)
    cosines = np.sum(ref * cand, axis=1)
    k = max(1, min(k, len(ref) - 1))
    return Quality(
        min_cosine=float(cosines.min()),
        mean_cosine=float(cosines.mean()),
        max_abs_error=float(np.abs(reference.astype(np.float64) - candidate).max()),
        topk_agreement=topk_agreement(_neighbour_scores(ref), _neighbour_scores(cand), k),
        k=k,
        texts=len(ref),
    )
