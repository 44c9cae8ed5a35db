"""Write the output folder atomically: build beside it, then rename; never a half-written folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError
from ..layout import MANIFEST_NAME, file_sha256

__all__ = ["check_output", "file_table", "staging", "write_json"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack", ".ckpt")


def check_output(output: Path, force: bool) -> None:
    """Refuse early to overwrite an existing path unless ``force``."""
    if output.exists() and not force:
        raise OutputExistsError(f"Output {str(output)!r} already exists; pass --force to replace it.")


def write_json(path: Path, data: Any) -> None:
    """Write pretty, key-sorted JSON with a trailing newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


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
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.replace(output, old / output.name)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, output)
