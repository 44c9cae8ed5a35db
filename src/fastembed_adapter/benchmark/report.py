"""The Markdown rendering of a benchmark result, and the issue's targets checked against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OURS", "evaluate_targets", "render_markdown"]

OURS = "ours-int8"
# (figure in vs_baseline, comparison, threshold, text) -- ratios as stats.ratio_summary orients them.
_RATIO_TARGETS = (
    ("p50_ms", ">=", 6.0, "batch-1 p50 speedup vs PyTorch"),
    ("short_texts_per_s", ">=", 2.5, "short-text throughput vs PyTorch"),
    ("long_texts_per_s", ">=", 2.0, "long-passage throughput vs PyTorch"),
    ("cold_start_s", "<=", 0.1, "cold start / PyTorch's"),
    ("rss_after_load_mb", "<=", 0.25, "RSS after load / PyTorch's"),
    ("peak_rss_mb", "<=", 0.25, "peak RSS / PyTorch's"),
)


def evaluate_targets(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for ``ours-int8``: ratios to PyTorch and batch-1 p50 against the other INT8 backends."""
    backends = report["backends"]
    ours = backends.get(OURS)
    if not ours or not ours.get("available"):
        return []
    targets = []
    for figure, op, threshold, text in _RATIO_TARGETS:
        value = ours["vs_baseline"][figure]["median"]
        met = value >= threshold if op == ">=" else value <= threshold
        targets.append({"target": f"{text} {op} {threshold:g}", "value": round(value, 3), "met": met})
    p50 = ours["summary"]["p50_ms"]["median"]
    for other in ("st-onnx-int8", "fastembed-int8"):
        entry = backends.get(other)
        if entry and entry.get("available"):
            theirs = entry["summary"]["p50_ms"]["median"]
            targets.append(
                {"target": f"batch-1 p50 < {other}'s", "value": f"{p50:.2f} vs {theirs:.2f} ms", "met": p50 < theirs}
            )
        elif entry:
            targets.append({"target": f"batch-1 p50 < {other}'s", "value": "n/a (unavailable)", "met": None})
    return targets


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _gmacs(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}"


def _of_peak(achieved: float, peak: float | None, precision: str) -> str:
    return "" if peak is None else f" ({achieved / peak:.0%} of the {precision} peak)"


def _machine_line(report: Mapping[str, Any]) -> str:
    """CPU, ISA, the flags the peak depends on, and the clock the peak was derived with."""
    machine, peak = report["machine"], report["peak"]
    cpu = f"- machine: {machine['cpu']}, {machine['usable_cpus']} usable CPUs, ISA {machine['isa']}"
    if "flags" in peak:  # reports written before the peak was derived have neither flags nor clock
        cpu += f" (flags: {' '.join(peak['flags']) or 'none'})"
        clock = peak["clock_ghz"]
        cpu += f", clock {clock:.4g} GHz ({peak['clock_source']})" if clock is not None else ", clock unknown"
    load = ", ".join(f"{x:.2f}" for x in machine["load_average_at_start"])
    return f"{cpu}, load average at start {load}; {report['options']['threads']} threads for every backend"


def _peak_line(report: Mapping[str, Any]) -> str:
    peak = report["peak"]
    bf16 = f" / {_gmacs(peak['bf16_gmacs'])} GMAC/s BF16" if peak.get("bf16_gmacs") is not None else ""
    return (
        f"- share of peak: achieved encoder MAC/s (from config: {report['model_config']}) over "
        f"{_gmacs(peak['int8_gmacs'])} GMAC/s INT8 / {_gmacs(peak['fp32_gmacs'])} GMAC/s FP32{bf16}, "
        f"{peak['source']}"
    )


def _ratio(entry: Mapping[str, Any], figure: str, digits: int = 2) -> str:
    ratios = entry.get("vs_baseline", {})
    return f"{ratios[figure]['median']:.{digits}f}x" if figure in ratios else "-"


