"""``prepare``: the folder it writes, its refusal/overwrite rules, its atomic failure, and ST loading it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from checks import FP32_MIN_COSINE, TINY_INT8_MIN_COSINE, cosines, read_json
from fastembed_adapter import (
    InvalidInputError,
    ModelNotFoundError,
    OnnxSentenceEncoder,
    OutputExistsError,
    UnsupportedModelError,
    ValidationFailedError,
)
from fastembed_adapter.layout import MANIFEST_NAME, file_sha256, onnx_size
from fastembed_adapter.prepare import STAGES, PrepareOptions
from tiny import FP32_FILE, TEXTS, TinySpec, int8_file, run_prepare

# ST's own ONNX backend runs the same file through optimum; its session options differ from ours.
ST_ONNX_MIN_COSINE = 0.9999


def _siblings(output: Path) -> list[str]:
    return sorted(p.name for p in output.parent.iterdir()) if output.parent.exists() else []


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_output_folder(prepared_base, arch):
    out = prepared_base(arch)
    for name in (FP32_FILE, int8_file(), MANIFEST_NAME, "report.json", "REPORT.md", "tokenizer.json", "modules.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.safetensors"))
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.bin")] == ["openvino/openvino_model.bin"]  # no torch
    # each model's weights sit beside it in <file>.onnx_data (ONNX Runtime maps them); nothing else
    models = [Path(n).name for n in (FP32_FILE, int8_file())]
    assert sorted(p.name for p in (out / "onnx").iterdir()) == sorted(models + [n + "_data" for n in models])
    for name in (FP32_FILE, int8_file()):
        model = onnx.load(str(out / name), load_external_data=False)
        big = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert big and not any(len(t.raw_data) > 1024 for t in model.graph.initializer), name
        assert onnx_size(out / name) == (out / name).stat().st_size + (out / (name + "_data")).stat().st_size
        assert (out / (name + "_data")).stat().st_mode & 0o777 == (out / name).stat().st_mode & 0o777
    assert out.stat().st_mode & 0o777 == (out / "onnx").stat().st_mode & 0o777  # not mkdtemp's 0o700

    manifest = read_json(out / MANIFEST_NAME)
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert set(manifest["files"]) == files
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == file_sha256(out / name), name
        assert entry["size"] == (out / name).stat().st_size
    assert manifest["default_file"] == int8_file()

    report = read_json(out / "report.json")
    assert report["model_type"] == arch
    assert report["default_file"] == int8_file()
    assert report["dimension"] == 32
    assert report["pooling"] == ["mean"] and report["normalize"] is True
    validation = report["validation"]["files"]
    assert validation[FP32_FILE]["min_cosine"] >= FP32_MIN_COSINE and validation[FP32_FILE]["passed"]
    assert validation[int8_file()]["min_cosine"] >= TINY_INT8_MIN_COSINE and validation[int8_file()]["passed"]
    markdown = (out / "REPORT.md").read_text()
    assert FP32_FILE in markdown and int8_file() in markdown


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_int8_close_to_st(prepared_base, make_st_model, st_models, arch):
    st = st_models(make_st_model(TinySpec(arch)))
    ours = OnnxSentenceEncoder(prepared_base(arch), threads=1)
    assert ours.file_name == int8_file()
    assert cosines(ours.encode(TEXTS), st.encode(TEXTS)).min() >= TINY_INT8_MIN_COSINE


@pytest.mark.parametrize("file_name", ["fp32", "int8"])
def test_loads_in_sentence_transformers_onnx_backend(prepared_base, file_name):
    """Our folder loads in sentence-transformers' own ONNX backend. That backend needs optimum, which
    installs only beside transformers < 4.58: CI's sentence-transformers 5 stack runs the comparison; on the
    newest stack the backend itself refuses for want of optimum, for our folder as for any other."""
    from sentence_transformers import SentenceTransformer

    name = FP32_FILE if file_name == "fp32" else int8_file()
    out = prepared_base("bert")
    if importlib.util.find_spec("optimum") is None:
        with pytest.raises(Exception, match=r"(?i)optimum"):
            SentenceTransformer(str(out), backend="onnx", model_kwargs={"file_name": name}, device="cpu")
        return
    st = SentenceTransformer(str(out), backend="onnx", model_kwargs={"file_name": name}, device="cpu")
    ours = OnnxSentenceEncoder(out, file_name=name, threads=1)
    ref = st.encode(TEXTS)
    got = ours.encode(TEXTS)
    assert got.shape == ref.shape
    assert cosines(got, ref).min() >= ST_ONNX_MIN_COSINE


def test_refuses_to_overwrite_then_force_replaces(make_st_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError) as info:
        run_prepare(make_st_model(TinySpec("bert")), out)
    assert str(out) in str(info.value) and "--force" in str(info.value)
    assert (out / "keep.txt").read_text() == "mine"

    stages: list[str] = []
    run_prepare(make_st_model(TinySpec("bert")), out, force=True, quantize="none", progress=stages.append)
    assert not (out / "keep.txt").exists()
    assert (out / MANIFEST_NAME).is_file()
    assert _siblings(out) == ["out"]  # no temp or old folder left beside it
    assert stages == [s for s in STAGES if s not in ("quantize", "benchmark")]


def test_quantize_none_and_max_seq_length(make_st_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    source = make_st_model(TinySpec("mpnet", "cls", normalize=False))
    out = tmp_path / "fp32-only"
    report = run_prepare(source, out, quantize="none", max_seq_length=9)
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["model.onnx", "model.onnx_data"]
    assert report["default_file"] == FP32_FILE and report["target"] is None
    assert report["max_seq_length"] == 9
    ours = OnnxSentenceEncoder(out, threads=1)
    assert ours.file_name == FP32_FILE and ours.max_seq_length == 9
    st = SentenceTransformer(str(source), device="cpu")
    st.max_seq_length = 9
    np.testing.assert_allclose(ours.encode(TEXTS), st.encode(TEXTS), atol=1e-4, rtol=0)


def test_failing_gate_publishes_nothing(make_st_model, tmp_path):
    out = tmp_path / "parent" / "gated"
    with pytest.raises(ValidationFailedError) as info:
        run_prepare(make_st_model(TinySpec("bert")), out, min_cosine_int8=1.01, recipe="dynamic")  # one recipe
    assert "1.01" in str(info.value)
    assert not out.exists()
    assert _siblings(out) == []


def test_failing_gate_keeps_existing_folder(prepared_base, make_st_model, copy_folder):
    out = copy_folder(prepared_base("bert"))
    before = file_sha256(out / MANIFEST_NAME)
    with pytest.raises(ValidationFailedError):
        run_prepare(make_st_model(TinySpec("bert")), out, min_cosine_int8=1.01, force=True, recipe="dynamic")
    assert file_sha256(out / MANIFEST_NAME) == before
    assert _siblings(out) == [out.name]


def test_unsupported_module(make_st_model, copy_folder, tmp_path):
    source = copy_folder(make_st_model(TinySpec("bert")))
    modules = json.loads((source / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_LSTM", "type": "sentence_transformers.models.LSTM"})
    (source / "modules.json").write_text(json.dumps(modules))
    out = tmp_path / "never"
    with pytest.raises(UnsupportedModelError) as info:
        run_prepare(source, out)
    assert "LSTM" in str(info.value)
    assert not out.exists()


def test_missing_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nonexistent"):
        run_prepare(tmp_path / "nonexistent", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"quantize": "int4"}, "int4"),
        ({"target": "sse2"}, "sse2"),
        ({"recipe": "static"}, "static"),
        ({"max_seq_length": 0}, "0"),
    ],
)
def test_bad_options(tmp_path, kwargs, named):
    with pytest.raises(InvalidInputError) as info:
        PrepareOptions(model="x", output=tmp_path, **kwargs)
    assert named in str(info.value)


def test_fp32_fallback_publishes_fp32_only(make_st_model, tmp_path):
    out = tmp_path / "fallback"
    report = run_prepare(
        make_st_model(TinySpec("bert")), out, min_cosine_int8=1.01, recipe="dynamic", allow_fp32_fallback=True
    )
    assert report["default_file"] == FP32_FILE and report["recipe"] is None
    assert "No INT8 recipe met the quality target" in report["fp32_fallback"]
    assert not (out / int8_file()).exists()
    assert "WARNING" in (out / "REPORT.md").read_text()
    manifest = read_json(out / MANIFEST_NAME)
    assert manifest["default_file"] == FP32_FILE and manifest["fp32_fallback"]
    assert OnnxSentenceEncoder(out).file_name == FP32_FILE


def test_report_lists_each_recipe_with_time_and_target(prepared_base):
    report = read_json(prepared_base("bert") / "report.json")
    assert report["recipes"], "at least one recipe was tried"
    for row in report["recipes"]:
        assert row["encode_seconds"] > 0 and row["size_bytes"] > 0
        assert set(row["target"]) == {"min_cosine", "mean_cosine", "topk_agreement"}
    assert report["recipes"][-1]["result"] == "pass"
    manifest = read_json(prepared_base("bert") / MANIFEST_NAME)
    assert manifest["recipe"] == report["recipes"][-1]["recipe"]
    assert len(manifest["calibration_texts_sha256"]) == 16 and manifest["machine"]["isa"]


def test_report_json_and_manifest_are_the_typed_report(prepared_base):
    """What ``prepare`` wrote reads back into a ``Report`` that writes the same JSON and the same manifest."""
    from fastembed_adapter.prepare.report import Report, render_markdown

    out = prepared_base("bert")
    data = read_json(out / "report.json")
    report = Report.from_json(data)
    assert report.to_json() == data and report.default_file == int8_file() and report.files[int8_file()].passed
    assert report.recipes[-1].passed and report.recipes[-1].recipe == report.recipe
    manifest = read_json(out / MANIFEST_NAME)
    assert report.manifest_json(manifest["files"]) == manifest
    rendered = render_markdown(report).splitlines()  # report.json is key-sorted: compare the rows, not their order
    assert sorted(rendered) == sorted((out / "REPORT.md").read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("min=0.99,mean=0.997,top10=0.95", (0.99, 0.997, 0.95)),
        ("min=0.98", (0.98, 0.997, 0.95)),  # the parts left out keep the default target's values
        ("mean=0.9, topk=0.5", (0.99, 0.9, 0.5)),
        ("mean=0.999", (0.99, 0.999, 0.95)),  # a mean gate alone does not remove the min gate
        ("top10=1", (0.99, 0.997, 1.0)),
        ("", (0.99, 0.997, 0.95)),
    ],
)
def test_quality_target_parse(spec, expected):
    from fastembed_adapter.prepare.validate import INT8_TARGET, QualityTarget

    target = QualityTarget.parse(spec)
    assert (target.min_cosine, target.mean_cosine, target.topk_agreement) == expected
    assert INT8_TARGET.as_dict() == {"min_cosine": 0.99, "mean_cosine": 0.997, "topk_agreement": 0.95}


def test_quality_target_parse_base():
    from fastembed_adapter.prepare.validate import QualityTarget

    base = QualityTarget(0.5, 0.6, 0.7)
    assert QualityTarget.parse("mean=0.9", base) == QualityTarget(0.5, 0.9, 0.7)


def test_quality_target_parse_rejects_unknown_key():
    from fastembed_adapter.prepare.validate import QualityTarget

    with pytest.raises(ValueError, match="'median'"):
        QualityTarget.parse("median=0.9")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("min=2", "'min=2' is out of range"),
        ("min=-1", "'min=-1' is out of range"),
        ("mean=0", "'mean=0' is out of range"),
        ("top10=nan", "'top10=nan' is out of range"),
        ("min=0.9,mean=1.0001", "'mean=1.0001' in 'min=0.9,mean=1.0001' is out of range"),
        ("min=x", "'min=x' is not a number"),
        ("min=", "'min=' has no value"),
        ("top10=0.9,topk=0.8", "'topk' is given twice"),
    ],
)
def test_quality_target_parse_rejects_bad_values(spec, named):
    from fastembed_adapter.prepare.validate import QualityTarget

    with pytest.raises(ValueError) as info:
        QualityTarget.parse(spec)
    assert named in str(info.value)


@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "file"])
def test_a_bad_model_is_reported_before_an_existing_output(make_st_model, tmp_path, model):
    out = tmp_path / "out"
    out.mkdir()
    if model == "file":
        model = str(make_st_model(TinySpec("bert")) / "config.json")
    with pytest.raises(ModelNotFoundError) as info:
        run_prepare(model, out)
    assert repr(model) in str(info.value)
    assert ("is a file, not a model folder" if model.endswith(".json") else "is neither a local folder") in str(
        info.value
    )


# -- staging folders of runs that were killed --------------------------------------------------------


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_stale_staging_of_a_dead_run_is_removed_and_nothing_else(tmp_path):
    import os

    from fastembed_adapter.prepare import writer

    owner, dead = writer._owner(), _dead_pid()
    out = tmp_path / "model"
    names = {
        "dead": f".model.tmp-{dead}-{owner}-abc12345",
        "alive": f".model.tmp-{os.getppid()}-{owner}-abc12345",  # pytest's parent: alive
        "mine": f".model.tmp-{os.getpid()}-{owner}-abc12345",
        "other host": f".model.tmp-{dead}-{'0' if owner[0] != '0' else '1'}{owner[1:]}-abc12345",
        "legacy": ".model.tmp-abc12345",  # made before pids were recorded: owner unknown
        "other output": f".model2.tmp-{dead}-{owner}-abc12345",
        "not ours": f".model.tmp-{dead}-{owner}",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx_data").write_bytes(b"\0" * 64)
    writer.check_output(out, force=False)
    left = {p.name for p in tmp_path.iterdir()}
    assert names["dead"] not in left
    assert left == set(names.values()) - {names["dead"]}


def test_stale_set_aside_output_is_restored(tmp_path):
    from fastembed_adapter.prepare import writer

    out = tmp_path / "model"
    old = tmp_path / f".model.old-{_dead_pid()}-{writer._owner()}-abc12345"
    (old / "model").mkdir(parents=True)  # killed between the two renames of a --force replace
    (old / "model" / MANIFEST_NAME).write_text("{}")
    with pytest.raises(OutputExistsError):
        writer.check_output(out, force=False)
    assert (out / MANIFEST_NAME).read_text() == "{}"
    assert _siblings(out) == ["model"]


def test_a_recipe_that_raises_is_reported_and_the_search_goes_on(make_st_model, tmp_path, monkeypatch):
    from fastembed_adapter.prepare import pipeline

    real = pipeline.quantize_int8

    def broken_dynamic(source, target_path, target, recipe, calibration=None):
        if recipe.name == "dynamic":
            raise RuntimeError("simulated ONNX Runtime failure")
        return real(source, target_path, target, recipe, calibration)

    monkeypatch.setattr(pipeline, "quantize_int8", broken_dynamic)
    out = tmp_path / "out"
    report = run_prepare(make_st_model(TinySpec(arch="bert")), out)
    first, second = report["recipes"][:2]
    assert first["recipe"] == "dynamic" and first["result"] == "error: RuntimeError: simulated ONNX Runtime failure"
    assert report["recipe"] == second["recipe"] != "dynamic"
    markdown = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "| dynamic | - | - | - | - | - | - | - | error: RuntimeError" in markdown
    # a forced recipe that raises is an error of the whole command
    with pytest.raises(RuntimeError, match="simulated"):
        run_prepare(make_st_model(TinySpec(arch="bert")), tmp_path / "forced", recipe="dynamic")


def test_residual_add_and_layernorm_stay_apart(prepared_base, tmp_path):
    """ORT's CPU SkipLayerNormalization is 5-7x slower than Add + LayerNormalization: the prepared
    files keep them apart, and sessions built like the encoder's do not fuse them back."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from fastembed_adapter.session import DISABLED_OPTIMIZERS

    out = prepared_base("bert")
    for name in (FP32_FILE, int8_file()):
        ops = [node.op_type for node in onnx.load(str(out / name), load_external_data=False).graph.node]
        assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops, name

    shape = ["batch", "sequence", 8]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "residual"], ["sum"]),
            helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1),
        ],
        "residual_norm",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "residual")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(np.full(8, v, np.float32), n) for n, v in (("gamma", 1.0), ("beta", 0.0))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    def optimized_ops(disabled: list[str]) -> list[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        providers = ["CPUExecutionProvider"]
        ort.InferenceSession(model.SerializeToString(), options, providers=providers, disabled_optimizers=disabled)
        return [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]

    assert optimized_ops([]) == ["SkipLayerNormalization"]  # what ORT does on its own
    assert optimized_ops(DISABLED_OPTIMIZERS) == ["Add", "LayerNormalization"]


def test_a_drifted_fp32_export_fails_before_any_recipe(make_st_model, tmp_path, monkeypatch):
    from fastembed_adapter.prepare import pipeline

    tried = []
    monkeypatch.setattr(pipeline, "quantize_int8", lambda *args, **kwargs: tried.append(args) or {})
    real = pipeline._encode_onnx

    def drifted(folder, file_name, texts, threads):
        embeddings, seconds = real(folder, file_name, texts, threads)
        return embeddings[::-1].copy(), seconds  # rows of other texts: the export no longer matches

    monkeypatch.setattr(pipeline, "_encode_onnx", drifted)
    with pytest.raises(ValidationFailedError, match=r"drifted from PyTorch.*No INT8 recipe was tried"):
        run_prepare(make_st_model(TinySpec("bert")), tmp_path / "out")
    assert tried == []  # the gate came first (it used to run after the whole recipe search)
    assert not (tmp_path / "out").exists()


def test_transformers_js_layout_is_written_inside_the_output(make_st_model, tmp_path):
    out = tmp_path / "out"
    run_prepare(make_st_model(TinySpec("bert")), out, recipe="dynamic", layouts=("transformers.js",))
    folder = out / "transformers.js"
    assert (folder / "onnx" / "model.onnx").is_file() and (folder / "onnx" / "model_quantized.onnx").is_file()
    assert not list(folder.glob("onnx/*.onnx_data"))  # weights inline: transformers.js loads one buffer
    assert onnx.load(str(folder / "onnx" / "model.onnx")).graph.output[0].name == "last_hidden_state"
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).read_bytes() == (out / name).read_bytes()
    manifest = read_json(out / MANIFEST_NAME)
    assert "transformers.js/onnx/model_quantized.onnx" in manifest["files"]
    with pytest.raises(InvalidInputError, match="Unknown layout"):
        PrepareOptions(model="x", output=tmp_path / "y", layouts=("tfjs",))


