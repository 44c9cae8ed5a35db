"""Similarity functions in numpy, with sentence-transformers' names and formulas.

``cosine``, ``dot``, ``euclidean`` (negative L2 distance) and ``manhattan`` (negative L1
distance), as a matrix (every row of ``a`` against every row of ``b``; 1-D inputs count as one
row) or pairwise (row ``i`` of ``a`` against row ``i`` of ``b``). Results are float32 numpy
arrays where sentence-transformers returns torch tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .modules import normalize

__all__ = ["SUPPORTED_SIMILARITY_FN_NAMES", "SimilarityFunction", "pairwise_similarity_fn", "similarity_fn"]


Similarity = Callable[[Any, Any], np.ndarray]


class SimilarityFunction(str, Enum):
    """The similarity functions sentence-transformers models declare in their config."""

    COSINE = "cosine"
    DOT = "dot"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"

    @classmethod
    def parse(cls, value: str | Enum) -> SimilarityFunction:
        """The member for a name or an enum member (ours or sentence-transformers' ``SimilarityFunction``).

        Only the names sentence-transformers 6 accepts as ``similarity_fn_name``: ``"dot_product"``
        (the name of ST's enum member whose value is ``"dot"``) is rejected as ST rejects it.
        """
        if isinstance(value, SimilarityFunction):
            return value
        name = value.value if isinstance(value, Enum) else value
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(member.value for member in cls)
            hint = " Use 'dot' for the dot product." if name == "dot_product" else ""
            raise InvalidInputError(f"Unknown similarity function {name!r}. Valid: {valid}.{hint}") from None


# The names ``SentenceTransformer.SUPPORTED_SIMILARITY_FN_NAMES`` lists (single-vector similarities).
SUPPORTED_SIMILARITY_FN_NAMES: tuple[str, ...] = tuple(member.value for member in SimilarityFunction)


def _matrix(x: Any) -> np.ndarray:
    array = np.asarray(x, dtype=np.float32)
    return array[None, :] if array.ndim == 1 else array


def _cdist(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    diff = np.abs(a[:, None, :] - b[None, :, :])
    result: np.ndarray = diff.sum(-1) if p == 1 else np.sqrt((diff * diff).sum(-1))
    return result


_MATRIX: dict[SimilarityFunction, Similarity] = {
    SimilarityFunction.COSINE: lambda a, b: normalize(_matrix(a)) @ normalize(_matrix(b)).T,
    SimilarityFunction.DOT: lambda a, b: _matrix(a) @ _matrix(b).T,
    SimilarityFunction.EUCLIDEAN: lambda a, b: -_cdist(_matrix(a), _matrix(b), 2),
    SimilarityFunction.MANHATTAN: lambda a, b: -_cdist(_matrix(a), _matrix(b), 1),
}


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)


_PAIRWISE: dict[SimilarityFunction, Similarity] = {
    SimilarityFunction.COSINE: lambda a, b: np.sum(np.multiply(*map(normalize, _pair(a, b))), axis=-1),
    SimilarityFunction.DOT: lambda a, b: np.sum(np.multiply(*_pair(a, b)), axis=-1),
    SimilarityFunction.EUCLIDEAN: lambda a, b: -np.sqrt(np.sum(np.subtract(*_pair(a, b)) ** 2, axis=-1)),
    SimilarityFunction.MANHATTAN: lambda a, b: -np.sum(np.abs(np.subtract(*_pair(a, b))), axis=-1),
}


def similarity_fn(name: str | SimilarityFunction) -> Similarity:
    """The matrix similarity function called ``name``."""
    return _MATRIX[SimilarityFunction.parse(name)]


def pairwise_similarity_fn(name: str | SimilarityFunction) -> Similarity:
    """The pairwise similarity function called ``name``."""
    return _PAIRWISE[SimilarityFunction.parse(name)]
