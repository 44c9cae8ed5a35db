"""``report.json`` (machine-readable) and ``REPORT.md`` (the same for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..layout import REPORT_JSON, REPORT_MD
from .writer import write_json

__all__ = ["render_markdown", "write_reports"]


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    lines = [
        f"# fastembed-adapter report: {report['source']['id']}",
        "",
        f"- output: `{report['output']}`",
        f"- target: `{report['target']}`, recipe: `{report.get('recipe')}`, default file: `{report['default_file']}`",
        f"- dimension {report['dimension']}, max_seq_length {report['max_seq_length']}, "
        f"pooling {report['pooling']}, normalize {report['normalize']}",
        "",
        "## Validation against PyTorch `SentenceTransformer.encode()`",
        "",
        f"{report['validation']['texts']} built-in texts (queries, sentences, long passages, 20+ languages, code, "
        "numbers/URLs).",
        "",
        "| file | min cosine | mean cosine | max abs error | top-10 agreement | encode s | target | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["validation"]["files"].items():
        target = row["target"]
        lines.append(
            f"| `{name}` | {_fmt(row['min_cosine'])} | {_fmt(row['mean_cosine'], 5)} | {_fmt(row['max_abs_error'], 5)} "
            f"| {_fmt(row['topk_agreement'], 3)} | {row['encode_seconds']:.2f} | min ≥ {target['min_cosine']}, "
            f"mean ≥ {target['mean_cosine']}, top-10 ≥ {target['topk_agreement']} "
            f"| {'pass' if row['passed'] else 'FAIL'} |"
        )
    if report.get("fp32_fallback"):
        lines += ["", f"**WARNING: {report['fp32_fallback']}**"]
    if report.get("recipes"):
        lines += [
            "",
            "## INT8 recipes tried",
            "",
            "Recipes run in order of expected speed (fastest first); the first that meets the quality "
            "target wins, so every recipe above the winner failed the target for the reason given.",
            "",
            "| recipe | min cosine | mean cosine | top-10 | encode s | size MB | MatMuls kept FP32 | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in report["recipes"]:
            if "min_cosine" not in row:  # the recipe raised; its result says what
                lines.append(f"| {row['recipe']} | - | - | - | - | - | - | {row['result']} |")
                continue
            lines.append(
                f"| {row['recipe']} | {_fmt(row['min_cosine'])} | {_fmt(row['mean_cosine'], 5)} "
                f"| {_fmt(row['topk_agreement'], 3)} | {row['encode_seconds']:.2f} | {row['size_bytes'] / 1e6:.1f} "
                f"| {len(row.get('fp32_matmuls', []))} | {row['result']} |"
            )
        sensitive = [row for row in report["recipes"] if row["recipe"].endswith("sensitive-fp32")]
        for row in sensitive:
            names = ", ".join(f"`{name}`" for name in row.get("fp32_matmuls", []))
            lines += ["", f"`{row['recipe']}` kept FP32 (most error added on the calibration texts first): {names}"]
    bench = report.get("benchmark") or {}
    if bench:
        lines += [
            "",
            f"## Quick benchmark ({bench.get('threads')} threads, same process, one run)",
            "",
            "| backend | batch-1 p50 ms | batch-1 p95 ms | texts/s (batch 32) | vs PyTorch p50 |",
            "|---|---|---|---|---|",
        ]
        base = bench["backends"].get("pytorch", {}).get("p50_ms")
        for name, row in bench["backends"].items():
            ratio = f"{base / row['p50_ms']:.1f}x" if base else "-"
            lines.append(f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['throughput']:.0f} | {ratio} |")
    lines += ["", "## Stage timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {secs:.2f} |" for name, secs in report["timings"].items()]
    lines += ["", "## Files", "", "| file | MB |", "|---|---|"]
    lines += [f"| `{name}` | {size / 1e6:.2f} |" for name, size in report["sizes"].items()]
    lines += ["", "## Versions", ""]
    lines += [f"- {name} {version}" for name, version in report["versions"].items()]
    return "\n".join(lines) + "\n"


def write_reports(folder: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` and ``REPORT.md`` into ``folder``."""
    write_json(folder / REPORT_JSON, report)
    (folder / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
