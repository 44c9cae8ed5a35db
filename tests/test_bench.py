"""Smoke test of ``fastembed-adapter bench --quick`` on the tiny prepared BERT model.

Checks that the files are produced and well formed, never how fast anything is: benchmarks are
not timed unit tests. fastembed may be missing; the backend must then be recorded as unavailable.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

from checks import TINY_INT8_MIN_COSINE
from tiny import TinySpec

BACKENDS = ["pytorch-fp32", "st-onnx-fp32", "st-onnx-int8", "fastembed-int8", "ours-int8", "ours-fp32"]
FIGURES = ["cold_start_s", "p50_ms", "p95_ms", "p99_ms", "short_texts_per_s", "long_texts_per_s", "peak_rss_mb"]


def test_bench_quick_writes_json_markdown_and_plots(prepared_base, make_st_model, tmp_path):
    prepared = prepared_base("bert")
    source = make_st_model(TinySpec(arch="bert"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    command = [sys.executable, "-m", "fastembed_adapter.cli", "bench", "--quick", "--json"]
    command += ["--prepared", str(prepared), "--source", str(source), "--output", str(tmp_path), "--name", "tiny"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]

    folder = tmp_path / "tiny"
    (json_file,) = folder.glob("*.json")
    (md_file,) = folder.glob("*.md")
    assert sorted(p.name.rsplit("-", 1)[1] for p in folder.glob("*.png")) == [
        "latency.png",
        "memory.png",
        "throughput.png",
    ]
    for png in folder.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(json_file.read_text(encoding="utf-8"))
    assert json.loads(result.stdout) == report

    assert list(report["backends"]) == BACKENDS
    assert report["options"]["rounds"] == 2 and report["options"]["quick"] is True
    assert report["workload"]["long_min_tokens_ok"] is True
    for name, entry in report["backends"].items():
        if not entry["available"]:
            # only fastembed may be missing (not installed, or cannot load offline), and sentence-transformers'
            # ONNX backend where optimum cannot be installed (transformers >= 4.58): the reason is recorded
            optimum = importlib.util.find_spec("optimum") is not None
            assert name == "fastembed-int8" or (name.startswith("st-onnx") and not optimum), entry
            assert entry["reason"] and (name == "fastembed-int8" or "optimum" in entry["reason"])
            continue
        assert entry["summary"]["p50_ms"]["n"] == 2  # one fresh process per round
        for figure in FIGURES:
            assert math.isfinite(entry["summary"][figure]["median"]) and entry["summary"][figure]["median"] > 0
            assert entry["vs_baseline"][figure]["median"] > 0
        assert entry["model_file_mb"] > 0
        assert 0 < entry["share_of_peak"]["long"] < 1
        assert all(0 < share < 2 for share in entry["share_of_gemm_ceiling"].values())  # tiny model: noisy
        assert entry["quality"]["min_cosine"] >= (0.9999 if entry["precision"] == "fp32" else TINY_INT8_MIN_COSINE)
        assert 0 <= entry["quality"]["top10_agreement"] <= 1
        assert len({r["pid"] for r in entry["rounds"].values()}) == 2
    baseline = report["backends"]["pytorch-fp32"]
    assert baseline["vs_baseline"]["p50_ms"]["median"] == 1.0
    assert baseline["quality"]["min_cosine"] > 0.9999
    assert report["backends"]["ours-int8"]["stages_ms"]  # our encoder's per-stage breakdown
    assert {t["target"].split(" ")[0] for t in report["targets"]} >= {"batch-1", "cold"}

    ceiling = report["gemm_ceiling"]
    assert ceiling["shape"] == [512, 512, 512] and ceiling["int8_gmacs"] > 0 and ceiling["fp32_gmacs"] > 0

    markdown = md_file.read_text(encoding="utf-8")
    assert markdown.startswith("# Benchmark: tiny")
    assert "GEMM ceiling, measured by this run (512x512x512" in markdown
    for name in BACKENDS:
        assert f"| {name} |" in markdown
    assert "## Targets" in markdown and ".png)" in markdown


def test_int8_ratio_script_smoke(prepared_base, tmp_path):
    import shutil

    folder = tmp_path / "bert"
    shutil.copytree(prepared_base("bert"), folder)
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "int8_ratio.py")
    command = [sys.executable, script, "--prepared", str(folder), "--recipes", "dynamic,per-token,outlier-per-token"]
    result = subprocess.run([*command, "--passes", "1", "--threads", "1", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)["recipes"]
    assert list(rows) == ["dynamic", "per-token", "outlier-per-token"]
    assert rows["dynamic"]["ratio"] == 1.0
    assert all(row["seconds_per_pass"] > 0 and math.isfinite(row["ratio"]) for row in rows.values())
    assert (folder / "onnx" / "model_ratio_outlier-per-token.onnx").exists()
    bad = subprocess.run([*command[:-1], "dynamic,nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "nope" in bad.stderr
