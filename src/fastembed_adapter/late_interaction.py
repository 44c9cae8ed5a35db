"""Late-interaction scoring and token pooling in numpy, as PyLate computes them.

- :func:`colbert_scores`: PyLate's ``scores.colbert_scores`` — for each query and document, the sum
  over query tokens of the largest dot product with a document token. Lists of ragged arrays are
  zero-padded (a padded document token scores 0, exactly as in PyLate); masks multiply the scores.
- :func:`rerank`: ``pylate.rank.rerank`` — each query's candidate documents sorted by that score.
- :func:`pool_tokens`: ``ColBERT.pool_embeddings_hierarchical`` — Ward clustering of a document's
  token vectors (scipy, the ``colbert`` extra) down to ``1/pool_factor`` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from .errors import InvalidInputError, MissingExtraError

__all__ = ["RerankResult", "colbert_scores", "pad_tokens", "pool_tokens", "rerank"]


class RerankResult(TypedDict):
    """One ranked document: its id and MaxSim score (PyLate's ``RerankResult``)."""

    id: Any
    score: float


def pad_tokens(embeddings: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """``(n, tokens, dim)`` float32 from ``(tokens_i, dim)`` arrays, zero-padded (PyLate's ``pad_sequence``)."""
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 3:
        return embeddings.astype(np.float32, copy=False)
    arrays = [np.asarray(item, dtype=np.float32) for item in embeddings]
    if not arrays:
        raise InvalidInputError("Expected at least one (tokens, dim) array, got none.")
    for index, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != arrays[0].shape[1]:
            raise InvalidInputError(
                f"Embedding {index} has shape {array.shape}; every one must be (tokens, {arrays[0].shape[-1]})."
            )
    width = max(array.shape[0] for array in arrays)
    out = np.zeros((len(arrays), width, arrays[0].shape[1]), dtype=np.float32)
    for row, array in enumerate(arrays):
        out[row, : array.shape[0]] = array
    return out


def colbert_scores(
    queries_embeddings: Sequence[np.ndarray] | np.ndarray,
    documents_embeddings: Sequence[np.ndarray] | np.ndarray,
    queries_mask: np.ndarray | None = None,
    documents_mask: np.ndarray | None = None,
) -> np.ndarray:
    """MaxSim scores ``(queries, documents)``, as ``pylate.scores.colbert_scores`` computes them."""
    queries, documents = pad_tokens(queries_embeddings), pad_tokens(documents_embeddings)
    if queries.shape[2] != documents.shape[2]:
        raise InvalidInputError(
            f"Queries have {queries.shape[2]}-d token vectors but documents {documents.shape[2]}-d ones."
        )
    # (a, s, h) x (b, t, h) -> (a, b, s, t), one query at a time to bound memory
    scores = np.empty((queries.shape[0], documents.shape[0]), dtype=np.float32)
    flat = documents.reshape(-1, documents.shape[2])
    for index, query in enumerate(queries):
        sims = (query @ flat.T).reshape(query.shape[0], documents.shape[0], documents.shape[1]).transpose(1, 0, 2)
        if queries_mask is not None:
            sims = sims * np.asarray(queries_mask[index], dtype=np.float32)[None, :, None]
        if documents_mask is not None:
            sims = sims * np.asarray(documents_mask, dtype=np.float32)[:, None, :]
        scores[index] = sims.max(axis=-1).sum(axis=-1)
    return scores


def rerank(
    documents_ids: Sequence[Sequence[Any]],
    queries_embeddings: Sequence[np.ndarray] | np.ndarray,
    documents_embeddings: Sequence[Sequence[np.ndarray]],
) -> list[list[RerankResult]]:
    """For each query, its documents sorted by MaxSim score, best first (``pylate.rank.rerank``)."""
    if not (len(documents_ids) == len(queries_embeddings) == len(documents_embeddings)):
        raise InvalidInputError(
            f"rerank needs one entry per query: {len(queries_embeddings)} queries, {len(documents_ids)} id lists, "
            f"{len(documents_embeddings)} document lists."
        )
    results = []
    for query, ids, documents in zip(queries_embeddings, documents_ids, documents_embeddings, strict=True):
        if len(ids) != len(documents):
            raise InvalidInputError(f"{len(ids)} document ids for {len(documents)} documents.")
        scores = colbert_scores([np.asarray(query)], documents)[0]
        order = np.argsort(-scores, kind="stable")
        results.append([RerankResult(id=ids[i], score=float(scores[i])) for i in order])
    return results


def pool_tokens(embeddings: np.ndarray, pool_factor: int, protected_tokens: int = 1) -> np.ndarray:
    """One document's token vectors pooled to ``max(n // pool_factor, 1)`` clusters (Ward), protected ones kept.

    The cluster means follow the protected tokens in cluster-label order, as PyLate returns them.
    """
    protected, to_pool = embeddings[:protected_tokens], embeddings[protected_tokens:]
    count = len(to_pool)
    clusters = max(count // pool_factor, 1)
    if clusters >= count:
        return embeddings
    try:
        from scipy.cluster import hierarchy
    except ImportError as exc:
        raise MissingExtraError("colbert", "scipy (pool_factor > 1 clusters tokens with it)") from exc
    distances = 1 - to_pool @ to_pool.T
    condensed = distances[np.triu_indices(count, k=1)]
    labels = hierarchy.fcluster(hierarchy.linkage(condensed, method="ward"), t=clusters, criterion="maxclust") - 1
    sums = np.zeros((clusters, to_pool.shape[1]), dtype=to_pool.dtype)
    np.add.at(sums, labels, to_pool)
    counts = np.bincount(labels, minlength=clusters)
    kept = counts > 0
    pooled = sums[kept] / counts[kept][:, None].astype(to_pool.dtype)
    return np.concatenate([protected, pooled.astype(embeddings.dtype, copy=False)], axis=0)
