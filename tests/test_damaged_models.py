"""Every file of a prepared folder damaged every way: a clear error naming the file, or the same vectors.

Damages: truncated to half, emptied, one byte flipped, deleted, made unreadable, swapped for the
same file of another model (the tiny MPNet). Whole-folder cases: a manifest from another model,
and another model's ONNX files. The outcome table the test
builds (and prints on failure) has one row per file and damage:

- ``error``: a ``ModelFolderError`` (our class) whose message names the damaged file;
- ``same``: the folder loads and every vector is bit-identical to the intact folder's;
- anything else — a raw exception, or a load that returns different vectors — fails the test.

Files that change no vector (``REPORT.md``, ``report.json``, the ONNX file not loaded) may come
out ``same``; every file that does must come out ``error``. Unreadable is made real even as
root: the worker runs without ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH`` (``setpriv``), so
mode 000 denies it as it would any user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.errors import ModelFolderError
from fastembed_adapter.layout import MANIFEST_NAME

TEXTS = ["The quick brown fox.", "How do I reset my password?", "", "Numbers 42 and emoji 🎉", "a b " * 40]
# Descriptive files and the model files the encoder does not load (the FP32 ONNX file, the OpenVINO IR that
# runtime="openvino" loads; tests/test_openvino.py damages that one): damage may go unnoticed, vectors may not change.
NOT_READ = {
    "REPORT.md",
    "report.json",
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "openvino/openvino_model.xml",
    "openvino/openvino_model.bin",
}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


DAMAGES: dict[str, Callable[[Path], None]] = {"truncated": _truncate, "emptied": _empty, "flipped": _flip}
DAMAGES["deleted"] = _delete


def _outcome(folder: Path, reference: np.ndarray) -> tuple[str, str]:
    """``(outcome, detail)`` of loading ``folder`` and encoding ``TEXTS``."""
    try:
        vectors = OnnxSentenceEncoder(folder, cache_size=0, metrics=False).encode(TEXTS)
    except ModelFolderError as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a raw exception is a failure of the test, reported in the table
        return "raw", f"{type(exc).__name__}: {exc}"
    return ("same", "") if np.array_equal(vectors, reference) else ("different", "vectors changed")


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _check(table: list[tuple[str, str, str, str]]) -> None:
    """Each row is an error naming its file, or the same vectors; print the whole table otherwise."""
    bad = [row for row in table if not (row[2] == "same" or (row[2] == "error" and _names(row[0], row[3])))]
    rows = "\n".join(f"{n:40s} {d:10s} {o:9s} {t[:150]}" for n, d, o, t in table)
    assert not bad, f"{len(bad)} damaged loads went wrong: {bad}\n\nfull table:\n{rows}"


def _names(name: str, message: str) -> bool:
    """Whether an error message names the damaged file (a foreign manifest: says the manifest does not match)."""
    return Path(name).name in message or (name == MANIFEST_NAME and "does not match the manifest" in message)


def _restore(folder: Path) -> None:
    """Make a folder that had modes 000 readable again, top-down, so it can be removed."""
    folder.chmod(0o755)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            Path(root, name).chmod(0o755)
        for name in files:
            Path(root, name).chmod(0o644)


@pytest.fixture(scope="module")
def intact(prepared_base) -> tuple[Path, np.ndarray]:
    folder = prepared_base("bert")
    return folder, OnnxSentenceEncoder(folder, cache_size=0, metrics=False).encode(TEXTS)


def test_every_file_damaged_every_way(intact, prepared_base, tmp_path):
    folder, reference = intact
    other = prepared_base("mpnet")
    table = []
    for name in _files(folder):
        damages = dict(DAMAGES)
        if (other / name).is_file() and (other / name).read_bytes() != (folder / name).read_bytes():
            damages["swapped"] = lambda path, name=name: shutil.copyfile(other / name, path)
        for damage, apply in damages.items():
            copy = tmp_path / f"{len(table)}"
            shutil.copytree(folder, copy)
            apply(copy / name)
            table.append((name, damage, *_outcome(copy, reference)))
            shutil.rmtree(copy)
    _check(table)
    vector_files = [name for name in _files(folder) if name not in NOT_READ]
    errors = {(name, damage) for name, damage, outcome, _ in table if outcome == "error"}
    for name in vector_files:  # every damage of a file that makes the vectors is caught
        if name != MANIFEST_NAME:
            assert all((name, damage) in errors for damage in DAMAGES), (name, sorted(errors))
    assert len(table) >= 4 * len(_files(folder))


def test_whole_folder_swaps(intact, prepared_base, tmp_path):
    folder, reference = intact
    other = prepared_base("mpnet")
    table = []
    manifest = tmp_path / "manifest"
    shutil.copytree(folder, manifest)
    shutil.copyfile(other / MANIFEST_NAME, manifest / MANIFEST_NAME)
    table.append((MANIFEST_NAME, "other model's manifest", *_outcome(manifest, reference)))
    graph = tmp_path / "graph"
    shutil.copytree(folder, graph)
    for name in _files(other):
        if name.startswith("onnx/"):
            shutil.copyfile(other / name, graph / name)
    table.append(("onnx/model_quint8_avx2.onnx", "other model's graphs", *_outcome(graph, reference)))
    assert [row[2] for row in table] == ["error", "error"], table
    assert all("does not match the manifest" in row[3] for row in table), table
    # Without a manifest only the graph's width can be checked against the folder (test_encoder.py
    # checks a foreign graph of another width); a same-width graph of another model is not detectable.


_WORKER = """
import json, sys
import numpy as np
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.errors import ModelFolderError
texts, reference = json.loads(sys.argv[1]), np.load(sys.argv[2])
for folder in sys.argv[3:]:
    try:
        same = np.array_equal(OnnxSentenceEncoder(folder, cache_size=0, metrics=False).encode(texts), reference)
        print(json.dumps(["same" if same else "different", ""]))
    except ModelFolderError as exc:
        print(json.dumps(["error", f"{type(exc).__name__}: {exc}"]))
    except Exception as exc:
        print(json.dumps(["raw", f"{type(exc).__name__}: {exc}"]))
"""


def _without_read_override() -> list[str]:
    """A command prefix under which mode 000 denies reading (root keeps DAC override otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs util-linux setpriv to drop CAP_DAC_OVERRIDE for this test"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_every_file_unreadable(intact, tmp_path):
    folder, reference = intact
    np.save(tmp_path / "reference.npy", reference)
    names = [*_files(folder), "onnx", "."]
    copies = []
    for index, name in enumerate(names):
        copy = tmp_path / f"{index}"
        shutil.copytree(folder, copy)
        (copy / name).chmod(0)
        copies.append(str(copy))
    reference_file = str(tmp_path / "reference.npy")
    command = [*_without_read_override(), sys.executable, "-c", _WORKER, json.dumps(TEXTS), reference_file]
    try:
        done = subprocess.run([*command, *copies], capture_output=True, text=True, timeout=300)
    finally:
        for copy in copies:
            _restore(Path(copy))
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    table = [(name, "unreadable", *outcome) for name, outcome in zip(names, outcomes, strict=True)]
    for name, _, outcome, detail in table:
        if name in (".", "onnx"):
            assert outcome == "error" and "ModelAccessError" in detail, (name, detail)
    _check([row for row in table if row[0] not in (".", "onnx")])
    denied = [row for row in table if "ModelAccessError" in row[3]]
    assert all("permission denied" in row[3] for row in denied)
    assert len(denied) >= len(names) - len(NOT_READ) - 1, table  # not a load that fails for another reason
