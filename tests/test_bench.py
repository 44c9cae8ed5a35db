"""Smoke test of ``fastembed-adapter bench --quick`` on the tiny prepared BERT model, and the worker's refusal.

Checks that the files are produced and well formed, never how fast anything is: benchmarks are
not timed unit tests. One round of the three backends the whole path needs (the PyTorch baseline
every ratio divides by, our INT8 encoder: targets, stage breakdown, GEMM-ceiling share, and the OpenVINO IR); the
figures, tables and the unavailable-backend rendering are unit-tested on canned worker output in
``test_bench_stats.py``.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import pytest

from checks import TINY_INT8_MIN_COSINE
from tiny import TinySpec

BACKENDS = ["pytorch-fp32", "ours-int8", "ours-openvino-fp32"]
FIGURES = ["cold_start_s", "p50_ms", "p95_ms", "p99_ms", "short_texts_per_s", "long_texts_per_s", "peak_rss_mb"]


def test_bench_quick_writes_json_markdown_and_plots(prepared_base, make_st_model, tmp_path):
    prepared = prepared_base("bert")
    source = make_st_model(TinySpec(arch="bert"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    command = [sys.executable, "-m", "fastembed_adapter.cli", "bench", "--quick", "--json", "--rounds", "1"]
    command += ["--backends", ",".join(BACKENDS), "--prepared", str(prepared), "--source", str(source)]
    command += ["--output", str(tmp_path), "--name", "tiny"]
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
    assert report["options"]["rounds"] == 1 and report["options"]["quick"] is True
    assert report["workload"]["long_min_tokens_ok"] is True
    for entry in report["backends"].values():
        assert entry["available"], entry
        assert entry["summary"]["p50_ms"]["n"] == 1
        for figure in FIGURES:
            assert math.isfinite(entry["summary"][figure]["median"]) and entry["summary"][figure]["median"] > 0
            assert entry["vs_baseline"][figure]["median"] > 0
        assert entry["model_file_mb"] > 0
        assert 0 < entry["share_of_peak"]["long"] < 1
        assert all(0 < share < 2 for share in entry["share_of_gemm_ceiling"].values())  # tiny model: noisy
        assert entry["quality"]["min_cosine"] >= (0.9999 if entry["precision"] == "fp32" else TINY_INT8_MIN_COSINE)
        assert 0 <= entry["quality"]["top10_agreement"] <= 1
        assert len(entry["rounds"]) == 1 and entry["rounds"]["0"]["pid"] > 0
    baseline = report["backends"]["pytorch-fp32"]
    assert baseline["vs_baseline"]["p50_ms"]["median"] == 1.0
    assert baseline["quality"]["min_cosine"] > 0.9999 and baseline["quality"]["top10_agreement"] == 1.0
    assert report["backends"]["ours-int8"]["stages_ms"]["0"]["batch1"]["encode"] > 0  # per-stage breakdown
    heads = [t["target"].split(" ")[0] for t in report["targets"]]  # no other INT8 backend ran: ratios only
    assert heads == ["batch-1", "short-text", "long-passage", "cold", "RSS", "peak"]

    ceiling = report["gemm_ceiling"]
    assert ceiling["shape"] == [512, 512, 512] and ceiling["int8_gmacs"] > 0 and ceiling["fp32_gmacs"] > 0

    markdown = md_file.read_text(encoding="utf-8")
    assert markdown.startswith("# Benchmark: tiny")
    assert "GEMM ceiling, measured by this run (512x512x512" in markdown
    assert "- 1 rounds; each backend runs in its own fresh process" in markdown
    for name in BACKENDS:
        assert f"| {name} |" in markdown
    assert "## Targets" in markdown and "## Where our encoder's time goes" in markdown and ".png)" in markdown


def test_worker_reports_an_unavailable_backend_with_its_reason(tmp_path):
    """A backend that cannot run prints ``available: false`` and why, exits 0, and loads no library."""
    from fastembed_adapter.benchmark import worker

    (tmp_path / "onnx").mkdir()
    argv = ["--backend", "st-onnx-int8", "--source", str(tmp_path), "--prepared", str(tmp_path), "--threads", "1"]
    argv += ["--fp32-file", "onnx/model.onnx", "--workload", str(tmp_path / "w.json")]  # and no --int8-file
    args = worker._parser().parse_args(argv)
    out = io.StringIO()
    assert worker.run(args, out) == 0
    line = json.loads(out.getvalue())
    assert line["backend"] == "st-onnx-int8" and line["available"] is False and line["pid"] == os.getpid()
    assert "has no INT8 file" in line["reason"] and str(tmp_path) in line["reason"]


def test_st_openvino_without_optimum_intel_is_a_column_with_its_reason(tmp_path, monkeypatch):
    """sentence-transformers' backend="openvino" needs optimum-intel: missing, the column says so and loads nothing."""
    import importlib.util

    from fastembed_adapter.benchmark.backends import LoadContext, UnavailableError, by_name, load

    real = importlib.util.find_spec
    hidden = {"optimum", "optimum.intel"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a))
    (tmp_path / "openvino").mkdir()
    (tmp_path / "openvino" / "openvino_model.xml").write_text("<net/>", encoding="utf-8")
    backend = by_name("st-openvino-fp32")
    context = LoadContext(tmp_path, tmp_path, "onnx/model.onnx", None, 1)
    assert context.file_for(backend) == "openvino/openvino_model.xml"
    with pytest.raises(UnavailableError, match=r"needs optimum-intel.*sentence-transformers\[openvino\]"):
        load(backend, context)


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
