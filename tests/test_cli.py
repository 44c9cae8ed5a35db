"""The ``fastembed-adapter`` command: exit codes, one-line errors, ``--version``, ``info``, ``--quality-target``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from checks import name_winner, read_json, record_in_manifest
from cli_support import run_in_process
from fastembed_adapter.cpu import detect_target
from fastembed_adapter.layout import MANIFEST_NAME, OPENVINO_FILE
from tiny import FP32_FILE, int8_file

CLI = [sys.executable, "-m", "fastembed_adapter.cli"]
DEFAULT_TARGET = (0.99, 0.997, 0.95)


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd, timeout=300
    )


def _errors(stderr: str) -> list[str]:
    """The ``error:`` lines of stderr (``prepare`` draws its progress bar there too)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


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


def test_info_json_prints_the_manifest(prepared_base):
    folder = prepared_base("bert")
    result = _run("info", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest == read_json(folder / MANIFEST_NAME)
    assert manifest["default_file"] == int8_file()
    assert manifest["dimension"] == 32
    assert manifest["pooling"] == ["mean"] and manifest["normalize"] is True
    assert {FP32_FILE, int8_file()} <= set(manifest["files"])
    assert manifest["validation"][int8_file()]["passed"] is True


def test_info_for_humans(prepared_base):
    folder = prepared_base("bert")
    manifest = read_json(folder / MANIFEST_NAME)
    result = _run("info", str(folder))
    assert result.returncode == 0, result.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert rows["file"].split()[1] == int8_file()
    assert "32 dimensions, mean pooling, normalized" in rows["embedding"]
    assert f"{manifest['recipe']} (INT8 for {manifest['target']})" in rows["recipe"]
    target = manifest["quality_target"]
    assert f"min cosine >= {target['min_cosine']}, mean cosine >= {target['mean_cosine']}" in rows["target"]
    for name in (FP32_FILE, int8_file(), OPENVINO_FILE):
        cells = rows[name].split()
        assert cells[-1] == "pass" and cells[-5] in ("kB", "MB"), rows[name]  # "161.5 kB"
    assert "*" in rows[int8_file()].split() and "*" not in rows[FP32_FILE].split()
    ir = folder / OPENVINO_FILE
    size = ir.stat().st_size + ir.with_suffix(".bin").stat().st_size  # the IR's size includes its .bin
    assert f"{size / 1e3:.1f} kB" in rows[OPENVINO_FILE]
    ir_figures = manifest["validation"][OPENVINO_FILE]
    assert f"{ir_figures['min_cosine']:.6f}  {ir_figures['mean_cosine']:.6f}" in rows[OPENVINO_FILE]
    assert rows["openvino"].split()[1] == "installed"
    assert rows["auto"].split()[1:3] == ["onnxruntime,", int8_file()]  # prepare ran no benchmark here
    assert "no benchmark of both runtimes recorded" in rows["auto"]


def test_info_says_when_the_benchmark_chose_the_file(capsys, copy_folder, prepared_base):
    folder = copy_folder(prepared_base("bert"))
    target = detect_target()
    assert target is not None
    record_in_manifest(folder, "fastest_file", {target.value: FP32_FILE})
    code, out, err = run_in_process(capsys, "info", str(folder))
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["file"].split()[1] == FP32_FILE
    assert f"prepare measured it faster than {int8_file()} at batch 1 and batch 32 on {target.value}" in rows["file"]
    assert "*" in rows[FP32_FILE].split() and "*" not in rows[int8_file()].split()


def test_info_names_the_runtime_auto_picks(capsys, copy_folder, prepared_base, monkeypatch):
    folder = copy_folder(prepared_base("bert"))
    name_winner(folder, "openvino")
    code, out, err = run_in_process(capsys, "info", str(folder))
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert f"openvino, {OPENVINO_FILE} (prepare measured OpenVINO fastest on" in rows["auto"]
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the openvino extra were not installed
    code, out, err = run_in_process(capsys, "info", str(folder))
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "not installed (pip install 'fastembed-adapter[openvino]')" in rows["openvino"]
    assert f"onnxruntime, {int8_file()} (OpenVINO measured fastest on" in rows["auto"]
    assert "but openvino is not installed" in rows["auto"]
    assert rows[OPENVINO_FILE].split()[-1] == "pass"  # still listed: the folder holds it
    name_winner(folder, "onnxruntime")
    shutil.rmtree(folder / "openvino")  # a hub snapshot fetched for ONNX Runtime: the IR is listed, not here
    monkeypatch.delitem(sys.modules, "openvino")
    code, out, err = run_in_process(capsys, "info", str(folder), "--file-name", FP32_FILE)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "prepare measured onnxruntime fastest on" in rows["auto"]
    assert rows[OPENVINO_FILE].split()[3] == "absent", rows[OPENVINO_FILE]  # "201.6 kB, absent"


def test_info_file_name_and_bad_folder(prepared_base, tmp_path):
    result = _run("info", str(prepared_base("bert")), "--file-name", FP32_FILE)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["file"][1] == FP32_FILE and "*" in rows[FP32_FILE]
    result = _run("info", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_info_json_without_manifest(copy_folder, prepared_base):
    folder = copy_folder(prepared_base("bert"))
    (folder / MANIFEST_NAME).unlink()
    result = _run("info", str(folder), "--json")
    assert result.returncode == 1
    assert MANIFEST_NAME in result.stderr and "without --json" in result.stderr


def test_console_script_installed():
    script = os.path.join(os.path.dirname(sys.executable), "fastembed-adapter")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: fastembed-adapter" in result.stdout


def test_bad_quality_target_is_a_usage_error(tmp_path):
    result = _run(
        "prepare", "--model", str(tmp_path), "--quality-target", "median=0.9", "--output", str(tmp_path / "o")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "fastembed-adapter prepare: error: argument --quality-target: "
        "Unknown quality key 'median' in 'median=0.9'; use min=, mean=, top10=."
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


# -- --version, FEA_DEBUG ----------------------------------------------------------------------------


def test_version():
    version = metadata.version("fastembed-adapter")
    result = _run("--version")
    assert result.returncode == 0 and result.stdout == f"fastembed-adapter {version}\n"
    script = os.path.join(os.path.dirname(sys.executable), "prepare")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == f"fastembed-adapter {version}\n"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_debug_shows_the_traceback_of_our_own_errors(tmp_path, how):
    missing = str(tmp_path / "missing")
    plain = _run("info", missing)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = _run("info", missing, env={"FEA_DEBUG": "1"}) if how == "env" else _run("info", missing, "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "ModelNotFoundError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()  # the same one-line error, last


def test_debug_off_values_show_no_traceback(tmp_path):
    result = _run("info", str(tmp_path / "missing"), env={"FEA_DEBUG": "0"})
    assert result.returncode == 1 and "Traceback" not in result.stderr


# -- --model is checked first ------------------------------------------------------------------------


def test_bare_model_name_is_reported_before_an_existing_output(tmp_path):
    (tmp_path / "models" / "all-MiniLM-L6-v2").mkdir(parents=True)  # the default output of that name
    result = _run("prepare", "--model", "all-MiniLM-L6-v2", "--no-benchmark", cwd=tmp_path)
    assert result.returncode == 1
    assert "already exists" not in result.stderr
    (line,) = _errors(result.stderr)
    assert line.startswith("error: Model 'all-MiniLM-L6-v2' is neither a local folder")
    assert "'sentence-transformers/all-MiniLM-L6-v2'" in line


def test_a_file_as_model_is_reported_as_a_file(make_st_model, tmp_path):
    from tiny import TinySpec

    config = make_st_model(TinySpec("bert")) / "modules.json"
    result = _run("prepare", "--model", str(config), "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    (line,) = _errors(result.stderr)
    assert f"{str(config)!r} is a file, not a model folder" in line
    assert f"pass its folder {str(config.parent)!r}" in line
    assert "neither" not in line and not (tmp_path / "out").exists()


# -- --quality-target, --min-cosine ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), DEFAULT_TARGET),
        (("--quality-target", "mean=0.999"), (0.99, 0.999, 0.95)),
        (("--quality-target", "min=0.995"), (0.995, 0.997, 0.95)),
        (("--quality-target", "top10=0.9,min=0.98"), (0.98, 0.997, 0.9)),
        (("--quality-target", "mean=0.999", "--min-cosine", "0.95"), (0.95, 0.999, 0.95)),
        (("--min-cosine", "1"), (1.0, 0.997, 0.95)),
    ],
)
def test_quality_target_parts_left_out_keep_their_defaults(capsys, captured_options, tmp_path, args, expected):
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), "--json", *args)
    assert code == 0, err
    (options,) = captured_options
    assert (options.min_cosine_int8, options.min_mean_cosine_int8, options.min_topk_agreement_int8) == expected


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--quality-target", "min=2"), {}, "argument --quality-target: Quality part 'min=2' is out of range"),
        (("--quality-target", "min=-1"), {}, "'min=-1' is out of range"),
        (("--quality-target", "mean=0"), {}, "'mean=0' is out of range"),
        (("--quality-target", "min=0.9,top10=1.5"), {}, "'top10=1.5' in 'min=0.9,top10=1.5' is out of range"),
        (("--quality-target", "min=high"), {}, "'min=high' is not a number"),
        (("--quality-target", "min"), {}, "'min' has no value"),
        (("--quality-target", "min=0.9,min=0.95"), {}, "'min' is given twice"),
        (("--min-cosine", "1.5"), {}, "argument --min-cosine: '1.5' is out of range"),
        (("--min-cosine", "nan"), {}, "argument --min-cosine: 'nan' is out of range"),
        ((), {"FEA_QUALITY_TARGET": "min=2"}, "FEA_QUALITY_TARGET='min=2' is invalid"),
        ((), {"FEA_MIN_COSINE": "-0.5"}, "FEA_MIN_COSINE='-0.5' is invalid"),
    ],
)
def test_quality_target_out_of_range_is_a_usage_error_before_any_work(
    capsys, captured_options, monkeypatch, tmp_path, args, env, named
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), *args)
    assert code == 2
    assert named in err.strip().splitlines()[-1]
    assert captured_options == []  # nothing ran
