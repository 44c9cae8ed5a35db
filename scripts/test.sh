#!/usr/bin/env bash
# The test command: install (idempotent), then ruff, mypy --strict and pytest. Extra args go to pytest.
#   FEA_LINT=0  skip ruff and mypy (CI's second, sentence-transformers 5 stack runs only tests)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FEA_VENV:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ "${FEA_LINT:-1}" != 0 ]; then
  "$VENV/bin/ruff" check src tests examples bench
  "$VENV/bin/mypy" src
fi
"$VENV/bin/python" -m pytest "$@"
