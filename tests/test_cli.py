"""The ``fastembed-adapter`` command: exit codes, one-line errors, ``info`` JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import FP32_FILE, int8_file

CLI = [sys.executable, "-m", "fastembed_adapter.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def test_help():
    result = _run("--help")
    assert result.returncode == 0
    assert "prepare" in result.stdout and "info" in result.stdout


def test_prepare_help_lists_env_fallbacks():
    result = _run("prepare", "--help")
    assert result.returncode == 0
    assert "FEA_MODEL" in result.stdout and "--min-cosine" in result.stdout


def test_unknown_option():
    assert _run("--no-such-option").returncode == 2
    result = _run("prepare", "--model", "x", "--no-such-option")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-option" in result.stderr


def test_missing_command():
    assert _run().returncode == 2


def test_prepare_missing_model(tmp_path):
    result = _run("prepare", "--model", "/nonexistent", "--output", str(tmp_path / "out"), "--no-benchmark")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "/nonexistent" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_info(prepared_base):
    folder = prepared_base("bert")
    result = _run("info", str(folder))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["file"] == int8_file()
    assert info["dimension"] == 32
    assert info["pooling"] == ["mean"] and info["normalize"] is True
    assert sorted(info["onnx_files"]) == sorted([FP32_FILE, int8_file()])
    assert info["validation"][int8_file()]["passed"] is True


def test_info_file_name_and_bad_folder(prepared_base, tmp_path):
    result = _run("info", str(prepared_base("bert")), "--file-name", FP32_FILE)
    assert result.returncode == 0 and json.loads(result.stdout)["file"] == FP32_FILE
    result = _run("info", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_console_script_installed():
    script = os.path.join(os.path.dirname(sys.executable), "fastembed-adapter")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: fastembed-adapter" in result.stdout


def test_bad_quality_target_is_a_one_line_failure(tmp_path):
    result = _run(
        "prepare", "--model", str(tmp_path), "--quality-target", "median=0.9", "--output", str(tmp_path / "o")
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Unknown quality key 'median' in 'median=0.9'; use min=, mean=, top10=."
    ]
