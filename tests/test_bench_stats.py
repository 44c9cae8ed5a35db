"""``benchmark.stats`` and ``benchmark.report`` on canned worker output: the figures, ratios, targets and tables.

The worker lines are hand-written in the shape ``benchmark/worker.py`` prints; every expected value
below is worked out by hand from them, so a changed formula or table shows here, without a benchmark run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastembed_adapter.benchmark.report import evaluate_targets, render_markdown
from fastembed_adapter.benchmark.stats import (
    backend_summary,
    encoder_macs,
    per_run_figures,
    quality,
    ratio_summary,
    spread,
)

REL = 1e-12
TEXTS = {"queries": 5, "short": 4, "long": 2}
# encoder MACs per workload part, chosen so our INT8 encoder reaches 50 % / 10 % / 20 % of an 850 GMAC/s peak
MACS = {"queries": 5 * 425e9 * 1.5e-3, "short": 85e9 * 4 / 400, "long": 170e9 * 2 / 30}
INT8_FILE = "onnx/model_quint8_avx2.onnx"


def _stages(encode: float) -> dict[str, float]:
    return {"encode": encode, "tokenize": 0.1, "inference": 0.7, "pooling": 0.05}


def _worker_line(
    name: str,
    latency_ms: list[float],
    *,
    cold: float,
    short: float,
    long: float,
    rss: float,
    peak: float,
    pid: int,
    stages: bool = False,
) -> dict[str, Any]:
    """What ``worker.py`` prints for one measured backend (``_vectors`` already popped)."""
    return {
        "backend": name,
        "pid": pid,
        "available": True,
        "details": {"file": INT8_FILE if "int8" in name else "model.safetensors", "max_seq_length": 64},
        "cold_start_s": cold,
        "boot_s": 0.05,
        "load_s": cold / 2,
        "first_encode_s": cold / 4,
        "latency_ms": latency_ms,
        "short": {"texts": TEXTS["short"], "seconds": TEXTS["short"] / short, "texts_per_s": short},
        "long": {"texts": TEXTS["long"], "seconds": TEXTS["long"] / long, "texts_per_s": long},
        "rss_after_load_mb": rss,
        "peak_rss_mb": peak,
        "stages_ms": {"batch1": _stages(latency_ms[0]), "short": _stages(9.0)} if stages else {},
    }


def _pytorch(r: int) -> dict[str, Any]:
    return _worker_line(
        "pytorch-fp32", [10, 10, 10, 10, 20], cold=2.0, short=100, long=10, rss=400, peak=800, pid=100 + r
    )


def _ours(r: int) -> dict[str, Any]:
    latency = [1.0, 1.0, 1.0, 1.0, 2.0] if r == 0 else [2.0, 2.0, 2.0, 2.0, 4.0]  # round 1: twice as slow
    return _worker_line("ours-int8", latency, cold=0.1, short=400, long=30, rss=60, peak=300, pid=200 + r, stages=True)


def _st_onnx(r: int) -> dict[str, Any]:
    return _worker_line("st-onnx-int8", [1.2] * 5, cold=1.0, short=200, long=20, rss=300, peak=600, pid=300 + r)


def _vectors(shift: float = 0.0) -> dict[str, np.ndarray]:
    """Unit 2-D vectors: queries at 0° and 110°, a corpus at 0°, 10°, ... 110° (short: 6, long: 6)."""
    angles = np.radians(np.arange(0, 120, 10, dtype=np.float64))
    corpus = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shift:
        corpus[0] = [np.cos(shift), np.sin(shift)]
    queries = corpus[[0, 11]].copy() if not shift else np.stack([[1.0, 0.0], corpus[11]])
    return {"queries": queries, "short": corpus[:6], "long": corpus[6:]}


def _bench_report() -> dict[str, Any]:
    """A whole ``run_bench`` result, its entries built from the canned worker lines as the runner builds them."""
    lines = {"pytorch-fp32": _pytorch, "ours-int8": _ours, "st-onnx-int8": _st_onnx}
    runs = {name: {r: make(r) for r in (0, 1)} for name, make in lines.items()}
    baseline = {r: per_run_figures(run) for r, run in runs["pytorch-fp32"].items()}
    reference = _vectors()
    backends: dict[str, Any] = {}
    for name, precision, mb in (
        ("pytorch-fp32", "fp32", 90.0),
        ("ours-int8", "int8", 22.5),
        ("st-onnx-int8", "int8", 22.5),
    ):
        entry = {
            "label": name,
            "kind": name.split("-")[0],
            "precision": precision,
            "model_file_mb": mb,
            "available": True,
        }
        backends[name] = entry | backend_summary(
            runs[name],
            baseline=baseline,
            quality_figures=quality(reference, reference),
            macs=MACS,
            texts=TEXTS,
            peak_gmacs=850.0 if precision == "int8" else 213.0,
            ceiling_gmacs=425.0 if precision == "int8" else 106.5,
        )
    backends["fastembed-int8"] = {
        "label": "fastembed TextEmbedding INT8",
        "kind": "fastembed",
        "precision": "int8",
        "model_file_mb": 22.5,
        "available": False,
        "reason": "fastembed is not installed (No module named 'fastembed')",
    }
    report: dict[str, Any] = {
        "model": "tiny",
        "date": "2024-06-11T10:00:00",
        "seconds": 12.4,
        "options": {"threads": 2, "rounds": 2, "fp32_file": "onnx/model.onnx", "int8_file": INT8_FILE},
        "machine": {"cpu": "Test CPU", "usable_cpus": 2, "isa": "avx512_vnni", "load_average_at_start": [0.5, 0.25, 1]},
        "peak": {
            "int8_gmacs": 850.0,
            "fp32_gmacs": 213.0,
            "bf16_gmacs": None,
            "clock_ghz": 3.32,
            "clock_source": "canned clock",
            "isa": "avx512_vnni",
            "flags": ["avx512_vnni", "avx512f", "avx2"],
            "source": "canned source",
        },
        "gemm_ceiling": {
            "shape": [512, 512, 512],
            "threads": 2,
            "repeats": 10,
            "int8_gmacs": 425.0,
            "fp32_gmacs": 106.5,
        },
        "model_config": {"model_type": "bert", "num_hidden_layers": 2},
        "workload": {
            **TEXTS,
            "warmup": 2,
            "tokens_mean": {"queries": 7.25, "short": 12.5, "long": 64.0},
            "long_tokens_before_truncation": {"min": 300, "mean": 350.0},
        },
        "backends": backends,
        "files": {"json": "/out/tiny/x.json", "latency": "/out/tiny/x-latency.png"},
    }
    report["targets"] = evaluate_targets(report)
    return report


# -- stats ---------------------------------------------------------------------------------------


def test_per_run_figures_percentiles_and_copied_figures():
    figures = per_run_figures(
        _worker_line("x", [float(v) for v in range(1, 11)], cold=2, short=3, long=4, rss=5, peak=6, pid=1)
    )
    # numpy's linear percentile over 1..10: position q * 9
    assert figures["p50_ms"] == pytest.approx(5.5, rel=REL)
    assert figures["p95_ms"] == pytest.approx(9.55, rel=REL)
    assert figures["p99_ms"] == pytest.approx(9.91, rel=REL)
    assert (figures["cold_start_s"], figures["short_texts_per_s"], figures["long_texts_per_s"]) == (2, 3, 4)
    assert (figures["rss_after_load_mb"], figures["peak_rss_mb"], figures["boot_s"], figures["load_s"]) == (
        5,
        6,
        0.05,
        1,
    )
    assert figures["first_encode_s"] == 0.5


def test_spread():
    # the median (2), not the mean (3): one disturbed round does not move it
    assert spread([6.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 6.0, "rel_spread": 2.5, "n": 3}
    assert spread([4.0, 1.0, 2.0, 3.0])["median"] == 2.5
    assert spread([0.0, 0.0])["rel_spread"] == 0.0  # no division by a zero median
    assert spread([7.0])["rel_spread"] == 0.0 and spread([7.0])["n"] == 1


def test_ratio_summary_orients_each_figure_and_pairs_rounds():
    base = {r: per_run_figures(_pytorch(r)) for r in (0, 1)}
    ours = {r: per_run_figures(_ours(r)) for r in (0, 1)}
    ratios = ratio_summary(ours, base)
    assert ratios["p50_ms"] == {"median": 7.5, "min": 5.0, "max": 10.0, "rel_spread": pytest.approx(5 / 7.5), "n": 2}
    assert ratios["p95_ms"]["median"] == pytest.approx((18 / 1.8 + 18 / 3.6) / 2)  # speedups: baseline / backend
    assert ratios["short_texts_per_s"]["median"] == 4.0  # throughput: backend / baseline
    assert ratios["long_texts_per_s"]["median"] == 3.0
    assert ratios["cold_start_s"]["median"] == pytest.approx(0.05)  # smaller is better
    assert ratios["rss_after_load_mb"]["median"] == pytest.approx(0.15)
    assert ratios["peak_rss_mb"]["median"] == pytest.approx(0.375)
    only_round_1 = ratio_summary({1: ours[1], 2: ours[0]}, base)  # round 2 has no baseline to pair with
    assert only_round_1["p50_ms"]["n"] == 1 and only_round_1["p50_ms"]["median"] == 5.0
    assert ratio_summary({3: ours[0]}, base) == {}


def test_encoder_macs_counts_projections_ffn_and_attention():
    # per layer and text of s tokens: s * (4 h^2 + 2 h i) + 2 s^2 h; h=4, i=8: 128 s + 8 s^2
    config = {"num_hidden_layers": 2, "hidden_size": 4, "intermediate_size": 8}
    assert encoder_macs(config, [1, 2]) == 2 * ((128 + 8) + (256 + 32))
    # DistilBERT's names; the FFN defaults to 4 h: 4*16 + 2*4*16 = 192 per token
    assert encoder_macs({"n_layers": 3, "dim": 4}, [1]) == 3 * (192 + 8)


def test_quality_cosines_and_query_to_corpus_agreement():
    reference = _vectors()
    same = quality(reference, reference)
    assert same["min_cosine"] == pytest.approx(1.0) and same["top10_agreement"] == 1.0
    assert (same["k"], same["texts"], same["queries"], same["corpus"]) == (10, 14, 2, 12)
    # corpus text 0 moved from 0° to 225°: the query at 0° loses it from its top 10 (9 of 10 kept); for the
    # query at 110° it stays below the two texts at 10° and 20° (the reference's 10th and 11th): all 10 kept
    moved = quality(reference, _vectors(shift=np.radians(225)))
    assert moved["top10_agreement"] == pytest.approx(0.95, rel=REL)
    assert moved["min_cosine"] == pytest.approx(-np.sqrt(0.5))
    assert moved["mean_cosine"] == pytest.approx((13 - np.sqrt(0.5)) / 14)  # 13 texts unchanged


def test_quality_top_k_is_capped_by_the_corpus():
    small = {"queries": np.eye(2), "short": np.eye(2), "long": np.eye(2)[:1]}
    assert quality(small, small)["k"] == 3


def test_backend_summary_from_worker_lines():
    runs = {r: _ours(r) for r in (0, 1)}
    baseline = {r: per_run_figures(_pytorch(r)) for r in (0, 1)}
    entry = backend_summary(
        runs,
        baseline=baseline,
        quality_figures={"min_cosine": 0.99},
        macs=MACS,
        texts=TEXTS,
        peak_gmacs=850.0,
        ceiling_gmacs=425.0,
    )
    assert entry["summary"]["p50_ms"]["median"] == 1.5 and entry["summary"]["p95_ms"]["median"] == pytest.approx(2.7)
    assert entry["vs_baseline"]["p50_ms"]["median"] == 7.5
    assert entry["gmacs"] == pytest.approx({"batch1": 425.0, "short": 85.0, "long": 170.0})
    assert entry["share_of_peak"] == pytest.approx({"batch1": 0.5, "short": 0.1, "long": 0.2})
    assert entry["share_of_gemm_ceiling"] == pytest.approx({"batch1": 1.0, "short": 0.2, "long": 0.4})
    assert entry["latency_ms"] == [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 4.0]
    assert {r: row["pid"] for r, row in entry["rounds"].items()} == {0: 200, 1: 201}
    assert entry["rounds"][1]["p50_ms"] == 2.0
    assert entry["stages_ms"][0]["batch1"]["encode"] == 1.0 and entry["details"]["file"] == INT8_FILE


# -- report --------------------------------------------------------------------------------------


def test_evaluate_targets():
    targets = {t["target"]: (t["value"], t["met"]) for t in _bench_report()["targets"]}
    assert targets == {
        "batch-1 p50 speedup vs PyTorch >= 6": (7.5, True),
        "short-text throughput vs PyTorch >= 2.5": (4.0, True),
        "long-passage throughput vs PyTorch >= 2": (3.0, True),
        "cold start / PyTorch's <= 0.1": (0.05, True),
        "RSS after load / PyTorch's <= 0.25": (0.15, True),
        "peak RSS / PyTorch's <= 0.25": (0.375, False),
        "batch-1 p50 < st-onnx-int8's": ("1.50 vs 1.20 ms", False),
        "batch-1 p50 < fastembed-int8's": ("n/a (unavailable)", None),
    }


def test_evaluate_targets_without_our_encoder():
    report = _bench_report()
    report["backends"]["ours-int8"] = {"available": False, "reason": "no INT8 file"}
    assert evaluate_targets(report) == []


def test_markdown_tables():
    markdown = render_markdown(_bench_report())
    lines = markdown.splitlines()
    assert lines[0] == "# Benchmark: tiny (2024-06-11T10:00:00)"
    assert (
        "- machine: Test CPU, 2 usable CPUs, ISA avx512_vnni (flags: avx512_vnni avx512f avx2), clock 3.32 GHz "
        "(canned clock), load average at start 0.50, 0.25, 1.00; 2 threads for every backend"
    ) in lines
    assert (
        "- share of peak: achieved encoder MAC/s (from config: {'model_type': 'bert', 'num_hidden_layers': 2}) "
        "over 850 GMAC/s INT8 / 213 GMAC/s FP32, canned source"
    ) in lines
    assert "- 2 rounds; each backend runs in its own fresh process" in markdown
    assert "- batch-1 latency: 5 short queries (mean 7.2 tokens) after 2 warm-up calls" in markdown
    assert "2 long passages (300+ tokens, mean 64 after truncation" in markdown
    assert (
        "- ONNX Runtime's GEMM ceiling, measured by this run (512x512x512, 2 threads): INT8 `MatMulIntegerToFloat` "
        "425 GMAC/s (50% of the INT8 peak), FP32 `MatMul` 106 GMAC/s (50% of the FP32 peak); our INT8 encoder "
        "reaches 100% / 20% / 40% of the INT8 one (batch-1 / short / long)"
    ) in lines
    assert "- took 12 s" in lines
    # main table: medians over the two rounds, (x) the median per-round ratio to PyTorch
    assert (
        f"| ours-int8 | `{INT8_FILE}` | 22.5 | 0.10 (0.05x) | 1.50 | 2.70 | 2.94 | 7.50x | 400 (4.00x) "
        "| 30.0 (3.00x) | 60 (0.15x) | 300 (0.38x) | 1.0000 | 1.00000 | 1.000 | 50.0% / 10.0% / 20.0% |"
    ) in lines
    assert (
        "| pytorch-fp32 | `model.safetensors` | 90.0 | 2.00 (1.00x) | 10.00 | 18.00 | 19.60 | 1.00x | 100 (1.00x) "
        "| 10.0 (1.00x) | 400 (1.00x) | 800 (1.00x) | 1.0000 | 1.00000 | 1.000 |"
    ) in markdown
    assert "| fastembed-int8 | unavailable: see below | 22.5 |" + " |" * 13 in lines
    # spread: min-max over rounds, ± half the range relative to the median; per-round speedups
    assert (
        "| ours-int8 | 0.1-0.1 (±0%) | 1-2 (±33%) | 400-400 (±0%) | 30-30 (±0%) | 300-300 (±0%) | 5.00-10.00x |"
        in lines
    )
    spread_section = markdown.split("## Spread")[1].split("\n## ")[0]
    assert "| st-onnx-int8 | 1-1 (±0%) |" in spread_section and "fastembed" not in spread_section


def test_markdown_targets_stages_unavailable_and_plots():
    markdown = render_markdown(_bench_report())
    lines = markdown.splitlines()
    assert "| batch-1 p50 speedup vs PyTorch >= 6 | 7.5 | yes |" in lines
    assert "| peak RSS / PyTorch's <= 0.25 | 0.375 | NO |" in lines
    assert "| batch-1 p50 < st-onnx-int8's | 1.50 vs 1.20 ms | NO |" in lines
    assert "| batch-1 p50 < fastembed-int8's | n/a (unavailable) | n/a |" in lines
    # the least-disturbed round (smallest encode) per workload; rest = encode - tokenize - inference - pooling
    assert "| ours-int8 | batch1 | 0.100 | 0.700 | 0.050 | 0.150 | 1.000 |" in lines
    assert "| ours-int8 | short | 0.100 | 0.700 | 0.050 | 8.150 | 9.000 |" in lines
    assert not any(line.startswith(("| ours-int8 | long", "| pytorch-fp32 | batch1")) for line in lines)
    assert "- fastembed-int8: fastembed is not installed (No module named 'fastembed')" in lines
    assert lines[-1] == "![latency](x-latency.png)"  # PNGs only, by file name
    assert "x.json" not in markdown


def test_markdown_without_stages_targets_or_ceiling():
    report = _bench_report()
    for entry in report["backends"].values():
        entry.pop("stages_ms", None)
    report["targets"], report["gemm_ceiling"] = [], None
    markdown = render_markdown(report)
    assert "## Targets" not in markdown and "time goes" not in markdown and "GEMM ceiling" not in markdown


def test_markdown_with_an_unknown_peak_and_a_bf16_peak():
    report = _bench_report()
    report["peak"] |= {"int8_gmacs": None, "fp32_gmacs": None, "clock_ghz": None, "clock_source": "unknown"}
    report["peak"]["source"] = "unknown: no clock found"
    for entry in report["backends"].values():
        if entry["available"]:
            entry["share_of_peak"] = dict.fromkeys(entry["share_of_peak"])
    lines = render_markdown(report).splitlines()
    assert any(line.startswith("- machine: Test CPU") and ", clock unknown, load average" in line for line in lines)
    assert any(
        line.startswith("- share of peak:")
        and line.endswith("over unknown GMAC/s INT8 / unknown GMAC/s FP32, unknown: no clock found")
        for line in lines
    )
    ceiling = next(line for line in lines if "GEMM ceiling" in line)
    assert "of the INT8 peak" not in ceiling and "425 GMAC/s, FP32 `MatMul` 106 GMAC/s;" in ceiling
    assert next(line for line in lines if line.startswith("| ours-int8 |")).endswith("| - / - / - |")

    report["peak"] |= {"int8_gmacs": 1000.0, "fp32_gmacs": 100.0, "bf16_gmacs": 500.0, "source": "s"}
    assert "over 1000 GMAC/s INT8 / 100 GMAC/s FP32 / 500 GMAC/s BF16, s" in render_markdown(report)


def test_markdown_of_a_report_written_before_the_peak_was_derived():
    report = _bench_report()
    report["peak"] = {"int8_gmacs": 850.0, "fp32_gmacs": 213.0, "source": "old source"}
    lines = render_markdown(report).splitlines()
    assert (
        "- machine: Test CPU, 2 usable CPUs, ISA avx512_vnni, load average at start 0.50, 0.25, 1.00; "
        "2 threads for every backend" in lines
    )
    assert any(line.endswith("over 850 GMAC/s INT8 / 213 GMAC/s FP32, old source") for line in lines)


def test_backend_summary_without_a_peak():
    entry = backend_summary(
        {r: _ours(r) for r in (0, 1)},
        baseline={r: per_run_figures(_pytorch(r)) for r in (0, 1)},
        quality_figures={"min_cosine": 0.99},
        macs=MACS,
        texts=TEXTS,
        peak_gmacs=None,
        ceiling_gmacs=425.0,
    )
    assert entry["share_of_peak"] == {"batch1": None, "short": None, "long": None}
    assert entry["share_of_gemm_ceiling"] == pytest.approx({"batch1": 1.0, "short": 0.2, "long": 0.4})


def test_markdown_shows_the_derived_peak_its_clock_flags_and_source(monkeypatch):
    from fastembed_adapter.benchmark import peak as peak_module

    monkeypatch.setattr(peak_module, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"})
    monkeypatch.setattr(peak_module, "_read_text", {peak_module.MAX_FREQ_FILE: "2000000"}.get)
    report = _bench_report()
    report["peak"] = peak_module.cpu_peak(2).as_json()
    lines = render_markdown(report).splitlines()
    assert (
        "- machine: Test CPU, 2 usable CPUs, ISA avx512_vnni (flags: amx_int8 amx_bf16 avx512_vnni avx512f avx2), "
        f"clock 2 GHz (max frequency in {peak_module.MAX_FREQ_FILE}), load average at start 0.50, 0.25, 1.00; "
        "2 threads for every backend"
    ) in lines
    share = next(line for line in lines if line.startswith("- share of peak:"))
    assert "over 4096 GMAC/s INT8 / 128 GMAC/s FP32 / 2048 GMAC/s BF16, derived from this CPU (amx): 2 cores" in share
    assert "assumes 2 FMA ports" in share and share.endswith("theoretical, not measured")
    ceiling = next(line for line in lines if "GEMM ceiling" in line)
    assert "425 GMAC/s (10% of the INT8 peak)" in ceiling and "106 GMAC/s (83% of the FP32 peak)" in ceiling
