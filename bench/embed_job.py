"""Rows/s of the corpus job: ``embed`` here, ``embed --engine ray`` on a local Ray, and a plain ``encode()`` loop.

Each contender is a whole fresh process (start-up, model load, reading the corpus and writing the
output included), run in interleaved rounds, one process at a time:

- **loop**: what a user writes without the job: read the JSONL into a list, ``encode()`` it in one call
  (sentence-transformers sorts all of it by length), ``np.save`` the matrix.
- **embed**: ``fastembed-adapter embed corpus.jsonl --output out.parquet`` (parts, state, Parquet).
- **embed-ray**: the same with ``--engine ray`` (a local Ray with this machine's CPUs; its start-up included).

The job's overhead is its median wall time over the loop's, minus one; the issue asks < 10 %.

    python bench/embed_job.py --model models/all-MiniLM-L6-v2 --rows 5000 --rounds 3

Writes ``embed_job.json`` and ``embed_job.md`` to ``bench/results/embed/`` (``--output``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimddp", "i8mm")

LOOP = """
import json, sys
import numpy as np
from fastembed_adapter import OnnxSentenceEncoder
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
model = OnnxSentenceEncoder(sys.argv[2], cache_size=0)
np.save(sys.argv[3], model.encode(texts, batch_size=int(sys.argv[4])))
"""


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    present = set(line.split(":", 1)[-1].split())
    return [flag for flag in FLAGS if flag in present]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_corpus(path: Path, rows: int) -> None:
    from fastembed_adapter.texts import calibration_texts, held_out_texts, validation_texts

    texts = validation_texts() + calibration_texts() + held_out_texts()
    with path.open("w", encoding="utf-8") as file:
        for i in range(rows):
            record = {"id": f"doc-{i}", "text": f"{texts[i % len(texts)]} (#{i})"}
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the child, from ``wait4``'s accounting."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({process.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="folder written by prepare")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-ray", action="store_true", help="leave out embed --engine ray")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "embed")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "fastembed_adapter.cli", "embed"]
    with tempfile.TemporaryDirectory(prefix="fea-embed-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus.jsonl"
        write_corpus(corpus, args.rows)
        job = [str(corpus), "--model", args.model, "--batch-size", str(args.batch_size), "--overwrite"]
        contenders = {
            "loop": [sys.executable, "-c", LOOP, str(corpus), args.model, str(work / "loop.npy"), str(args.batch_size)],
            "embed": [*cli, *job, "--output", str(work / "local.parquet")],
        }
        if not args.no_ray:
            contenders["embed-ray"] = [*cli, *job, "--output", str(work / "ray.parquet"), "--engine", "ray"]
        times: dict[str, list[float]] = {name: [] for name in contenders}
        peaks: dict[str, list[float]] = {name: [] for name in contenders}
        for round_index in range(args.rounds):
            for name, command in contenders.items():
                wall, peak = run(command)
                times[name].append(wall)
                peaks[name].append(peak)
                print(f"round {round_index + 1}: {name:9s} {wall:7.2f} s  peak {peak:6.0f} MiB", file=sys.stderr)
    loop = statistics.median(times["loop"])
    rows = {
        name: {
            "median_s": round(statistics.median(walls), 2),
            "min_s": round(min(walls), 2),
            "max_s": round(max(walls), 2),
            "rows_per_s": round(args.rows / statistics.median(walls), 1),
            "vs_loop": round(statistics.median(walls) / loop, 3),
            "peak_rss_mib": round(max(peaks[name])),
        }
        for name, walls in times.items()
    }
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "model": args.model,
        "rows": args.rows,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "results": rows,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "embed_job.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Corpus job: rows/s ({result['date'][:10]})",
        "",
        f"{result['cpu']}, {result['cores']} cores, flags `{' '.join(result['cpu_flags']) or 'none listed'}`; "
        f"load average at the end {', '.join(f'{x:.2f}' for x in result['load_average_at_end'])}.",
        f"Model `{Path(args.model).name}` (its default file), {args.rows} built-in texts from JSONL, batch size "
        f"{args.batch_size}, {args.rounds} interleaved rounds; each figure a whole process (start-up and model "
        "load included).",
        "",
        "| contender | median s (min-max) | rows/s | time vs loop | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['median_s']} ({row['min_s']}-{row['max_s']}) | {row['rows_per_s']} | "
            f"{row['vs_loop']:.3f} | {row['peak_rss_mib']} |"
        )
    lines += [
        "",
        f"The job's overhead over the loop: {100 * (rows['embed']['vs_loop'] - 1):+.1f} % (target < 10 %). Peak RSS is "
        "the process the bench started: for embed-ray the driver only (the actors are Ray's worker processes). "
        "The loop holds the whole corpus and all its vectors; the job holds a part.",
    ]
    (args.output / "embed_job.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
