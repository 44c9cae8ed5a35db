"""``prepare`` stopped from outside: SIGTERM removes the staging folder; SIGKILL's is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checks import TINY_INT8_MIN_COSINE, TINY_INT8_MIN_MEAN_COSINE, TINY_INT8_MIN_TOPK
from fastembed_adapter.layout import MANIFEST_NAME
from tiny import TinySpec, run_prepare

STAGING_TIMEOUT = 240  # seconds until the staging folder appears (the load stage imports torch)
EXIT_TIMEOUT = 120  # seconds a stopped run may take to clean up and exit

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")


def _start_prepare(source: Path, output: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    target = f"min={TINY_INT8_MIN_COSINE},mean={TINY_INT8_MIN_MEAN_COSINE},top10={TINY_INT8_MIN_TOPK}"
    command = [sys.executable, "-m", "fastembed_adapter.cli", "prepare", "--model", str(source)]
    command += ["--output", str(output), "--no-benchmark", "--threads", "1", "--quality-target", target]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_staging(process: subprocess.Popen[str], output: Path) -> Path:
    deadline = time.monotonic() + STAGING_TIMEOUT
    while time.monotonic() < deadline:
        found = list(output.parent.glob(f".{output.name}.tmp-*"))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no staging folder beside {output} after {STAGING_TIMEOUT} s")


def test_sigterm_removes_the_staging_folder(make_st_model, tmp_path):
    output = tmp_path / "out"
    process = _start_prepare(make_st_model(TinySpec("bert")), output)
    staging = _wait_for_staging(process, output)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=EXIT_TIMEOUT)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "error: terminated by SIGTERM"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging folder, no output
    assert staging.name.startswith(f".out.tmp-{process.pid}-")  # its owner's pid was in its name


def test_the_next_run_removes_what_a_killed_run_left(make_st_model, tmp_path):
    source = make_st_model(TinySpec("bert"))
    output = tmp_path / "out"
    process = _start_prepare(source, output)
    staging = _wait_for_staging(process, output)
    (staging / "big.bin").write_bytes(b"\0" * 1024)  # stands for the ~100 MB of a real model
    process.kill()  # SIGKILL: no handler runs, the folder stays
    process.communicate(timeout=EXIT_TIMEOUT)
    assert staging.is_dir()

    run_prepare(source, output, quantize="none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (output / MANIFEST_NAME).is_file()