def test_the_held_out_split_gates_every_file(make_st_model, tmp_path, monkeypatch):
    """A file that passes on the validation texts but not on the held-out ones is not published."""
    from fastembed_adapter.prepare import pipeline
    from fastembed_adapter.texts import held_out_texts

    real, unseen = pipeline._encode_onnx, held_out_texts()

    def worse_on_unseen_texts(folder, file_name, texts, threads):
        embeddings, seconds = real(folder, file_name, texts, threads)
        if file_name != "onnx/model.onnx" and texts == unseen:
            embeddings = embeddings.copy()
            embeddings[0] = -embeddings[0]  # one held-out text far off: min cosine -1 there only
        return embeddings, seconds

    monkeypatch.setattr(pipeline, "_encode_onnx", worse_on_unseen_texts)
    with pytest.raises(ValidationFailedError, match=r"dynamic: held-out: min cosine -1\.0000 < 0\.9\)"):
        run_prepare(make_st_model(TinySpec("bert")), tmp_path / "out", recipe="dynamic")
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(pipeline, "_encode_onnx", real)
    report = run_prepare(make_st_model(TinySpec("bert")), tmp_path / "ok", recipe="dynamic")
    row = report["validation"]["files"][report["default_file"]]
    assert report["validation"]["held_out_texts"] == len(unseen) and row["held_out"]["texts"] == len(unseen)
    assert "held-out min / mean / top-10" in (tmp_path / "ok" / "REPORT.md").read_text(encoding="utf-8")


def test_torch_weights_keep_the_folder_loadable_with_torch(make_st_model, tmp_path, st_models):
    """``--torch-weights``: sentence-transformers loads the output with torch and gives the source's vectors;
    the runtime never reads those weights (damaging them changes nothing)."""
    from fastembed_adapter import OnnxSentenceEncoder

    source, out = make_st_model(TinySpec("bert")), tmp_path / "out"
    run_prepare(source, out, quantize="none", torch_weights=True)
    assert (out / "model.safetensors").is_file()
    texts = ["The quick brown fox.", "How do I reset my password?"]
    reference = st_models(source).encode(texts)
    np.testing.assert_allclose(st_models(out).encode(texts), reference, atol=1e-6)
    ours = OnnxSentenceEncoder(out, cache_size=0).encode(texts)
    (out / "model.safetensors").write_bytes(b"damaged")  # not a file the ONNX runtime depends on
    np.testing.assert_array_equal(OnnxSentenceEncoder(out, cache_size=0).encode(texts), ours)
    without = tmp_path / "without"
    run_prepare(source, without, quantize="none")
    assert not (without / "model.safetensors").exists()
