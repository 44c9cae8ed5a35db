"""Quality of candidate embeddings against the PyTorch reference: cosines, max error, top-k agreement."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Quality", "QualityTarget", "compare"]


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
    def parse(cls, spec: str) -> QualityTarget:
        """Parse ``"min=0.99,mean=0.997,top10=0.95"`` (any subset; missing keys are 0)."""
        keys = {"min": "min_cosine", "mean": "mean_cosine", "top10": "topk_agreement", "topk": "topk_agreement"}
        values: dict[str, float] = {}
        for part in filter(None, (item.strip() for item in spec.split(","))):
            name, _, number = part.partition("=")
            if name.strip() not in keys:
                raise ValueError(f"Unknown quality key {name.strip()!r} in {spec!r}; use min=, mean=, top10=.")
            values[keys[name.strip()]] = float(number)
        return cls(
            min_cosine=values.get("min_cosine", 0.0),
            mean_cosine=values.get("mean_cosine", 0.0),
            topk_agreement=values.get("topk_agreement", 0.0),
        )

    def failures(self, quality: Quality) -> list[str]:
        """Human-readable reasons ``quality`` misses this target (empty when it passes)."""
        checks = [
            ("min cosine", quality.min_cosine, self.min_cosine),
            ("mean cosine", quality.mean_cosine, self.mean_cosine),
            (f"top-{quality.k} agreement", quality.topk_agreement, self.topk_agreement),
        ]
        return [f"{name} {value:.4f} < {limit}" for name, value, limit in checks if value < limit]


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    unit: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return unit


def _neighbours(unit: np.ndarray, k: int) -> np.ndarray:
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def compare(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> Quality:
    """Compare row by row; top-k agreement = mean overlap of each text's k nearest neighbours."""
    if reference.shape != candidate.shape:
        raise ValueError(f"Shape mismatch: reference {reference.shape} vs candidate {candidate.shape}.")
    ref, cand = _unit(reference), _unit(candidate)
    cosines = np.sum(ref * cand, axis=1)
    k = max(1, min(k, len(ref) - 1))
    ref_nn, cand_nn = _neighbours(ref, k), _neighbours(cand, k)
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref_nn.tolist(), cand_nn.tolist(), strict=True)]
    return Quality(
        min_cosine=float(cosines.min()),
        mean_cosine=float(cosines.mean()),
        max_abs_error=float(np.abs(reference.astype(np.float64) - candidate).max()),
        topk_agreement=float(np.mean(overlap)),
        k=k,
        texts=len(ref),
    )
