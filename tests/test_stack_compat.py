"""Folders saved by sentence-transformers 6 prepare and run on whichever major is installed.

CI runs this file on both stacks (.ci/run): on 6.x the folder is the library's own save; on 5.x it
is the same model rewritten in 6.x's layout (as 6.2 writes it), which 5.x alone cannot load.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import sentence_transformers

from checks import assert_close_fp32
from fastembed_adapter import OnnxSentenceEncoder, UnsupportedModelError
from fastembed_adapter.prepare.compat import loadable
from tiny import FP32_FILE, HIDDEN, TEXTS, TinySpec, run_prepare

ST_MAJOR = int(sentence_transformers.__version__.split(".")[0])
SPEC = TinySpec("bert", pooling="cls", dense="tanh")  # not mean pooling: a lost pooling_mode would show

_ST6_TYPES = {
    "Transformer": "sentence_transformers.base.modules.transformer.Transformer",
    "Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
    "Dense": "sentence_transformers.base.modules.dense.Dense",
    "Normalize": "sentence_transformers.base.modules.normalize.Normalize",
}


def _write(path, data):
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def as_saved_by_st6(folder, out):
    """A copy of a 5.x-saved folder in 6.2's layout: module types, configs, tokenizer files."""
    shutil.copytree(folder, out)
    modules = json.loads((out / "modules.json").read_text())
    for module in modules:
        module["type"] = _ST6_TYPES[module["type"].rsplit(".", 1)[-1]]
        path = out / module["path"]
        if module["type"].endswith("Transformer"):
            old = json.loads((path / "sentence_bert_config.json").read_text())
            tokenizer = json.loads((path / "tokenizer_config.json").read_text())
            tokenizer["model_max_length"] = old["max_seq_length"]  # 6.x keeps the limit here
            _write(path / "tokenizer_config.json", tokenizer)
            _write(
                path / "sentence_bert_config.json",
                {
                    "transformer_task": "feature-extraction",
                    "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
                    "module_output_name": "token_embeddings",
                },
            )
            for name in ("vocab.txt", "special_tokens_map.json"):
                (path / name).unlink(missing_ok=True)
        elif module["type"].endswith("Pooling"):
            old = json.loads((path / "config.json").read_text())
            mode = next(k for k, v in old.items() if k.startswith("pooling_mode_") and v is True)
            named = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}[mode]
            _write(
                path / "config.json",
                {"embedding_dimension": old["word_embedding_dimension"], "pooling_mode": named, "include_prompt": True},
            )
        elif module["type"].endswith("Normalize"):
            path.mkdir(exist_ok=True)
            _write(path / "config.json", {"module_input_name": "sentence_embedding"})
    _write(out / "modules.json", modules)
    return out


@pytest.fixture(scope="module")
def st6_folder(make_st_model, tmp_path_factory):
    source = make_st_model(SPEC)
    if ST_MAJOR >= 6:
        assert "base.modules" in (source / "modules.json").read_text()  # the library's own 6.x save
        return source
    return as_saved_by_st6(source, tmp_path_factory.mktemp("st6") / "model")


def test_prepare_reads_a_folder_saved_by_st6(st6_folder, make_st_model, st_models, tmp_path):
    reference = st_models(make_st_model(SPEC))  # the model as the installed library saved and loads it
    before = sorted((p.relative_to(st6_folder), p.read_bytes()) for p in st6_folder.rglob("*") if p.is_file())
    out = tmp_path / "prepared"
    run_prepare(st6_folder, out)
    texts = [*TEXTS, " ".join(TEXTS)]
    ours = OnnxSentenceEncoder(out, file_name=FP32_FILE, threads=1, cache_size=0)
    assert_close_fp32(ours.encode(texts), reference.encode(texts))
    after = sorted((p.relative_to(st6_folder), p.read_bytes()) for p in st6_folder.rglob("*") if p.is_file())
    assert after == before  # the source folder is never written


def test_loadable_view_only_where_needed(st6_folder, make_st_model, tmp_path):
    if ST_MAJOR >= 6:
        assert loadable(st6_folder, tmp_path) == st6_folder  # 6.x reads both layouts itself
        assert loadable(make_st_model(TinySpec("bert")), tmp_path) == make_st_model(TinySpec("bert"))
        return
    from sentence_transformers import SentenceTransformer

    with pytest.raises((ModuleNotFoundError, TypeError, ImportError, AttributeError)):
        SentenceTransformer(str(st6_folder), device="cpu")  # what 5.x does with the folder alone
    view = loadable(st6_folder, tmp_path)
    assert view != st6_folder
    pooling = json.loads((view / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode"] == "cls" and pooling["word_embedding_dimension"] == HIDDEN
    assert SentenceTransformer(str(view), device="cpu").encode(TEXTS[0]).shape == (16,)


def test_residual_dense(make_st_model, st_models, st6_folder, tmp_path):
    """6.x's ``Dense(use_residual=True)``: run exactly by the encoder; refused by the 5.x view, never dropped."""
    if ST_MAJOR < 6:
        dense = next(p for p in st6_folder.iterdir() if p.name.endswith("Dense"))
        folder = tmp_path / "residual"
        shutil.copytree(st6_folder, folder)
        config = json.loads((dense / "config.json").read_text())
        _write(folder / dense.name / "config.json", {**config, "use_residual": True})
        with pytest.raises(UnsupportedModelError, match=r"use_residual.*sentence-transformers>=6"):
            loadable(folder, tmp_path / "work")
        return
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    base = make_st_model(TinySpec("bert"))
    st = SentenceTransformer(str(base), device="cpu")
    torch.manual_seed(2)
    for width in (HIDDEN, 8):  # same width: x is added; other width: a projection of x
        model = SentenceTransformer(modules=[st[0], st[1], Dense(HIDDEN, width, use_residual=True)], device="cpu")
        folder = tmp_path / f"residual-{width}"
        model.save(str(folder), create_model_card=False)
        out = tmp_path / f"prepared-{width}"
        run_prepare(folder, out)
        ours = OnnxSentenceEncoder(out, file_name=FP32_FILE, threads=1, cache_size=0).encode(TEXTS)
        reference = model.encode(TEXTS)
        assert_close_fp32(ours, reference)
        without = model.encode(TEXTS)
        model[2].use_residual = False
        assert not np.allclose(model.encode(TEXTS), without)  # the residual really changes the vector
