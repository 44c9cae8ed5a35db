"""Write the output folder atomically: build beside it, then rename; never a half-written folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OutputExistsError
from ..layout import MANIFEST_NAME, external_data_path, file_sha256

if TYPE_CHECKING:
    import onnx

__all__ = ["check_output", "file_table", "remove_onnx", "save_onnx", "staging", "write_json"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack", ".ckpt")


def check_output(output: Path, force: bool) -> None:
    """Refuse early to overwrite an existing path unless ``force``."""
    if output.exists() and not force:
        raise OutputExistsError(f"Output {str(output)!r} already exists; pass --force to replace it.")


def write_json(path: Path, data: Any) -> None:
    """Write pretty, key-sorted JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` to ``path`` with its weights in ``<file>.onnx_data`` beside it.

    ONNX Runtime maps that file instead of parsing and copying the weights out of the protobuf:
    all-mpnet-base-v2 INT8 builds its session in ~0.13 s instead of ~0.26 s, with ~80 MB less RSS.
    Tensors under 1 KiB stay inline. ``model`` gives up its weight bytes to the file (onnx clears them).
    """
    import onnx

    domains = {node.domain for node in _all_nodes(model.graph)} - {"", "ai.onnx"}
    declared = {entry.domain for entry in model.opset_import}
    # ORT's fusions add com.microsoft nodes without declaring the domain (its own save adds it)
    model.opset_import.extend(onnx.helper.make_opsetid(domain, 1) for domain in sorted(domains - declared))
    data = external_data_path(path)
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    if data.exists():  # absent when no tensor reaches 1 KiB
        os.chmod(data, 0o666 & ~_umask())  # onnx creates it owner-only; readable like the .onnx beside it


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Nodes of ``graph`` and of its subgraphs (``If`` branches, loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from _all_nodes(sub)


def _umask() -> int:
    """The process umask, read from /proc on Linux (setting it to read it would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_onnx(path: Path) -> None:
    """Delete an ONNX file and its external weights file, if present."""
    path.unlink(missing_ok=True)
    external_data_path(path).unlink(missing_ok=True)


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, size}}`` for every file in ``folder`` except the manifest."""
    table = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST_NAME:
            table[rel] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    return table


@contextmanager
def staging(output: Path, force: bool) -> Iterator[Path]:
    """Yield a temp folder beside ``output``; on success rename it to ``output``, on error delete it."""
    check_output(output, force)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    check_output(output, force)
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it owner-only; publish it like a plain mkdir
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.replace(output, old / output.name)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, output)
