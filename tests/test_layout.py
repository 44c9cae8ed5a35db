"""read_layout / PoolingConfig / Manifest vs what sentence-transformers itself reads from a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastembed_adapter import CorruptModelError, ModelNotFoundError, UnsupportedModelError
from fastembed_adapter.layout import MANIFEST_NAME, Manifest, PoolingConfig, PoolingMode, file_sha256, read_layout
from tiny import FP32_FILE, MAX_SEQ_LENGTH, POOLING_MODES, TinySpec, int8_file

PROMPTS = {"query": "query: ", "document": "passage: "}


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("normalize", [True, False])
def test_layout_matches_st_folder(make_st_model, st_models, mode, normalize):
    folder = make_st_model(TinySpec("bert", mode, normalize=normalize))
    st = st_models(folder)
    layout = read_layout(folder)
    assert layout.pooling.modes == (PoolingMode(mode),)
    assert layout.pooling.output_dimension == st.get_embedding_dimension()
    assert layout.normalize is normalize
    assert layout.max_seq_length == st.max_seq_length == MAX_SEQ_LENGTH
    assert layout.similarity_fn_name == st.similarity_fn_name
    assert layout.onnx_files == ()
    assert layout.manifest is None


def test_prompts_and_include_prompt(make_st_model, st_models):
    folder = make_st_model(TinySpec("bert", prompts=PROMPTS, include_prompt=False))
    st = st_models(folder)
    layout = read_layout(folder)
    assert dict(layout.prompts) == st.prompts
    assert layout.default_prompt_name == st.default_prompt_name
    assert layout.pooling.include_prompt is False


def test_prepared_folder(prepared_base):
    layout = read_layout(prepared_base("mpnet"))
    assert set(layout.onnx_files) == {FP32_FILE, int8_file()}
    assert layout.manifest is not None
    assert layout.manifest.default_file == int8_file()
    for name in layout.onnx_files:
        layout.manifest.verify(layout.root, name)


@pytest.mark.parametrize(
    "legacy",
    [
        {"pooling_mode_cls_token": True},
        {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True},
        {"pooling_mode_lasttoken": True, "pooling_mode_cls_token": True, "pooling_mode_weightedmean_tokens": True},
        {"pooling_mode_mean_sqrt_len_tokens": True, "pooling_mode_mean_tokens": False},
        {"pooling_mode_cls_token": False},
        {},
    ],
)
def test_legacy_boolean_keys_match_st(legacy):
    from sentence_transformers.sentence_transformer.modules.pooling import _convert_legacy_pooling_kwargs

    config = {"word_embedding_dimension": 8, **legacy}
    converted = dict(config)
    _convert_legacy_pooling_kwargs(converted)
    expected = converted.get("pooling_mode", "mean")  # Pooling(pooling_mode="mean") default
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    assert tuple(m.value for m in PoolingConfig.from_json(config).modes) == expected


def test_pooling_mode_list():
    config = PoolingConfig.from_json({"embedding_dimension": 4, "pooling_mode": ["max", "cls"]})
    assert config.modes == (PoolingMode.MAX, PoolingMode.CLS)
    assert config.output_dimension == 8
    assert config.include_prompt is True


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"embedding_dimension": 4, "pooling_mode": "median"}, "median"),
        ({"embedding_dimension": 4, "pooling_mode": ["mean", "bogus"]}, "bogus"),
        ({"embedding_dimension": 4, "pooling_mode_fancy_tokens": True}, "pooling_mode_fancy_tokens"),
        ({"pooling_mode": "mean"}, "dimension"),
        ({"embedding_dimension": 0, "pooling_mode": "mean"}, "0"),
    ],
)
def test_bad_pooling_config(data, named):
    with pytest.raises(UnsupportedModelError) as info:
        PoolingConfig.from_json(data)
    assert named in str(info.value)


def test_unsupported_module(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_LSTM", "type": "sentence_transformers.models.LSTM"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModelError) as info:
        read_layout(folder)
    assert "LSTM" in str(info.value)
    assert "Normalize" in str(info.value)  # lists what is supported


def test_no_pooling_module(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if "Pooling" not in m["type"]]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModelError, match="no Pooling module"):
        read_layout(folder)


def test_missing_folder_and_modules_json(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        read_layout(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match=r"modules\.json"):
        read_layout(tmp_path)


def test_broken_json(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    (folder / "1_Pooling" / "config.json").write_text("{broken")
    with pytest.raises(CorruptModelError, match=r"config\.json"):
        read_layout(folder)
    (folder / "modules.json").write_text('{"not": "a list"}')
    with pytest.raises(CorruptModelError, match=r"modules\.json"):
        read_layout(folder)


def test_max_seq_length_from_sentence_bert_config(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    _edit_json(folder / "sentence_bert_config.json", max_seq_length=17, do_lower_case=True)
    layout = read_layout(folder)
    assert layout.max_seq_length == 17
    assert layout.do_lower_case is True


def test_max_seq_length_falls_back_to_positions(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    _edit_json(folder / "tokenizer_config.json", model_max_length=10**30)
    assert read_layout(folder).max_seq_length == 128  # max_position_embeddings


def test_manifest_verify(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    manifest = Manifest.read(folder / MANIFEST_NAME)
    entry = manifest.files[FP32_FILE]
    assert entry.sha256 == file_sha256(folder / FP32_FILE)
    manifest.verify(folder, "not/listed.onnx")  # files it does not list pass
    with (folder / FP32_FILE).open("r+b") as handle:  # same size, one byte changed
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptModelError, match=r"model\.onnx"):
        manifest.verify(folder, FP32_FILE)


def test_manifest_without_files_table(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(CorruptModelError, match="files"):
        Manifest.read(tmp_path / MANIFEST_NAME)


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (b"\xff\xfe garbage", CorruptModelError, r"modules\.json.*as JSON"),  # not UTF-8
        (b'["not an object"]', CorruptModelError, r"entry 0 must be an object"),
        (b'[{"idx": "one", "type": "x.Pooling"}]', CorruptModelError, r"integer 'idx'"),
        (b'{"idx": 0}', CorruptModelError, r"list of modules, found dict"),
    ],
)
def test_damaged_modules_json(make_st_model, copy_folder, content, error, match):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    (folder / "modules.json").write_bytes(content)
    with pytest.raises(error, match=match):
        read_layout(folder)


def _dense_dir(folder: Path) -> Path:
    return next(p for p in folder.iterdir() if p.name.endswith("Dense"))


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_module_weights_name_the_file(make_st_model, copy_folder, damage):
    folder = copy_folder(make_st_model(TinySpec("bert", dense="tanh")))
    weights = _dense_dir(folder) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"\x07" * 64}[damage])
    with pytest.raises(CorruptModelError, match=r"Dense/model\.safetensors.*as safetensors"):
        read_layout(folder)


def test_module_weights_under_another_name(make_st_model, copy_folder):
    import numpy as np
    from safetensors.numpy import load_file, save_file

    folder = copy_folder(make_st_model(TinySpec("bert", dense="tanh", layer_norm=True)))
    weights = _dense_dir(folder) / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({"fc.weight": tensors["linear.weight"]}, str(weights))
    with pytest.raises(CorruptModelError, match=r"no 2-d tensor 'linear\.weight' \(found \{'fc\.weight'"):
        read_layout(folder)
    # the right name but another model's shape: the chain of widths says so
    save_file({"linear.weight": np.zeros((16, 7), np.float32)}, str(weights))
    with pytest.raises(CorruptModelError, match=r"takes 7-d input but the module before it gives 32-d"):
        read_layout(folder)


def test_bf16_module_weights_are_named(make_st_model, copy_folder):
    import torch
    from safetensors.torch import save_file

    folder = copy_folder(make_st_model(TinySpec("bert", dense="tanh")))
    weights = _dense_dir(folder) / "model.safetensors"
    save_file({"linear.weight": torch.zeros((16, 32), dtype=torch.bfloat16)}, str(weights))
    with pytest.raises(UnsupportedModelError, match=r"\{'linear\.weight': 'BF16'\}.*float32"):
        read_layout(folder)
