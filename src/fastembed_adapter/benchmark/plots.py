"""PNG plots of a benchmark result: batch-1 latency distribution, throughput, memory per backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]


def write_plots(report: Mapping[str, Any], folder: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>-latency.png``, ``<stem>-throughput.png`` and ``<stem>-memory.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = {name: e for name, e in report["backends"].items() if e["available"]}
    names = list(entries)
    title = f"{report['model']} ({report['date']})"
    files = {kind: folder / f"{stem}-{kind}.png" for kind in ("latency", "throughput", "memory")}

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.boxplot([entries[n]["latency_ms"] for n in names], tick_labels=names, whis=(1, 99), showfliers=True)
    ax.set_yscale("log")
    ax.set_ylabel("batch-1 latency, ms (log; whiskers p1-p99)")
    ax.set_title(f"Batch-1 latency, all rounds: {title}")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(files["latency"], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, figure, label in zip(
        axes, ("short_texts_per_s", "long_texts_per_s"), ("short sentences", "long passages"), strict=True
    ):
        medians = [entries[n]["summary"][figure]["median"] for n in names]
        low = [m - entries[n]["summary"][figure]["min"] for m, n in zip(medians, names, strict=True)]
        high = [entries[n]["summary"][figure]["max"] - m for m, n in zip(medians, names, strict=True)]
        ax.bar(names, medians, yerr=[low, high], capsize=4, color="tab:blue")
        ax.set_ylabel("texts/s (median, bars min-max)")
        ax.set_title(f"Throughput, {label}")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(files["throughput"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    positions = range(len(names))
    width = 0.38
    after_load = [entries[n]["summary"]["rss_after_load_mb"]["median"] for n in names]
    peak = [entries[n]["summary"]["peak_rss_mb"]["median"] for n in names]
    ax.bar([p - width / 2 for p in positions], after_load, width, label="RSS after load")
    ax.bar([p + width / 2 for p in positions], peak, width, label="peak RSS")
    ax.set_xticks(list(positions), names, rotation=20)
    ax.set_ylabel("MiB (median over rounds)")
    ax.set_title(f"Memory per process: {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(files["memory"], dpi=110)
    plt.close(fig)
    return files
