"""Numbers from raw worker runs.

Medians and spread over rounds, paired ratios to the baseline, quality against the baseline's
embeddings, achieved MAC/s from the model config, and one backend's result entry built from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..modules import normalize
from ..prepare.validate import topk_agreement

__all__ = ["backend_summary", "encoder_macs", "per_run_figures", "quality", "ratio_summary", "spread"]

TOP_K = 10

# The figures compared with the baseline. Latencies give speedups (baseline / backend, > 1 is faster);
# the others backend / baseline (> 1 is more throughput; < 1 is a faster cold start or less memory).
FIGURES = (
    "cold_start_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "short_texts_per_s",
    "long_texts_per_s",
    "rss_after_load_mb",
    "peak_rss_mb",
)


def per_run_figures(run: Mapping[str, Any]) -> dict[str, float]:
    """The headline figures of one worker run."""
    latencies = np.asarray(run["latency_ms"], dtype=np.float64)
    return {
        "cold_start_s": float(run["cold_start_s"]),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "short_texts_per_s": float(run["short"]["texts_per_s"]),
        "long_texts_per_s": float(run["long"]["texts_per_s"]),
        "rss_after_load_mb": float(run["rss_after_load_mb"]),
        "peak_rss_mb": float(run["peak_rss_mb"]),
        "boot_s": float(run["boot_s"]),
        "load_s": float(run["load_s"]),
        "first_encode_s": float(run["first_encode_s"]),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the relative spread ``(max - min) / median`` of one figure over rounds."""
    array = np.asarray(values, dtype=np.float64)
    median = float(np.median(array))
    return {
        "median": median,
        "min": float(array.min()),
        "max": float(array.max()),
        "rel_spread": float((array.max() - array.min()) / median) if median else 0.0,
        "n": len(array),
    }


def ratio_summary(runs: Mapping[int, dict[str, float]], baseline: Mapping[int, dict[str, float]]) -> dict[str, Any]:
    """Per-round paired ratios to the baseline (same round = neighbouring in time), then their spread.

    Latencies become speedups (``baseline / backend``); throughputs ``backend / baseline``;
    cold start and memory ``backend / baseline`` (smaller is better).
    """
    out: dict[str, Any] = {}
    rounds = sorted(set(runs) & set(baseline))
    if not rounds:
        return out
    for figure in FIGURES:
        if figure.endswith("_ms"):
            ratios = [baseline[r][figure] / runs[r][figure] for r in rounds]
        else:
            ratios = [runs[r][figure] / baseline[r][figure] for r in rounds]
        out[figure] = spread(ratios)
    return out


def backend_summary(
    runs: Mapping[int, Mapping[str, Any]],
    *,
    baseline: Mapping[int, dict[str, float]],
    quality_figures: Mapping[str, float],
    macs: Mapping[str, float],
    texts: Mapping[str, int],
    peak_gmacs: float | None,
    ceiling_gmacs: float,
) -> dict[str, Any]:
    """The result entry of one measured backend, from its worker outputs (round → the worker's JSON).

    Args:
        runs: what ``worker.py`` printed, per round it ran in (at least one).
        baseline: the baseline's :func:`per_run_figures` per round (the ratios pair rounds).
        quality_figures: :func:`quality` of this backend's embeddings against the baseline's.
        macs: encoder MACs of each workload part (``queries``, ``short``, ``long``), from :func:`encoder_macs`.
        texts: the number of texts in each part.
        peak_gmacs: the machine's peak GMAC/s at the backend's precision (None when unknown: the
            shares of peak are then None).
        ceiling_gmacs: ORT's measured GEMM GMAC/s at that precision (:mod:`.gemm`).
    """
    rounds = {r: per_run_figures(run) for r, run in runs.items()}
    summary = {key: spread([f[key] for f in rounds.values()]) for key in next(iter(rounds.values()))}
    per_query = macs["queries"] / texts["queries"]
    achieved = {  # MAC/s
        "batch1": per_query / (summary["p50_ms"]["median"] / 1e3),
        "short": macs["short"] * summary["short_texts_per_s"]["median"] / texts["short"],
        "long": macs["long"] * summary["long_texts_per_s"]["median"] / texts["long"],
    }
    return {
        "details": next(iter(runs.values()))["details"],
        "summary": summary,
        "vs_baseline": ratio_summary(rounds, baseline),
        "quality": dict(quality_figures),
        "gmacs": {k: v / 1e9 for k, v in achieved.items()},
        "share_of_peak": {k: None if peak_gmacs is None else v / 1e9 / peak_gmacs for k, v in achieved.items()},
        "peak_gmacs": peak_gmacs,
        "share_of_gemm_ceiling": {k: v / 1e9 / ceiling_gmacs for k, v in achieved.items()},
        "stages_ms": {r: run.get("stages_ms", {}) for r, run in runs.items()},
        "latency_ms": [x for run in runs.values() for x in run["latency_ms"]],
        "rounds": {r: {**f, "pid": runs[r]["pid"]} for r, f in rounds.items()},
    }


def encoder_macs(config: Mapping[str, Any], tokens: Sequence[int]) -> float:
    """Multiply-accumulates of the transformer encoder for texts of ``tokens`` real tokens each.

    Per layer and text of ``s`` tokens: Q, K, V and output projections ``4·s·h²``, the FFN
    ``2·s·h·i``, attention scores and context ``2·s²·h``. Embeddings, layer norms, softmax and
    pooling are not counted (< 1 %).
    """
    layers = int(config.get("num_hidden_layers", config.get("n_layers", 0)))
    hidden = int(config.get("hidden_size", config.get("dim", 0)))
    inner = int(config.get("intermediate_size", config.get("hidden_dim", 4 * hidden)))
    s = np.asarray(tokens, dtype=np.float64)
    per_layer = s * (4 * hidden * hidden + 2 * hidden * inner) + 2 * s * s * hidden
    return float(layers * per_layer.sum())


def _retrieval_scores(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Cosine of every query to every corpus text (queries are not in the corpus: nothing to mask)."""
    scores: np.ndarray = normalize(queries, np.float64) @ normalize(corpus, np.float64).T
    return scores


def quality(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per-text cosine to the reference (min/mean over queries, short and long texts) and top-10 agreement.

    Top-10 agreement (:func:`~fastembed_adapter.prepare.validate.topk_agreement` on query → corpus
    cosines): for every query, the share of the reference's 10 nearest corpus texts (short sentences
    + long passages) that the candidate also ranks in its 10 nearest; averaged. ``prepare``'s gate
    applies the same function to each validation text's neighbours among the other validation texts.
    """
    parts = ("queries", "short", "long")
    ref = np.concatenate([reference[p] for p in parts])
    cand = np.concatenate([candidate[p] for p in parts])
    cosines = np.sum(normalize(ref, np.float64) * normalize(cand, np.float64), axis=1)
    corpus_ref = np.concatenate([reference["short"], reference["long"]])
    corpus_cand = np.concatenate([candidate["short"], candidate["long"]])
    k = max(1, min(TOP_K, len(corpus_ref)))
    agreement = topk_agreement(
        _retrieval_scores(reference["queries"], corpus_ref), _retrieval_scores(candidate["queries"], corpus_cand), k
    )
    return {
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "top10_agreement": agreement,
        "k": k,
        "texts": len(ref),
        "queries": len(reference["queries"]),
        "corpus": len(corpus_ref),
    }
