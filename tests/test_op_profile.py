"""Smoke test of ``bench/op_profile.py`` on the tiny prepared BERT model, and its refusals.

Checks the report's shape and that its sums agree, never how fast anything is.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tiny import FP32_FILE, int8_file

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "bench", "op_profile.py")
CATEGORIES = ["attention", "int8_gemm", "fp32_gemm", "quantization", "gelu", "normalization", "other"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    command = [sys.executable, SCRIPT, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_op_profile_reports_every_file_by_category_and_op(prepared_base, tmp_path):
    prepared = prepared_base("bert")
    table = tmp_path / "ops.md"
    result = _run("--prepared", str(prepared), "--batch", "2", "--tokens", "16", "--runs", "1", "--json")
    result_md = _run(
        "--prepared", str(prepared), "--batch", "2", "--tokens", "16", "--runs", "1", "--markdown", str(table)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result_md.returncode == 0, result_md.stderr[-3000:]
    report = json.loads(result.stdout)

    assert sorted(report["files"]) == sorted([FP32_FILE, int8_file()])
    assert (report["batch"], report["tokens"], report["runs"]) == (2, 16, 1)
    for entry in report["files"].values():
        assert list(entry["categories"]) == CATEGORIES
        assert entry["profiled_runs"] == 1 and entry["wall_ms_median"] > 0 and entry["profiled_run_ms"] > 0
        ops_total = sum(op["ms"] for op in entry["ops"].values())
        categories_total = sum(category["ms"] for category in entry["categories"].values())
        assert math.isclose(ops_total, categories_total, rel_tol=1e-9) and math.isclose(ops_total, entry["kernel_ms"])
        assert all(op["ms"] > 0 and op["calls"] >= 1 for op in entry["ops"].values())
        for category in entry["categories"].values():
            assert math.isclose(sum(category["ops"].values()), category["ms"], rel_tol=1e-9, abs_tol=1e-12)
        assert 0 < sum(category["share"] for category in entry["categories"].values()) <= 1
    fp32, int8 = report["files"][FP32_FILE], report["files"][int8_file()]
    assert int8["categories"]["int8_gemm"]["ms"] > 0 and int8["categories"]["int8_gemm"]["calls"] > 0
    assert fp32["categories"]["int8_gemm"] == {"ms": 0.0, "share": 0.0, "calls": 0.0, "ops": {}}
    assert fp32["categories"]["fp32_gemm"]["ms"] > 0 and fp32["categories"]["attention"]["ms"] > 0

    markdown = table.read_text(encoding="utf-8")
    assert result_md.stdout == markdown and markdown.startswith("# ONNX Runtime op profile: bert")
    assert f"| {FP32_FILE} ms | % | {int8_file()} ms | % |" in markdown
    for label in ("**wall per batch**", "**INT8 GEMM**", "**quantization chain**", "**GELU**", "CPU flags:"):
        assert label in markdown


def test_op_profile_refuses_a_missing_folder_and_an_unknown_file(prepared_base, tmp_path):
    missing = _run("--prepared", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"--prepared {tmp_path / 'nope'}: no such folder" in missing.stderr.strip().splitlines()[-1]

    unknown = _run("--prepared", str(prepared_base("bert")), "--files", f"{FP32_FILE},onnx/model_nope.onnx")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    last = unknown.stderr.strip().splitlines()[-1]
    assert "onnx/model_nope.onnx" in last and FP32_FILE in last  # names it, and the files there are


def test_op_profile_reports_a_damaged_file_in_one_line(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    (folder / "onnx" / "broken.onnx").write_bytes(b"not an onnx model")
    result = _run(
        "--prepared",
        str(folder),
        "--files",
        f"{FP32_FILE},onnx/broken.onnx",
        "--batch",
        "1",
        "--tokens",
        "8",
        "--runs",
        "1",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("op_profile.py: ") and "broken.onnx" in line


def test_control_flow_nodes_are_not_counted_twice():
    """An ``If`` node's kernel time holds its subgraph's nodes, which report their own: only those count."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("op_profile", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def node(name: str, op: str, ts: int, dur: int) -> dict:
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    runs = [{"cat": "Session", "name": "model_run", "ts": ts, "dur": 100} for ts in (0, 1000)]
    events = [*runs, node("/attn/If", "If", 1010, 60), node("/attn/mha", "MultiHeadAttention", 1015, 50)]
    events.append(node("/ffn/MatMul", "MatMul", 1080, 20))
    report = module.aggregate(events)
    assert report["categories"]["attention"]["ms"] == 0.05  # the MultiHeadAttention alone, not the If around it
    assert "If" not in report["ops"]
    assert math.isclose(sum(entry["ms"] for entry in report["categories"].values()), 0.07)


def test_projections_are_gemm_and_the_attention_core_is_attention():
    import importlib.util

    spec = importlib.util.spec_from_file_location("op_profile", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    layer = "/model/encoder/layer.0/attention"
    for name in (f"{layer}/attn/q/MatMul", f"{layer}/self/query/MatMul", f"{layer}/output/dense/MatMul"):
        assert module.classify("MatMul", name) == "fp32_gemm", name
    assert module.classify("MatMul", f"{layer}/attn/MatMul_1") == "attention"  # scores x values
    assert module.classify("Softmax", f"{layer}/attn/Softmax") == "attention"
    assert module.classify("MatMul", "/model/encoder/layer.0/intermediate/dense/MatMul") == "fp32_gemm"
