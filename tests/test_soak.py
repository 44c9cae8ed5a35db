"""Smoke test of ``bench/soak.py`` on the tiny prepared BERT model: a few seconds of every phase.

Checks that the JSON, Markdown and PNG are written and hold samples of every phase, never how
much memory anything takes or how fast: a soak is not a timed unit test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "soak.py"
PHASES = ["encoder", "arena_on", "arena_off", "server"]


def test_soak_script_writes_json_markdown_and_plot_with_samples(prepared_base, tmp_path):
    model = prepared_base("bert")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    command = [sys.executable, str(SCRIPT), "--model", str(model), "--minutes", "0.15", "--interval", "0.5"]
    result = subprocess.run([*command, "--output", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((tmp_path / "soak.json").read_text(encoding="utf-8"))
    assert list(report["phases"]) == PHASES
    for name in PHASES:
        phase = report["phases"][name]
        assert len(phase["samples"]) >= 2, name
        assert all(sample["rss_mb"] > 0 for sample in phase["samples"])
        assert phase["summary"]["max_mb"] >= phase["summary"]["start_mb"] > 0
    assert report["phases"]["arena_on"]["arena"] is True and report["phases"]["arena_off"]["arena"] is False
    assert report["phases"]["arena_off"]["samples"][-1]["calls"] == report["phases"]["arena_on"]["samples"][-1]["calls"]
    requests = report["phases"]["server"]["requests"]
    assert requests["total"] > 0 and requests["errors"] == 0, requests["error_examples"]
    assert "cache_misses" in report["phases"]["server"]["samples"][-1]
    assert report["phases"]["encoder"]["heap"]["python_objects_mb"] > 0
    assert report["components"]["onnx_total_mb"] > 0 and report["components"]["token_lru"]["tokens"] > 0
    assert set(report["machine"]["cpu"]["flags_of_note"]) >= {"avx2", "avx512_vnni", "amx_int8"}
    assert report["versions"]["onnxruntime"]

    markdown = (tmp_path / "soak.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Soak test: bert")
    for name in PHASES:
        assert f"| {name} |" in markdown
    assert "## Analysis" in markdown and "High-water mark (VmHWM)" in markdown
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = tmp_path / "rendered"  # --render rewrites the report from the saved samples alone
    command = [sys.executable, str(SCRIPT), "--render", str(tmp_path / "soak.json"), "--output", str(again)]
    rendered = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert (again / "soak.md").read_text(encoding="utf-8") == markdown
