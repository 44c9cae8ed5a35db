#!/usr/bin/env bash
# Install the serving runtime — fastembed-adapter with its runtime and `serve` dependencies only
# (onnxruntime, tokenizers, numpy, starlette, uvicorn, ...; no torch, no transformers) — into the
# Python environment of PYTHON. The Dockerfile's runtime stage runs exactly this script, and
# tests/test_server_deploy.py runs it into a fresh venv and starts the server from there.
#
#   scripts/install-runtime.sh [PYTHON [SOURCE]]
#     PYTHON  interpreter of the target environment   (default: python3)
#     SOURCE  a fastembed-adapter wheel or source tree (default: this repository)
#
# pip's cache is honoured (PIP_CACHE_DIR / PIP_NO_CACHE_DIR), so repeated installs are quick.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-python3}
SRC=${2:-$ROOT}
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$PY" -m pip install -q "${SRC}[serve]"

# Fail the build here, not at the first request, if the heavy stack slipped in.
"$PY" - <<'PYCODE'
import importlib.util
import sys

heavy = [name for name in ("torch", "transformers", "optimum", "sentence_transformers", "onnx")
         if importlib.util.find_spec(name) is not None]
if heavy:
    sys.exit(f"install-runtime: the runtime environment must not contain {heavy}")
import fastembed_adapter.server  # noqa: F401  (raises MissingExtraError if `serve` is incomplete)
print(f"install-runtime: fastembed-adapter {fastembed_adapter.__version__} with `serve` ready", file=sys.stderr)
PYCODE