def _main_table(report: Mapping[str, Any]) -> list[str]:
    lines = [
        "| backend | file | MB | cold start s (x) | p50 ms | p95 ms | p99 ms | p50 speedup | short texts/s (x) "
        "| long texts/s (x) | RSS load MB (x) | peak RSS MB (x) | min cos | mean cos | top-10 "
        "| % of peak b1/short/long |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, e in report["backends"].items():
        if not e["available"]:
            lines.append(f"| {name} | unavailable: see below | {_f(e['model_file_mb'])} |" + " |" * 13)
            continue
        s, q, share = e["summary"], e["quality"], e["share_of_peak"]
        lines.append(
            f"| {name} | `{e['details'].get('file')}` | {_f(e['model_file_mb'])} "
            f"| {_f(s['cold_start_s']['median'], 2)} ({_ratio(e, 'cold_start_s')}) "
            f"| {_f(s['p50_ms']['median'], 2)} | {_f(s['p95_ms']['median'], 2)} | {_f(s['p99_ms']['median'], 2)} "
            f"| {_ratio(e, 'p50_ms')} "
            f"| {_f(s['short_texts_per_s']['median'], 0)} ({_ratio(e, 'short_texts_per_s')}) "
            f"| {_f(s['long_texts_per_s']['median'], 1)} ({_ratio(e, 'long_texts_per_s')}) "
            f"| {_f(s['rss_after_load_mb']['median'], 0)} ({_ratio(e, 'rss_after_load_mb')}) "
            f"| {_f(s['peak_rss_mb']['median'], 0)} ({_ratio(e, 'peak_rss_mb')}) "
            f"| {q['min_cosine']:.4f} | {q['mean_cosine']:.5f} | {q['top10_agreement']:.3f} "
            f"| {_pct(share['batch1'])} / {_pct(share['short'])} / {_pct(share['long'])} |"
        )
    return lines


def _spread_table(report: Mapping[str, Any]) -> list[str]:
    figures = ("cold_start_s", "p50_ms", "short_texts_per_s", "long_texts_per_s", "peak_rss_mb")
    lines = [
        "| backend | " + " | ".join(figures) + " | p50 speedup per round |",
        "|---|" + "--:|" * (len(figures) + 1),
    ]
    for name, e in report["backends"].items():
        if not e["available"]:
            continue
        cells = [
            f"{e['summary'][f]['min']:.3g}-{e['summary'][f]['max']:.3g} (±{e['summary'][f]['rel_spread'] / 2:.0%})"
            for f in figures
        ]
        speedups = e["vs_baseline"]["p50_ms"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {speedups['min']:.2f}-{speedups['max']:.2f}x |")
    return lines


def _stages_table(report: Mapping[str, Any]) -> list[str]:
    lines = [
        "| backend | workload | tokenize ms | ONNX Runtime ms | pooling ms | rest of encode() ms | encode() ms |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for name, e in report["backends"].items():
        stages = [s for s in e.get("stages_ms", {}).values() if s]
        if not stages:
            continue
        for workload in ("batch1", "short", "long"):
            rows = [s[workload] for s in stages if workload in s]
            if not rows:
                continue
            row = min(rows, key=lambda r: r["encode"])  # the least-disturbed round
            rest = row["encode"] - row["tokenize"] - row["inference"] - row["pooling"]
            lines.append(
                f"| {name} | {workload} | {row['tokenize']:.3f} | {row['inference']:.3f} | {row['pooling']:.3f} "
                f"| {rest:.3f} | {row['encode']:.3f} |"
            )
    return lines


def _ceiling_line(report: Mapping[str, Any]) -> list[str]:
    """ORT's own GEMM speed measured by this run, and the share of it our INT8 encoder reaches."""
    ceiling = report.get("gemm_ceiling")
    if not ceiling:
        return []
    m, k, n = ceiling["shape"]
    line = (
        f"- ONNX Runtime's GEMM ceiling, measured by this run ({m}x{k}x{n}, {ceiling['threads']} threads): "
        f"INT8 `MatMulIntegerToFloat` {ceiling['int8_gmacs']:.0f} GMAC/s"
        f"{_of_peak(ceiling['int8_gmacs'], report['peak']['int8_gmacs'], 'INT8')}, "
        f"FP32 `MatMul` {ceiling['fp32_gmacs']:.0f} GMAC/s"
        f"{_of_peak(ceiling['fp32_gmacs'], report['peak']['fp32_gmacs'], 'FP32')}"
    )
    ours = report["backends"].get("ours-int8", {}).get("share_of_gemm_ceiling")
    if ours:
        line += (
            f"; our INT8 encoder reaches {ours['batch1']:.0%} / {ours['short']:.0%} / {ours['long']:.0%} "
            "of the INT8 one (batch-1 / short / long)"
        )
    return [line]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The result as Markdown: set-up, the main table, spread, targets, stage breakdown, unavailable backends."""
    opts, work = report["options"], report["workload"]
    out = [
        f"# Benchmark: {report['model']} ({report['date']})",
        "",
        _machine_line(report),
        f"- {opts['rounds']} rounds; each backend runs in its own fresh process, the order rotates every round; "
        "figures are medians over rounds, x are medians of per-round ratios to PyTorch FP32",
        f"- batch-1 latency: {work['queries']} short queries (mean {work['tokens_mean']['queries']:.1f} tokens) "
        f"after {work['warmup']} warm-up calls; throughput (batch 32): {work['short']} short sentences "
        f"(mean {work['tokens_mean']['short']:.1f} tokens), {work['long']} long passages "
        f"({work['long_tokens_before_truncation']['min']}+ tokens, mean {work['tokens_mean']['long']:.0f} after "
        "truncation to max_seq_length like sentence-transformers)",
        f"- files: FP32 `{opts['fp32_file']}`, INT8 `{opts['int8_file']}`; our encoder with cache_size=0",
        _peak_line(report),
        *_ceiling_line(report),
        f"- took {report['seconds']:.0f} s",
        "",
        "## Results",
        "",
        *_main_table(report),
        "",
        "## Spread over rounds (min-max, ± half the range relative to the median)",
        "",
        *_spread_table(report),
        "",
    ]
    if report.get("targets"):
        out += ["## Targets (OnnxSentenceEncoder INT8)", "", "| target | value | met |", "|---|--:|---|"]
        out += [
            f"| {t['target']} | {t['value']} | {'n/a' if t['met'] is None else 'yes' if t['met'] else 'NO'} |"
            for t in report["targets"]
        ]
        out.append("")
    stages = _stages_table(report)
    if len(stages) > 2:
        out += ["## Where our encoder's time goes (per call; from its Prometheus stage histograms)", "", *stages, ""]
    missing = {name: e["reason"] for name, e in report["backends"].items() if not e["available"]}
    if missing:
        out += ["## Unavailable backends", ""] + [f"- {name}: {reason}" for name, reason in missing.items()] + [""]
    fastembed = report["backends"].get("fastembed-int8", {})
    if fastembed.get("available") and fastembed["details"].get("truncation_override"):
        out += [
            f"fastembed truncates at {fastembed['details']['fastembed_default_truncation']} tokens by default; "
            f"here its tokenizer's truncation was {fastembed['details']['truncation_override']}.",
            "",
        ]
    plots = [
        f"![{kind}]({path.rsplit('/', 1)[-1]})"
        for kind, path in report.get("files", {}).items()
        if path.endswith(".png")
    ]
    return "\n".join(out + plots) + "\n"
