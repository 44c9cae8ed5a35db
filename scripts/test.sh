#!/usr/bin/env bash
# The test command: install (idempotent), then ruff, mypy --strict and pytest. Extra args go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FEA_VENV:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
"$VENV/bin/ruff" check src tests examples bench
"$VENV/bin/mypy" src
"$VENV/bin/python" -m pytest "$@"
