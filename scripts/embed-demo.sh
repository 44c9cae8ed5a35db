#!/usr/bin/env bash
# The corpus job end to end on the model quickstart.sh prepares (it runs quickstart.sh first if that model is
# missing): a few thousand built-in texts from a JSONL file into Parquet with a progress bar; the job stopped
# (SIGTERM) after its first parts and resumed, compared with an uninterrupted run; then the same job on a local
# Ray (--engine ray), compared row by row.
#   FEA_MODEL_DIR  model folder            (default: <repo>/models/all-MiniLM-L6-v2, as quickstart.sh writes it)
#   FEA_DEMO_DIR   where the files go      (default: <repo>/models/embed-demo)
#   FEA_DEMO_ROWS  rows in the corpus      (default 3000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${FEA_VENV:-$ROOT/.venv}
MODEL=${FEA_MODEL_DIR:-$ROOT/models/all-MiniLM-L6-v2}
WORK=${FEA_DEMO_DIR:-$ROOT/models/embed-demo}
ROWS=${FEA_DEMO_ROWS:-3000}
PART=$(( ROWS / 6 > 0 ? ROWS / 6 : 1 ))
export HF_HUB_OFFLINE=1
if [ ! -f "$MODEL/fastembed_adapter.json" ]; then
  FEA_OUTPUT=$MODEL bash "$ROOT/scripts/quickstart.sh" >/dev/null
fi
FEA="$VENV/bin/fastembed-adapter"
mkdir -p "$WORK"
rm -rf "$WORK"/corpus.parquet* "$WORK"/straight.parquet* "$WORK"/ray.parquet*
"$VENV/bin/python" - "$WORK/corpus.jsonl" "$ROWS" <<'PY'
import json, sys
from fastembed_adapter.texts import calibration_texts, held_out_texts, validation_texts

texts = [text for text in validation_texts() + calibration_texts() + held_out_texts() if len(text) <= 300]
with open(sys.argv[1], "w", encoding="utf-8") as file:
    for i in range(int(sys.argv[2])):
        file.write(json.dumps({"id": f"doc-{i}", "text": f"{texts[i % len(texts)]} (#{i})"}, ensure_ascii=False) + "\n")
PY
JOB=(embed "$WORK/corpus.jsonl" --model "$MODEL" --id-column id --part-size "$PART")

# SIGTERM, as docker stop or a scheduler would send (a background job of a script ignores Ctrl-C's SIGINT)
echo "== embed, stopped with SIGTERM after two parts" >&2
"$FEA" "${JOB[@]}" --output "$WORK/corpus.parquet" --progress &
job=$!
until [ -f "$WORK/corpus.parquet.parts/job.json" ] && \
  [ "$("$VENV/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["parts"]))' \
        "$WORK/corpus.parquet.parts/job.json" 2>/dev/null || echo 0)" -ge 2 ]; do
  kill -0 "$job" 2>/dev/null || break
  sleep 0.2
done
kill -TERM "$job" 2>/dev/null || true
wait "$job" || echo "(exit $? — stopped, as intended)" >&2

echo "== embed --resume" >&2
"$FEA" "${JOB[@]}" --output "$WORK/corpus.parquet" --progress --resume
echo "== embed straight through, for comparison" >&2
"$FEA" "${JOB[@]}" --output "$WORK/straight.parquet"
echo "== embed --engine ray (a local Ray on this machine)" >&2
"$FEA" "${JOB[@]}" --output "$WORK/ray.parquet" --engine ray

"$VENV/bin/python" - "$WORK" <<'PY'
import sys
import numpy as np
import pyarrow.parquet as pq

work = sys.argv[1]
resumed, straight, ray = (pq.read_table(f"{work}/{name}.parquet") for name in ("corpus", "straight", "ray"))
print(f"resumed == uninterrupted: {resumed.equals(straight)} ({resumed.num_rows} rows)")
a, b = (np.asarray(t.column("embedding").to_pylist()) for t in (straight, ray))
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
same_ids = ray.column("id").to_pylist() == straight.column("id").to_pylist()
print(f"ray == local: ids {same_ids}, min cosine {cos.min():.7f}")
sys.exit(0 if resumed.equals(straight) and same_ids and cos.min() >= 0.99999 else 1)
PY
