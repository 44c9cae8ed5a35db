"""The exporter (torch.onnx, no optimum): inputs, fusions, the dynamo fallback, and its errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from checks import FP32_MAX_ABS
from fastembed_adapter import UnsupportedModelError
from fastembed_adapter.prepare import export
from tiny import FP32_FILE, MAX_SEQ_LENGTH, TEXTS, TinySpec


def _last_hidden_state(hf_dir, texts):
    """(ONNX-ready inputs, torch reference ``last_hidden_state``) for ``texts`` padded as one batch."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModel.from_pretrained(str(hf_dir)).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch).last_hidden_state.numpy()
    return {name: value.numpy() for name, value in batch.items()}, reference


def _run(path, features):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in features.items() if k in names})[0]


@pytest.mark.parametrize(
    ("arch", "fused"),
    # ORT's BERT-family optimizer fuses every layer's attention (2 layers) when given the model's
    # head count and hidden size; MPNet's relative-position bias keeps its attention unfused.
    [("bert", 2), ("distilbert", 2), ("roberta", 2), ("xlm-roberta", 2), ("mpnet", 0)],
)
def test_bert_family_attention_is_fused(prepared_base, tiny_model, arch, fused):
    folder = tiny_model(TinySpec(arch))[1] if arch not in ("bert", "mpnet") else prepared_base(arch)
    model = onnx.load(str(folder / FP32_FILE), load_external_data=False)
    assert sum(node.op_type == "Attention" for node in model.graph.node) == fused


def test_dynamo_fallback_is_exact(hf_dirs, tmp_path, monkeypatch):
    """When TorchScript cannot trace a model, the torch.export-based exporter takes over, exactly."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append("torchscript")
        raise RuntimeError("untraceable")

    monkeypatch.setattr(export, "_export_torchscript", refuse)
    hf_dir = hf_dirs["bert"]
    path = export.export_fp32(hf_dir, tmp_path / "out", "bert")
    assert calls == ["torchscript"]
    graph = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    features, reference = _last_hidden_state(hf_dir, [*TEXTS, " ".join(TEXTS)])
    got = _run(path, features)
    mask = features["attention_mask"].astype(bool)
    assert got.shape == reference.shape
    assert np.abs(got - reference)[mask].max() <= FP32_MAX_ABS


def test_both_exporters_failing_names_the_model(hf_dirs, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("untraceable op foo")

    monkeypatch.setattr(export, "_export_torchscript", refuse)
    monkeypatch.setattr(export, "_export_dynamo", refuse)
    with pytest.raises(UnsupportedModelError, match=r"'bert' could not be exported.*torchscript.*untraceable op foo"):
        export.export_fp32(hf_dirs["bert"], tmp_path / "out", "bert")


def test_sliding_window_models_trace_the_windowed_branch(hf_dirs, tmp_path):
    """Gemma3's sliding window (16 tokens here): a text longer than the window is exact too."""
    hf_dir = hf_dirs["gemma3_text"]
    path = export.export_fp32(hf_dir, tmp_path / "out", "gemma3_text")
    long = " ".join(TEXTS * 2)  # well past 16 tokens
    features, reference = _last_hidden_state(hf_dir, [long, TEXTS[2]])
    got = _run(path, features)
    mask = features["attention_mask"].astype(bool)
    assert features["input_ids"].shape[1] > 16
    assert np.abs(got - reference)[mask].max() <= FP32_MAX_ABS
