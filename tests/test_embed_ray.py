"""``embed --engine ray`` on a local Ray with 2 CPUs, against the local job; ``fastembed_adapter.ray.Embedder``.

Each Ray run is a subprocess (its own local Ray, started and stopped by it), so no Ray state
outlives a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastembed_adapter import CorpusError, InvalidInputError, OnnxSentenceEncoder
from fastembed_adapter.batch import EmbedSettings, JobOptions, Output, Source, embed_corpus
from tiny import FP32_FILE, TEXTS

pytest.importorskip("ray.data", reason="the 'ray' extra")
from fastembed_adapter.ray import Embedder

# The same INT8 file embedding a row in another batch: rows of INT8 files depend a little on their batch.
RAY_MIN_COSINE = 0.99999
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


@pytest.fixture(scope="module")
def model(prepared_base) -> Path:
    return prepared_base("bert")


def _corpus(path: Path, rows: int) -> list[str]:
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(rows)]
    lines = [json.dumps({"id": f"d{i}", "text": text}) for i, text in enumerate(texts)]
    lines.insert(37, '{"id": "bad", "text": 12}')  # a bad row: handled as the local job handles it
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return texts


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fastembed_adapter.cli", "embed", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_ray_engine_matches_the_local_job_row_by_row(model, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    _corpus(corpus, 600)
    common = ["--model", str(model), "--id-column", "id", "--on-bad-row", "skip", "--part-size", "100", "--json"]
    local = _cli(str(corpus), "--output", str(tmp_path / "local.parquet"), *common)
    assert local.returncode == 0, local.stderr
    ray_run = _cli(
        str(corpus), "--output", str(tmp_path / "ray.parquet"), *common, "--engine", "ray", "--actors", "2",
        "--cpus-per-actor", "1",
    )  # fmt: skip
    assert ray_run.returncode == 0, ray_run.stderr[-3000:]
    summary = json.loads(ray_run.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "ray" and summary["rows"] == 601 and summary["embedded"] == 600
    assert summary["rejected"] == 1
    a, b = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert a.schema == b.schema
    assert b.column("id").to_pylist() == a.column("id").to_pylist() == [f"d{i}" for i in range(600)]
    x, y = (np.asarray(t.column("embedding").to_pylist()) for t in (a, b))
    assert _cosines(x, y).min() >= RAY_MIN_COSINE
    local_rejects = (tmp_path / "local.parquet.rejects.jsonl").read_text()
    assert (tmp_path / "ray.parquet.rejects.jsonl").read_text() == local_rejects
    assert json.loads(local_rejects)["line"] == 38

    failed = _cli(str(corpus), "--output", str(tmp_path / "fail.parquet"), "--model", str(model), "--engine", "ray")
    assert failed.returncode == 1 and "line 38: 'text' is a int" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "fail.parquet").exists()
    resumed = _cli(
        str(corpus), "--output", str(tmp_path / "r.parquet"), "--model", str(model), "--engine", "ray", "--resume"
    )
    assert resumed.returncode == 1 and "--resume continues a local job" in resumed.stderr


def test_readme_example_runs_on_local_ray(model, tmp_path):
    source = tmp_path / "passages.parquet"
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(300)]
    pq.write_table(pa.table({"pid": list(range(300)), "text": texts}), source)
    command = [sys.executable, str(ROOT / "examples" / "ray_embed.py"), str(model), str(source), str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "out").sort_by("pid")
    assert table.column("pid").to_pylist() == list(range(300)) and table.column("text").to_pylist() == texts
    expected = OnnxSentenceEncoder(model, cache_size=0).encode(texts, normalize_embeddings=True)
    got = np.asarray(table.column("embedding").to_pylist())
    assert _cosines(got, expected).min() >= RAY_MIN_COSINE


def test_embedder_outside_ray(model, tmp_path):
    embedder = Embedder(str(model), file_name=FP32_FILE, id_column="id", threads=1)
    batch = pa.table({"id": ["a", "b"], "text": ["first text", "second text"]})
    out = embedder(batch)
    assert out.column_names == ["id", "text", "embedding"]
    expected = OnnxSentenceEncoder(model, file_name=FP32_FILE, cache_size=0).encode(["first text", "second text"])
    np.testing.assert_allclose(np.asarray(out.column("embedding").to_pylist()), expected, atol=1e-6, rtol=0)
    assert embedder({"id": np.array(["a"]), "text": np.array(["first text"])}).num_rows == 1  # dict-of-numpy batches
    with pytest.raises(CorpusError, match=r"row 1 of the batch \(id='b'\): 'text' is null"):
        embedder(pa.table({"id": ["a", "b"], "text": ["x", None]}))
    with pytest.raises(CorpusError, match="no column 'text'"):
        embedder(pa.table({"body": ["x"]}))
    with pytest.raises(InvalidInputError, match="needs ranges"):
        Embedder(str(model), precision="int8")
    ranges = np.vstack((expected.min(axis=0), expected.max(axis=0)))
    quantized = Embedder(str(model), file_name=FP32_FILE, precision="int8", ranges=ranges, threads=1)(batch)
    assert quantized.schema.field("embedding").type == pa.list_(pa.int8(), expected.shape[1])


def test_local_job_and_embedder_agree_on_settings(model, tmp_path):
    """The Ray actors compute what the local job computes with the same settings (prompt-free, normalized)."""
    corpus = tmp_path / "c.jsonl"
    texts = _corpus(corpus, 50)
    out = tmp_path / "o.parquet"
    settings = EmbedSettings(model=str(model), file_name=FP32_FILE, normalize=True, truncate_dim=8)
    embed_corpus(Source.open(corpus, id_column="id"), Output.of(out), settings, JobOptions(on_bad_row="skip"))
    embedder = Embedder(str(model), file_name=FP32_FILE, normalize=True, truncate_dim=8, threads=1)
    direct = embedder(pa.table({"text": texts}))
    np.testing.assert_allclose(
        np.asarray(pq.read_table(out).column("embedding").to_pylist()),
        np.asarray(direct.column("embedding").to_pylist()),
        atol=1e-6,
        rtol=0,
    )
