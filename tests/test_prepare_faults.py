"""``prepare`` under faults: signals at each stage, a read-only parent, a full disk, an existing output.

Every case runs the real command (``python -m fastembed_adapter.cli prepare``) on the tiny BERT model
and checks what is left beside the output path: nothing, or (where the output existed before, or the
run had already published) a complete folder that loads. A stage is hit by reading the progress line
(``prepare: <stage>``) the command draws on stderr and freezing the run with SIGSTOP as it appears;
the fault is injected while the run is frozen (a signal sent, the disk filled, the output created by
someone else) and the run is let go with SIGCONT. There is no test hook in the code: what is watched
is the command's own output. The renames that publish a ``--force`` replace are held with strace's
syscall delay (that one check is skipped where strace or ptrace is not available).

test_cli_signals.py covers SIGTERM and SIGKILL as the staging folder first appears (the export
stage); this file covers the other stages. All runs are started by one module fixture and go
``WORKERS`` at a time (each is mostly one core: ``--threads 1``); each test waits for its own.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import itertools
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from checks import TINY_INT8_MIN_COSINE, TINY_INT8_MIN_MEAN_COSINE, TINY_INT8_MIN_TOPK, read_json
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.layout import MANIFEST_NAME
from fastembed_adapter.prepare import STAGES
from fastembed_adapter.prepare.writer import file_table
from tiny import HIDDEN, TEXTS, TinySpec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals, /proc, tmpfs")

CLI = [sys.executable, "-m", "fastembed_adapter.cli", "prepare"]
TARGET = f"min={TINY_INT8_MIN_COSINE},mean={TINY_INT8_MIN_MEAN_COSINE},top10={TINY_INT8_MIN_TOPK}"
STAGE_TIMEOUT = 300  # seconds until a stage's progress line shows (runs share the cores; load imports torch)
EXIT_TIMEOUT = 120  # seconds a faulted run may take to exit
PROMPT_EXIT = 20  # seconds a SIGTERMed run may take to clean up and exit (1-5 s here)
WORKERS = 2  # runs at once
TERM_STAGES = ("load", "validate", "quantize", "write")  # "export": test_cli_signals.py
KILL_STAGES = ("load", "quantize", "write")  # each --force over the same output, one after the other
DISK_STAGES = ("export", "quantize")  # the disk is filled as each starts
READ_ONLY = {"parent": "out", "ancestor": "sub/out"}  # the output, below the read-only folder
DISK_SIZE = "2m"  # the tmpfs those runs write to (the tiny model's folder is ~0.5 MB)
FSIZE_LIMIT = 64 * 1024  # RLIMIT_FSIZE: below the tiny model's ~130 kB weights file
RENAME_HOLD_US = 2_000_000  # how long strace holds each rename of the publish
DROP_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]  # root then obeys mode bits
_PROGRESS = re.compile(rf"prepare: ({'|'.join(STAGES)})\b")
_REMOVED = re.compile(r"^warning: Removed (\S+), left by run \d+")


# -- running prepare ---------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _command(source: Path, output: Path, *extra: str) -> list[str]:
    flags = ["--no-benchmark", "--no-openvino", "--threads", "1", "--quality-target", TARGET]  # faults, not the IR
    return [*CLI, "--model", str(source), "--output", str(output), *flags, *extra]


class _Run:
    """A ``prepare`` subprocess, stderr read as it comes; frozen (SIGSTOP) as ``freeze_at``'s progress line shows."""

    def __init__(self, command: list[str], freeze_at: str | None = None, **popen: Any) -> None:
        self.freeze_at = freeze_at
        self.stages: list[str] = []
        self.text = ""
        self._settled = threading.Event()  # frozen, or stderr closed before the stage showed
        self.process = subprocess.Popen(
            command, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with contextlib.closing(self.process.stderr) as stream:
            while stream is not None and (chunk := os.read(stream.fileno(), 1 << 16)):
                self.text += decoder.decode(chunk)
                self.stages = list(dict.fromkeys(_PROGRESS.findall(self.text)))
                if self.freeze_at in self.stages and not self._settled.is_set():
                    self.process.send_signal(signal.SIGSTOP)  # from this thread: no hop before the freeze
                    self._settled.set()
        self._settled.set()

    def freeze(self) -> None:
        """Block until the run is frozen at ``freeze_at``; fail if it never gets there."""
        if not self._settled.wait(STAGE_TIMEOUT) or self.freeze_at not in self.stages:
            self.process.kill()
            self.wait()
            raise AssertionError(f"prepare never reached its {self.freeze_at} stage:\n{self.text}")

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def wait(self) -> int:
        code = self.process.wait(EXIT_TIMEOUT)
        self._reader.join(EXIT_TIMEOUT)
        return code


def _beside(output: Path) -> dict[str, list[str]]:
    """What is in ``output``'s parent: each entry's name with the files inside it (relative, sorted)."""
    if not output.parent.is_dir():
        return {}
    return {
        entry.name: sorted(str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else []
        for entry in output.parent.iterdir()
    }


def _fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``folder`` with its sha256 (folders: ``""``) and mode."""
    return {str(p.relative_to(folder)): (_sha256(p), p.stat().st_mode) for p in sorted(folder.rglob("*"))}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _listed(folder: Path) -> bool:
    """Whether ``folder``'s manifest lists exactly the files in it, with their size and sha256."""
    try:
        listed = {name: (e["sha256"], e["size"]) for name, e in read_json(folder / MANIFEST_NAME)["files"].items()}
        return listed == {name: (e["sha256"], e["size"]) for name, e in file_table(folder).items()}
    except OSError:
        return False


def _assert_complete(folder: Path) -> None:
    """A published folder: the manifest lists exactly its files, and the encoder loads it."""
    assert _listed(folder), _beside(folder / "x")
    encoder = OnnxSentenceEncoder(folder, threads=1, cache_size=0, metrics=False)
    assert encoder.encode(TEXTS[:2]).shape == (2, HIDDEN)


def _lines(stderr: str) -> list[str]:
    """stderr without the progress bar: its ``\\r`` redraws and ``\\n`` lines alike."""
    return [line.strip() for line in re.split(r"[\r\n]", stderr) if line.strip() and not line.startswith("prepare")]


def _error(stderr: str) -> str:
    """The one ``error:`` line, which ends stderr; any other line is a ``warning:`` (no traceback, no noise)."""
    lines = _lines(stderr)
    assert lines and lines[-1].startswith("error: "), stderr
    assert all(line.startswith("warning: ") for line in lines[:-1]), stderr
    assert "Traceback" not in stderr
    return lines[-1]


@dataclass(frozen=True)
class Outcome:
    """One faulted run: its exit, its stderr, and what was beside the output at the fault and after."""

    returncode: int
    stderr: str
    stages: list[str]  # the progress lines it drew
    at_fault: dict[str, list[str]]
    left: dict[str, list[str]]
    seconds: float  # from the fault to the exit
    output: dict[str, tuple[str, int]] | None  # the output folder's fingerprint after, if there is one
    held: list[tuple[dict[str, list[str]], bool]] = field(default_factory=list)  # see _replaced


def _finish(run: _Run, output: Path, at_fault: dict[str, list[str]], start: float) -> Outcome:
    code, seconds = run.wait(), time.monotonic() - start
    fingerprint = _fingerprint(output) if output.is_dir() else None
    return Outcome(code, run.text, run.stages, at_fault, _beside(output), seconds, fingerprint)


def _frozen_then(source: Path, output: Path, stage: str, fault: Callable[[_Run], None], *extra: str) -> Outcome:
    """Freeze a run as ``stage`` starts, inject ``fault``, let it go, and wait for its exit."""
    run = _Run(_command(source, output, *extra), freeze_at=stage)
    run.freeze()
    at_fault, start = _beside(output), time.monotonic()
    fault(run)
    run.resume()
    return _finish(run, output, at_fault, start)


def _signal(signum: signal.Signals) -> Callable[[_Run], None]:
    return lambda run: run.process.send_signal(signum)


# -- the faults -----------------------------------------------------------------------------------


def _fill(folder: Path) -> None:
    """Write zeros into ``folder/filler`` until its filesystem is full."""
    with contextlib.suppress(OSError), (folder / "filler").open("wb", buffering=0) as file:
        while True:
            file.write(b"\0" * 4096)


@contextlib.contextmanager
def _tmpfs(folder: Path) -> Iterator[bool]:
    """Mount a ``DISK_SIZE`` tmpfs on ``folder`` (root only); yield whether it could; unmount it after."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield False
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)], check=False)
    try:
        yield mount.returncode == 0
    finally:
        if mount.returncode == 0:
            subprocess.run(["umount", str(folder)], check=False)
            if os.path.ismount(folder):  # still busy: detach it now, the kernel frees it when unused
                subprocess.run(["umount", "--lazy", str(folder)], check=False)


def _disk_full(source: Path, disk: Path, stage: str) -> Outcome | None:
    """The disk (a tmpfs) filled as ``stage`` starts; None where no tmpfs can be mounted."""
    with _tmpfs(disk) as mounted:
        return _frozen_then(source, disk / "out", stage, lambda run: _fill(disk)) if mounted else None


def _file_too_large(source: Path, output: Path) -> Outcome:
    """RLIMIT_FSIZE in the child: its first write past the limit fails with EFBIG (Python ignores SIGXFSZ)."""
    limit = functools.partial(resource.setrlimit, resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    return _finish(_Run(_command(source, output), preexec_fn=limit), output, {}, time.monotonic())


def _publish_theirs(output: Path) -> Callable[[_Run], None]:
    def publish(run: _Run) -> None:
        output.mkdir()
        (output / "theirs.txt").write_text("published by the other run\n")

    return publish


def _read_only_parent(source: Path, output: Path, parent: Path) -> Outcome:
    """``parent`` (an ancestor of ``output``) made read-only; root loses the capability to ignore that."""
    parent.mkdir(parents=True)
    parent.chmod(0o555)
    try:
        command = _command(source, output)
        run = _Run([*DROP_DAC, *command] if os.geteuid() == 0 else command)
        return _finish(run, output, {}, time.monotonic())
    finally:
        parent.chmod(0o755)


def _existing(source: Path, output: Path, existing: Path) -> Outcome:
    shutil.copytree(existing, output)
    return _finish(_Run(_command(source, output)), output, {}, time.monotonic())


# -- the --force runs over one output: killed at each stage, then one that completes --------------


def _strace() -> list[str] | None:
    """strace holding every rename at entry for ``RENAME_HOLD_US``, or None without strace or ptrace."""
    path = shutil.which("strace")
    if path is None or subprocess.run([path, "-o", "/dev/null", "true"], capture_output=True).returncode != 0:
        return None
    renames = "rename,renameat2"  # os.replace, and RENAME_EXCHANGE; safetensors' renameat is not the publish
    hold = f"inject={renames}:delay_enter={RENAME_HOLD_US}"
    return [path, "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-e", f"trace={renames}", "-e", hold]


def _tracee(tracer: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{tracer}/task/{tracer}/children").read_text().split()[0])
    return None


def _in_trace_stop(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "t"
    return False


def _held(pid: int) -> bool:
    """Stopped by strace for longer than a syscall's own stop lasts: a held rename."""
    if not _in_trace_stop(pid):
        return False
    time.sleep(0.2)
    return _in_trace_stop(pid)


def _replaced(source: Path, output: Path, old: dict[str, tuple[str, int]]) -> Outcome:
    """A ``--force`` run over ``output``; at each held rename, whether the output path is a complete folder.

    Complete: the old folder as it was (``old``), or the new one as its manifest lists it.
    """
    strace = _strace()
    run = _Run([*(strace or []), *_command(source, output, "--force")])
    held: list[tuple[dict[str, list[str]], bool]] = []
    while strace and run.process.poll() is None:
        pid = _tracee(run.process.pid)
        if pid is None or not _held(pid):
            time.sleep(0.01)
            continue
        beside = _beside(output)
        complete = output.is_dir() and (_fingerprint(output) == old or _listed(output))
        if _in_trace_stop(pid):  # still held: nothing moved while we looked
            held.append((beside, complete))
        while _in_trace_stop(pid):
            time.sleep(0.01)
    return replace(_finish(run, output, {}, time.monotonic()), held=held)


def _force_runs(
    source: Path, output: Path, old: dict[str, tuple[str, int]], futures: dict[str, Future[Outcome]]
) -> None:
    """SIGKILL a ``--force`` run over ``output`` (as ``old``) at each of ``KILL_STAGES``, then let one complete.

    One after the other, so each run starts by clearing what the one before left.
    """
    jobs: dict[str, Callable[[], Outcome]] = {
        stage: functools.partial(_frozen_then, source, output, stage, _signal(signal.SIGKILL), "--force")
        for stage in KILL_STAGES
    }
    jobs["replaced"] = functools.partial(_replaced, source, output, old)
    for name, job in jobs.items():
        try:
            futures[name].set_result(job())
        except BaseException as exc:
            futures[name].set_exception(exc)


@dataclass(frozen=True)
class Faults:
    """The module's runs, started together: ``outcome(key)`` waits for one."""

    futures: dict[str, Future[Any]]
    source: Path
    root: Path
    existing: Path  # a complete prepared folder: what the output was before, where there was one
    force_output: Path  # the output the SIGKILLed --force runs were stopped over
    force_before: dict[str, tuple[str, int]]  # and its fingerprint before them

    def outcome(self, key: str) -> Any:
        return self.futures[key].result()


@pytest.fixture(scope="module")
def faults(make_st_model, prepared_base, tmp_path_factory) -> Iterator[Faults]:
    source, existing = make_st_model(TinySpec("bert")), prepared_base("bert")
    root = tmp_path_factory.mktemp("faults")
    force_output = root / "force" / "out"
    shutil.copytree(existing, force_output)
    (force_output / "old.txt").write_text("from the previous prepare\n")
    force_before = _fingerprint(force_output)
    jobs: dict[str, Callable[[], Any]] = {}
    for stage in TERM_STAGES:
        jobs[f"SIGTERM {stage}"] = functools.partial(
            _frozen_then, source, root / f"term-{stage}" / "out", stage, _signal(signal.SIGTERM)
        )
    for stage in DISK_STAGES:
        jobs[f"disk {stage}"] = functools.partial(_disk_full, source, root / f"disk-{stage}", stage)
    jobs["file size"] = functools.partial(_file_too_large, source, root / "fsize" / "out")
    appears = root / "appears" / "out"
    jobs["appears"] = functools.partial(_frozen_then, source, appears, "write", _publish_theirs(appears))
    for which, below in READ_ONLY.items():
        parent = root / f"read-only-{which}" / "parent"
        jobs[f"read-only {which}"] = functools.partial(_read_only_parent, source, parent / below, parent)
    jobs["existing"] = functools.partial(_existing, source, root / "existing" / "out", existing)
    forced: dict[str, Future[Outcome]] = {name: Future() for name in (*KILL_STAGES, "replaced")}
    pool = ThreadPoolExecutor(WORKERS)
    try:
        pool.submit(_force_runs, source, force_output, force_before, forced)  # the longest chain first
        futures: dict[str, Future[Any]] = {key: pool.submit(job) for key, job in jobs.items()}
        futures.update({f"SIGKILL {stage}": forced[stage] for stage in KILL_STAGES}, replaced=forced["replaced"])
        yield Faults(futures, source, root, existing, force_output, force_before)
    finally:  # after `pytest -x` or a deselection, runs no test waits for are not started
        pool.shutdown(wait=True, cancel_futures=True)


# -- 1. signals at each stage ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", TERM_STAGES)
def test_sigterm_at_a_stage_exits_143_promptly_and_leaves_nothing(faults, stage):
    outcome: Outcome = faults.outcome(f"SIGTERM {stage}")
    assert outcome.stages[-1] == stage  # frozen in that stage, and it went no further
    assert outcome.returncode == 128 + signal.SIGTERM, outcome.stderr
    assert _error(outcome.stderr) == "error: terminated by SIGTERM"
    assert outcome.seconds < PROMPT_EXIT
    assert outcome.left == {}  # no staging folder, no output
    if stage != "load":  # the staging folder is made after the load stage
        assert [name.startswith(".out.tmp-") for name in outcome.at_fault] == [True], outcome.at_fault


@pytest.mark.parametrize("stage", KILL_STAGES)
def test_sigkill_at_a_stage_leaves_the_old_output_untouched(faults, stage):
    outcome: Outcome = faults.outcome(f"SIGKILL {stage}")
    assert outcome.stages[-1] == stage
    assert outcome.returncode == -signal.SIGKILL
    assert outcome.output == faults.force_before  # a --force run killed before publishing: the old output
    staged = sorted(name for name in outcome.left if name != "out")
    if stage == "load":  # the staging folder is made after the load stage
        assert staged == []
    else:  # what a killed run leaves is its staging folder, as it was, beside the output
        assert [name.startswith(".out.tmp-") for name in staged] == [True]
        assert outcome.left[staged[0]] == outcome.at_fault[staged[0]]


def test_each_next_run_clears_what_the_killed_run_before_left(faults):
    runs = [faults.outcome(f"SIGKILL {stage}") for stage in KILL_STAGES] + [faults.outcome("replaced")]
    for before, after in itertools.pairwise(runs):
        stale = [name for name in before.left if name != "out"]
        removed = [Path(m[1]).name for m in map(_REMOVED.match, _lines(after.stderr)) if m]
        assert removed == stale, after.stderr
    replaced = runs[-1]
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(_beside(faults.force_output)) == ["out"]
    _assert_complete(faults.force_output)
    assert not (faults.force_output / "old.txt").exists()  # replaced, not merged


# -- 4. an existing output ---------------------------------------------------------------------------


def test_force_replace_never_leaves_the_output_path_empty(faults):
    replaced: Outcome = faults.outcome("replaced")
    assert replaced.returncode == 0, replaced.stderr
    if _strace() is None:
        pytest.skip("no strace with ptrace here: the publish could not be held")
    assert replaced.held, "strace held no rename of the publish"
    assert [complete for _, complete in replaced.held] == [True] * len(replaced.held), replaced.held


def test_existing_output_without_force_is_refused_and_left_byte_identical(faults):
    outcome: Outcome = faults.outcome("existing")
    output = faults.root / "existing" / "out"
    assert outcome.returncode == 1
    assert _error(outcome.stderr) == f"error: Output {str(output)!r} already exists; pass --force to replace it."
    assert outcome.output == _fingerprint(faults.existing)  # copytree keeps the modes
    assert sorted(outcome.left) == ["out"]
    assert outcome.stages == []  # refused before the model is loaded


def test_output_that_appears_meanwhile_is_not_replaced(faults):
    outcome: Outcome = faults.outcome("appears")
    output = faults.root / "appears" / "out"
    assert outcome.returncode == 1, outcome.stderr
    assert _error(outcome.stderr) == f"error: Output {str(output)!r} already exists; pass --force to replace it."
    assert outcome.left == {"out": ["theirs.txt"]}  # theirs stays; our staging folder is gone


# -- 2. read-only parent -----------------------------------------------------------------------------


@pytest.mark.parametrize("which", READ_ONLY)
def test_read_only_parent_is_a_clear_error(faults, which):
    outcome: Outcome = faults.outcome(f"read-only {which}")
    parent = faults.root / f"read-only-{which}" / "parent"
    output = parent / READ_ONLY[which]
    assert outcome.returncode == 1, outcome.stderr
    line = _error(outcome.stderr)
    assert line.startswith(f"error: Cannot write output {str(output)!r}: its parent folder {str(parent)!r}"), line
    assert "is not writable" in line
    assert list(parent.iterdir()) == []
    assert outcome.stages == []  # refused before the model is loaded


# -- 3. full disk ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", DISK_STAGES)
def test_full_disk_is_a_clear_error_and_publishes_nothing(faults, stage):
    outcome: Outcome | None = faults.outcome(f"disk {stage}")
    if outcome is None:
        pytest.skip("no tmpfs can be mounted here (needs root); the file size limit test covers EFBIG")
    output = faults.root / f"disk-{stage}" / "out"
    assert outcome.stages[-1] == stage
    assert outcome.returncode == 1, outcome.stderr
    line = _error(outcome.stderr)
    assert line.startswith(f"error: No space left on device while writing output {str(output)!r}"), line
    assert "nothing was published" in line and "MB free now" in line
    assert outcome.left == {"filler": []}  # no output, no staging folder


def test_file_size_limit_is_a_clear_error_and_publishes_nothing(faults):
    outcome: Outcome = faults.outcome("file size")
    output = faults.root / "fsize" / "out"
    assert outcome.returncode == 1, outcome.stderr
    line = _error(outcome.stderr)
    assert line.startswith(f"error: File too large while writing output {str(output)!r}"), line
    assert "ulimit -f" in line
    assert outcome.left == {}
