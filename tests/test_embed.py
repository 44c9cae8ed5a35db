"""``embed``: corpus formats in, Parquet/.npy/JSONL out, bad rows, resume after a kill, and the CLI.

References are computed live with ``OnnxSentenceEncoder.encode()`` on the same file, whose parity
with ``SentenceTransformer.encode()`` the encoder tests check; the FP32 file is used where rows
must match to float32 rounding (its rows do not depend on the batch they are in).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_support import run_in_process
from fastembed_adapter import CorpusError, OnnxSentenceEncoder, OutputExistsError
from fastembed_adapter.batch import EmbedSettings, JobOptions, Output, Source, embed_corpus
from fastembed_adapter.pooling import quantize
from tiny import FP32_FILE, TEXTS

# FP32 rows do not depend on their batch; only summation order of the float32 result may differ.
ROW_MATCH = 1e-6
# The corpus: the tiny texts with variety that trips readers (empty, emoji, quotes, commas, newlines in CSV).
CORPUS = [
    *TEXTS,
    "",
    "emoji 😀 and CJK 日本語",
    'a "quoted", comma-separated value',
    "  leading and trailing spaces  ",
    *(f"{text} #{index}" for index, text in enumerate(TEXTS * 3)),
]


@pytest.fixture(scope="module")
def model(prepared_base) -> Path:
    return prepared_base("bert")


@pytest.fixture(scope="module")
def reference(model):
    encoder = OnnxSentenceEncoder(model, file_name=FP32_FILE, cache_size=0)
    return encoder.encode(CORPUS, batch_size=8)


def fp32(model: Path, **kwargs) -> EmbedSettings:
    return EmbedSettings(model=str(model), file_name=FP32_FILE, batch_size=8, **kwargs)


def embeddings(path: Path) -> np.ndarray:
    return np.asarray(pq.read_table(path).column("embedding").to_pylist())


def write_corpus(folder: Path, fmt: str, texts: list[str] = CORPUS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path = folder / "corpus.jsonl"
        path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)), "utf-8")
    elif fmt == "csv":
        path = folder / "corpus.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["id", "text", "other"])
            writer.writerows([f"d{i}", t, "x"] for i, t in enumerate(texts))
    elif fmt == "parquet":
        path = folder / "corpus.parquet"
        pq.write_table(pa.table({"id": pa.array(range(len(texts)), pa.int64()), "text": texts}), path, row_group_size=7)
    else:
        path = folder / "corpus.txt"
        path.write_text("".join(f"{t}\n" for t in texts), "utf-8")
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "text"])
def test_every_input_format_gives_the_encoder_rows(model, reference, tmp_path, fmt):
    corpus = write_corpus(tmp_path, fmt)
    id_column = None if fmt == "text" else "id"
    out = tmp_path / "out.parquet"
    summary = embed_corpus(
        Source.open(corpus, id_column=id_column), Output.of(out), fp32(model), JobOptions(part_size=9)
    )
    assert (summary.rows, summary.embedded, summary.rejected) == (len(CORPUS), len(CORPUS), 0)
    assert summary.parts == -(-len(CORPUS) // 9)
    table = pq.read_table(out)
    expected_ids = {
        "jsonl": [f"d{i}" for i in range(len(CORPUS))],
        "csv": [f"d{i}" for i in range(len(CORPUS))],
        "parquet": list(range(len(CORPUS))),
        "text": list(range(len(CORPUS))),
    }[fmt]
    assert table.column_names == [id_column or "row", "embedding"]
    assert table.column(0).to_pylist() == expected_ids
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), reference.shape[1])
    np.testing.assert_allclose(embeddings(out), reference, atol=ROW_MATCH, rtol=0)
    meta = json.loads(table.schema.metadata[b"fastembed_adapter"])
    assert meta["settings"]["model"] == str(model) and meta["rows"] == len(CORPUS)
    assert not Output.of(out).parts_dir.exists()


def test_output_formats_hold_the_same_rows(model, reference, tmp_path):
    corpus = write_corpus(tmp_path, "jsonl")
    source = Source.open(corpus, id_column="id")
    embed_corpus(source, Output.of(tmp_path / "out.npy"), fp32(model), JobOptions(part_size=10))
    embed_corpus(source, Output.of(tmp_path / "out.jsonl"), fp32(model), JobOptions(part_size=10))
    matrix = np.load(tmp_path / "out.npy")
    assert matrix.dtype == np.float32 and matrix.shape == reference.shape
    np.testing.assert_allclose(matrix, reference, atol=ROW_MATCH, rtol=0)
    ids = [json.loads(line) for line in (tmp_path / "out.npy.ids.jsonl").read_text().splitlines()]
    assert ids == [f"d{i}" for i in range(len(CORPUS))]
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [record["id"] for record in records] == ids
    np.testing.assert_array_equal(np.asarray([record["embedding"] for record in records], np.float32), matrix)


def test_encode_arguments_are_those_of_encode(model, tmp_path):
    corpus = write_corpus(tmp_path, "text")
    source = Source.open(corpus)
    encoder = OnnxSentenceEncoder(model, file_name=FP32_FILE, cache_size=0)
    floats = encoder.encode(CORPUS, batch_size=8, normalize_embeddings=True, truncate_dim=12)
    for precision in ("float32", "int8", "uint8", "binary", "ubinary"):
        out = tmp_path / f"{precision}.parquet"
        settings = fp32(model, normalize=True, truncate_dim=12, precision=precision)
        embed_corpus(source, Output.of(out), settings, JobOptions(part_size=8))
        stored = pq.read_table(out)
        meta = json.loads(stored.schema.metadata[b"fastembed_adapter"])
        got = np.asarray(stored.column("embedding").to_pylist())
        if precision.endswith("int8"):
            first_part = floats[:8]  # int8 buckets are calibrated once, on the first part, for every row
            ranges = np.vstack((first_part.min(axis=0), first_part.max(axis=0)))
            np.testing.assert_allclose(np.asarray(meta["ranges"]), ranges, atol=1e-7)
            expected = quantize(floats, precision, ranges.astype(np.float32))
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # a float32 rounding at a bucket edge
        elif precision == "float32":
            expected = floats
            np.testing.assert_allclose(got, expected, atol=ROW_MATCH, rtol=0)
        else:
            expected = encoder.encode(
                CORPUS, batch_size=8, normalize_embeddings=True, truncate_dim=12, precision=precision
            )
            np.testing.assert_array_equal(got, expected)
        assert got.shape == expected.shape


def test_default_int8_file_and_resume_are_bit_identical(model, tmp_path):
    """A job stopped after two parts and resumed writes the same bytes as one run straight through."""
    corpus = write_corpus(tmp_path, "jsonl", CORPUS * 4)
    settings = EmbedSettings(model=str(model), batch_size=4)  # the INT8 file: rows depend on their batch
    whole = tmp_path / "whole.parquet"
    embed_corpus(Source.open(corpus, id_column="id"), Output.of(whole), settings, JobOptions(part_size=16))

    resumed = tmp_path / "resumed.parquet"
    seen = []

    def stop_after_two_parts(done: int, embedded: int) -> None:
        seen.append(done)
        if done > 32:  # in the third part, after two finished ones
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_corpus(
            Source.open(corpus, id_column="id"),
            Output.of(resumed),
            settings,
            JobOptions(part_size=16),
            progress=stop_after_two_parts,
        )
    assert not resumed.exists()
    state = json.loads((Output.of(resumed).parts_dir / "job.json").read_text())
    assert [part["rows"] for part in state["parts"]] == [16, 16]
    summary = embed_corpus(
        Source.open(corpus, id_column="id"), Output.of(resumed), settings, JobOptions(part_size=16, resume=True)
    )
    assert summary.resumed_rows == 32 and summary.rows == len(CORPUS) * 4
    assert pq.read_table(resumed).equals(pq.read_table(whole))


def test_existing_output_and_parts_need_a_flag(model, tmp_path):
    corpus = write_corpus(tmp_path, "text")
    out = tmp_path / "out.parquet"
    embed_corpus(Source.open(corpus), Output.of(out), fp32(model))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        embed_corpus(Source.open(corpus), Output.of(out), fp32(model))
    embed_corpus(Source.open(corpus), Output.of(out), fp32(model), JobOptions(overwrite=True))
    Output.of(tmp_path / "other.parquet").parts_dir.mkdir()
    with pytest.raises(OutputExistsError, match="--resume"):
        embed_corpus(Source.open(corpus), Output.of(tmp_path / "other.parquet"), fp32(model))


def test_resume_refuses_another_job(model, tmp_path):
    corpus = write_corpus(tmp_path, "text", CORPUS * 2)
    out = Output.of(tmp_path / "out.parquet")

    def stop(done: int, embedded: int) -> None:
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_corpus(Source.open(corpus), out, fp32(model), JobOptions(part_size=10), progress=stop)
    with pytest.raises(CorpusError, match="normalize: False -> True"):
        embed_corpus(Source.open(corpus), out, fp32(model, normalize=True), JobOptions(part_size=10, resume=True))
    with corpus.open("a") as file:
        file.write("one more line\n")
    with pytest.raises(CorpusError, match="input_bytes"):
        embed_corpus(Source.open(corpus), out, fp32(model), JobOptions(part_size=10, resume=True))
    (out.parts_dir / "job.json").write_text("{not json")
    with pytest.raises(CorpusError, match="--overwrite"):
        embed_corpus(Source.open(corpus), out, fp32(model), JobOptions(part_size=10, resume=True))


BAD_JSONL = [
    ('{"id": "a", "text": "fine"}', None),
    ("{not json", "not valid JSON"),
    ('{"id": "b"}', "no 'text' field"),
    ('{"id": "c", "text": null}', "'text' is null"),
    ('{"id": "d", "text": 42}', "'text' is a int, not a string"),
    ('{"id": "e", "text": "\\ud800 lone"}', "lone surrogate U+D800"),
    ('["a", "list"]', "a JSON list, not an object"),
    ('{"id": 7, "text": "an int id after str ids"}', "the earlier ids are strs"),
    ('{"text": "no id"}', "no 'id' field"),
    ('{"id": "f", "text": "also fine"}', None),
]


def test_bad_rows_stop_the_job_naming_the_line(model, tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text("\n".join(line for line, _ in BAD_JSONL) + "\n", "utf-8")
    out = tmp_path / "out.parquet"
    with pytest.raises(CorpusError, match=r"bad\.jsonl: line 2: not valid JSON .*--on-bad-row skip"):
        embed_corpus(Source.open(corpus, id_column="id"), Output.of(out), fp32(model))
    assert not out.exists()


def test_bad_rows_go_to_the_rejects_file(model, tmp_path):
    corpus = tmp_path / "bad.jsonl"
    lines = [line for line, _ in BAD_JSONL]
    corpus.write_bytes(
        ("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n").encode() + b'{"id": "g", "text": "\xff"}\n'
    )
    out = tmp_path / "out.parquet"
    summary = embed_corpus(
        Source.open(corpus, id_column="id"), Output.of(out), fp32(model), JobOptions(part_size=3, on_bad_row="skip")
    )
    rejects = [json.loads(line) for line in (tmp_path / "out.parquet.rejects.jsonl").read_text().splitlines()]
    reasons = [reason for _, reason in BAD_JSONL if reason] + ["not valid UTF-8"]
    assert len(rejects) == len(reasons) == summary.rejected
    for reject, reason in zip(rejects, reasons, strict=True):
        assert reason in reject["reason"]
    # the blank line (line 4) holds no record: lines after it keep their numbers, rows their record index
    assert [reject["line"] for reject in rejects] == [2, 3, 5, 6, 7, 8, 9, 10, 12]
    assert [reject["row"] for reject in rejects] == [1, 2, 3, 4, 5, 6, 7, 8, 10]
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["a", "f"]
    expected = OnnxSentenceEncoder(model, file_name=FP32_FILE, cache_size=0).encode(["fine", "also fine"])
    np.testing.assert_allclose(embeddings(out), expected, atol=ROW_MATCH, rtol=0)


def test_columnar_bad_rows_and_schemas(model, tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text('id,text\n1,one\n2,two,extra\n3,"three\nlines"\n4,four\n', "utf-8")
    out = tmp_path / "csv.parquet"
    summary = embed_corpus(
        Source.open(csv_path, id_column="id"), Output.of(out), fp32(model), JobOptions(on_bad_row="skip")
    )
    assert pq.read_table(out).column("id").to_pylist() == ["1", "3", "4"]
    (reject,) = [json.loads(line) for line in (tmp_path / "csv.parquet.rejects.jsonl").read_text().splitlines()]
    assert reject["row"] is None and "3 fields where the header has 2: '2,two,extra'" in reject["reason"]
    assert summary.rejected == 1

    parquet_path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"]}), parquet_path)
    with pytest.raises(CorpusError, match="row 1: 'text' is null"):
        embed_corpus(Source.open(parquet_path), Output.of(tmp_path / "p.parquet"), fp32(model))
    ints = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), ints)
    with pytest.raises(CorpusError, match="holds int64, not strings"):
        embed_corpus(Source.open(ints), Output.of(tmp_path / "i.parquet"), fp32(model))
    with pytest.raises(CorpusError, match="no column 'body'"):
        embed_corpus(Source.open(ints, text_column="body"), Output.of(tmp_path / "b.parquet"), fp32(model))
    with pytest.raises(CorpusError, match="column"):
        embed_corpus(Source.open(csv_path, text_column="body"), Output.of(tmp_path / "c.parquet"), fp32(model))
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(CorpusError, match=r"damaged\.parquet"):
        embed_corpus(Source.open(damaged), Output.of(tmp_path / "d.parquet"), fp32(model))


def test_bad_arguments_are_named(model, tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        Source.open(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="a folder"):
        Source.open(tmp_path)
    (tmp_path / "corpus.xyz").write_text("x\n")
    with pytest.raises(CorpusError, match="--input-format"):
        Source.open(tmp_path / "corpus.xyz")
    with pytest.raises(CorpusError, match="no columns"):
        Source.open(write_corpus(tmp_path, "text"), id_column="id")
    with pytest.raises(CorpusError, match="Unknown output format 'xml'"):
        Output.of(tmp_path / "out.parquet", "xml")
    with pytest.raises(ValueError, match="Unknown precision 'int4'"):
        EmbedSettings(model=str(model), precision="int4")
    with pytest.raises(ValueError, match="ColBERT models only"):
        EmbedSettings(model=str(model), is_query=True)
    with pytest.raises(ValueError, match="part_size"):
        JobOptions(part_size=0)
    single = tmp_path / "single.txt"
    single.write_text("only one\n")
    with pytest.raises(CorpusError, match="single text"):
        embed_corpus(Source.open(single), Output.of(tmp_path / "s.parquet"), fp32(model, precision="int8"))


def test_cli_summary_progress_and_json(model, tmp_path, capsys):
    corpus = write_corpus(tmp_path, "jsonl")
    out = tmp_path / "out.parquet"
    code, stdout, stderr = run_in_process(
        capsys, "embed", str(corpus), "--model", str(model), "--output", str(out), "--id-column", "id", "--json",
        "--progress", "--part-size", "10", "--file-name", FP32_FILE,
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["rows"] == summary["embedded"] == len(CORPUS) and summary["parts"] == -(-len(CORPUS) // 10)
    assert summary["engine"] == "local" and summary["texts_per_second"] > 0
    assert "text/s" in stderr and f"{len(CORPUS)}/{len(CORPUS)}" in stderr  # tqdm: rate and count
    code, stdout, stderr = run_in_process(capsys, "embed", str(corpus), "--model", str(model), "--output", str(out))
    assert code == 1 and "--overwrite" in stderr and "Traceback" not in stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 5}\n')
    code, stdout, stderr = run_in_process(
        capsys, "embed", str(bad), "--model", str(model), "--output", str(tmp_path / "b.parquet")
    )
    assert code == 1 and "line 2: 'text' is a int" in stderr


def _embed_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastembed_adapter.cli", "embed", *args]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_job_resumes_to_the_same_file(model, tmp_path, how):
    """The CLI killed (or Ctrl-C'd) after its first parts, then ``--resume``: the same table as one run."""
    corpus = write_corpus(tmp_path, "jsonl", CORPUS * 150)
    common = ["--model", str(model), "--id-column", "id", "--part-size", "200", "--batch-size", "4", "--threads", "1"]
    whole = tmp_path / "whole.parquet"
    subprocess.run(_embed_command(str(corpus), "--output", str(whole), *common), check=True, capture_output=True)
    out = tmp_path / "out.parquet"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        _embed_command(str(corpus), "--output", str(out), *common), env=env, stderr=subprocess.PIPE, text=True
    )
    state_file = Output.of(out).parts_dir / "job.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if state_file.is_file() and len(json.loads(state_file.read_text())["parts"]) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the job ended before it could be stopped: make the corpus bigger"
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    if how == signal.SIGINT:
        assert process.returncode == 130 and "--resume" in stderr
    assert not out.exists()
    finished = len(json.loads(state_file.read_text())["parts"])
    assert 2 <= finished < -(-len(CORPUS) * 150 // 200)
    done = subprocess.run(
        _embed_command(str(corpus), "--output", str(out), *common, "--resume", "--json"),
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(done.stdout)["resumed_rows"] == finished * 200
    assert pq.read_table(out).equals(pq.read_table(whole))


def test_batch_extra_is_checked_and_runtime_stays_light():
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "try:\n    import fastembed_adapter.batch\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MissingExtraError" in result.stdout and "fastembed-adapter[batch]" in result.stdout
    code = (
        "import sys, fastembed_adapter.batch, fastembed_adapter.cli.embed\n"
        "print(sorted(m for m in ('torch', 'transformers', 'ray', 'fastembed_adapter.server', "
        "'fastembed_adapter.prepare') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
