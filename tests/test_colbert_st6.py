"""OnnxColbertEncoder and ``prepare --kind colbert`` against sentence-transformers 6's ``MultiVectorEncoder`` live.

PyLate cannot be installed beside sentence-transformers 6 / transformers 5, so in that stage
``MultiVectorEncoder`` is the reference: tiny random models are built here from the tiny
transformers folders with ``MultiVectorEncoder(modules=[...])``, saved in its native format, prepared,
and compared token by token with ``encode_query`` / ``encode_document``. A PyLate-format folder,
written by hand, checks the texts on which PyLate and ``MultiVectorEncoder`` agree.
"""

from __future__ import annotations

import json
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers.multi_vector_encoder", reason="sentence-transformers>=6.2 only")

from fastembed_adapter import OnnxColbertEncoder, UnsupportedModelError
from fastembed_adapter.colbert_layout import ColbertFormat, is_colbert_folder, read_colbert_layout
from fastembed_adapter.hub import is_colbert_model
from tiny import TEXTS

FP32_FILE = "onnx/model.onnx"
MATCH = 2e-5  # FP32 file vs PyTorch, per token vector component
QUERIES = ["how do I reset my password?", "cheap flights", "a", "", "what's 2 + 2, really?!", " ".join(TEXTS)]
DOCUMENTS = [
    *TEXTS,
    "",
    "Punctuation: everywhere!!! (really), [yes]; {no}... ok?",  # '!', '[', '{' are [UNK] in the tiny vocabulary
    " ".join(TEXTS * 8),  # past document_length: truncated
    "日本語のテキスト 😀 ΑΒΓ",
]


@dataclass(frozen=True)
class Spec:
    """One tiny MultiVectorEncoder: architecture, Transformer lengths/expansion, projection, mask, prompts."""

    name: str
    arch: str = "bert"
    transformer: dict[str, Any] = field(default_factory=dict, hash=False)
    projection: tuple[tuple[int, str], ...] = ((16, "identity"),)
    bias: bool = False
    skiplist_words: tuple[str, ...] = tuple(string.punctuation)
    skiplist_tasks: tuple[str, ...] = ("document",)
    normalize: bool = True
    prompts: dict[str, str] = field(default_factory=lambda: {"query": "[Q] ", "document": "[D] "}, hash=False)

    @property
    def graph(self) -> tuple[Any, ...]:
        """What the ONNX graph depends on: specs that share it are prepared once (the rest is configs)."""
        return self.arch, self.projection, self.bias


EXPANDED = {"query_length": 16, "document_length": 40, "query_expansion": {"strategy": "fixed", "length": 16}}
SPECS = [
    Spec("expansion", transformer=EXPANDED),
    Spec("attend", transformer={**EXPANDED, "query_expansion": {"strategy": "fixed", "length": 12, "attend": True}}),
    Spec(
        "no-expansion",
        transformer={"query_length": 8, "document_length": 30},
        skiplist_tasks=("query", "document"),
        prompts={},
    ),
    Spec(
        "two-dense-no-normalize-sep-expansion",
        transformer={**EXPANDED, "query_expansion": {"strategy": "fixed", "length": 16, "token": "[SEP]"}},
        projection=((24, "tanh"), (8, "identity")),
        bias=True,
        normalize=False,
        skiplist_words=(",", ".", "?"),
    ),
    Spec("modernbert", arch="modernbert", transformer=EXPANDED),
]


def build(hf_dir: Path, spec: Spec, out: Path) -> Path:
    """``MultiVectorEncoder(modules=[...]).save(out)`` with the spec's settings (seeded)."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    torch.manual_seed(3)
    transformer = Transformer(str(hf_dir), **spec.transformer)
    modules: list[Any] = [transformer]
    width = transformer.get_embedding_dimension()
    for size, activation in spec.projection:
        act = torch.nn.Tanh() if activation == "tanh" else torch.nn.Identity()
        modules.append(
            Dense(width, size, bias=spec.bias, activation_function=act, module_input_name="token_embeddings")
        )
        width = size
    modules.append(MultiVectorMask(skiplist_words=list(spec.skiplist_words), skiplist_tasks=list(spec.skiplist_tasks)))
    if spec.normalize:
        modules.append(Normalize(module_input_name="token_embeddings"))
    MultiVectorEncoder(modules=modules, prompts=spec.prompts, device="cpu").save(str(out))
    return out


def prepare(source: Path, out: Path) -> dict[str, Any]:
    from fastembed_adapter.prepare.colbert import prepare_colbert
    from fastembed_adapter.prepare.pipeline import PrepareOptions

    options = PrepareOptions(model=str(source), output=out, quantize="none", benchmark=False, threads=1)
    return prepare_colbert(options)


@pytest.fixture(scope="module")
def st6_model(hf_dirs, tmp_path_factory):
    """Factory: (native source folder, the live MultiVectorEncoder, our folder, prepare's report) per spec.

    ``prepare`` runs once per graph (architecture and projection); a spec that differs only in its
    configs gets the source folder with that graph's ``onnx/`` beside it (the same seeded weights).
    """
    from sentence_transformers import MultiVectorEncoder

    root = tmp_path_factory.mktemp("colbert-st6")
    built: dict[str, tuple[Path, Any, Path, dict[str, Any]]] = {}
    graphs: dict[tuple[Any, ...], tuple[Path, dict[str, Any]]] = {}

    def get(spec: Spec) -> tuple[Path, Any, Path, dict[str, Any]]:
        if spec.name not in built:
            source = build(hf_dirs[spec.arch], spec, root / f"{spec.name}-source")
            out = root / spec.name
            if spec.graph in graphs:
                prepared, report = graphs[spec.graph]
                shutil.copytree(source, out)
                shutil.copytree(prepared / "onnx", out / "onnx")
            else:
                report = prepare(source, out)
                graphs[spec.graph] = (out, report)
            built[spec.name] = (source, MultiVectorEncoder(str(source), device="cpu"), out, report)
        return built[spec.name]

    return get


def reference(model: Any, texts: list[str], is_query: bool, **kwargs: Any) -> list[np.ndarray]:
    method = model.encode_query if is_query else model.encode_document
    return list(method(texts, convert_to_numpy=True, **kwargs))


def assert_same_vectors(got: list[np.ndarray], ref: list[np.ndarray], atol: float = MATCH) -> None:
    assert len(got) == len(ref)
    for index, (a, b) in enumerate(zip(got, ref, strict=True)):
        assert a.dtype == np.float32
        assert a.shape == b.shape, f"text {index}: {a.shape} vs MultiVectorEncoder {b.shape}"
        np.testing.assert_allclose(a, b, atol=atol, err_msg=f"text {index}")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_token_vectors_match_multi_vector_encoder(st6_model, spec):
    _, model, folder, report = st6_model(spec)
    assert report["reference"]["library"] == "sentence-transformers"
    assert report["format"] == "sentence-transformers"
    assert report["validation"]["files"][FP32_FILE]["token_counts_equal"]
    encoder = OnnxColbertEncoder(folder, file_name=FP32_FILE, threads=1)
    assert encoder.layout.format is ColbertFormat.MULTI_VECTOR_ENCODER
    for is_query, texts in ((True, QUERIES), (False, DOCUMENTS)):
        ref = reference(model, texts, is_query)
        assert_same_vectors(encoder.encode(texts, is_query=is_query), ref)
        assert_same_vectors(encoder.encode(texts, is_query=is_query, batch_size=2), ref)  # batch-independent
        method = encoder.encode_query if is_query else encoder.encode_document
        assert_same_vectors(method(texts), ref)
    assert encoder.get_embedding_dimension() == model.get_embedding_dimension()


def test_settings_read_from_the_folder(st6_model):
    _, model, folder, _ = st6_model(SPECS[0])
    layout = read_colbert_layout(folder)
    assert (layout.query_length, layout.document_length) == (16, 40)
    assert layout.do_query_expansion and not layout.attend_to_expansion_tokens
    assert (layout.query_prefix, layout.document_prefix) == ("", "")
    assert dict(layout.prompts) == {"query": "[Q] ", "document": "[D] "}
    assert layout.skiplist_tasks == ("document",) and layout.normalize
    encoder = OnnxColbertEncoder(folder, file_name=FP32_FILE, threads=1)
    # MultiVectorMask drops skiplist words that are not single vocabulary tokens ('!' here): [UNK] stays.
    vocab = model.tokenizer.get_vocab()
    assert encoder.skiplist == {vocab[word] for word in string.punctuation if word in vocab}
    assert model.tokenizer.unk_token_id not in encoder.skiplist


def test_explicit_prompt_and_normalize_flag(st6_model):
    _, model, folder, _ = st6_model(SPECS[3])  # no Normalize module: vectors are not unit length
    encoder = OnnxColbertEncoder(folder, file_name=FP32_FILE, threads=1)
    got = encoder.encode(DOCUMENTS[:3], is_query=False)
    assert not np.allclose(np.linalg.norm(got[0], axis=1), 1.0)
    assert_same_vectors(got, reference(model, DOCUMENTS[:3], False))
    normalized = encoder.encode(DOCUMENTS[:3], is_query=False, normalize_embeddings=True)
    assert_same_vectors(normalized, reference(model, DOCUMENTS[:3], False, normalize_embeddings=True))
    prompted = encoder.encode(QUERIES[:3], is_query=True, prompt="search: ")
    assert_same_vectors(prompted, reference(model, QUERIES[:3], True, prompt="search: "))


def test_detection_and_unsupported_settings(st6_model, tmp_path):
    source, _, folder, _ = st6_model(SPECS[0])
    assert is_colbert_folder(source) and is_colbert_model(source) and is_colbert_model(folder)
    broken = tmp_path / "min"
    shutil.copytree(folder, broken)
    config_path = broken / "sentence_bert_config.json"
    config = json.loads(config_path.read_text())
    config["query_expansion"] = {**config["query_expansion"], "strategy": "min"}
    config_path.write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="strategy 'min'"):
        OnnxColbertEncoder(broken, file_name=FP32_FILE)
    config["query_expansion"]["strategy"] = "fixed"
    config_path.write_text(json.dumps(config))
    mask_dir = next(broken.glob("*_MultiVectorMask"))
    mask = json.loads((mask_dir / "config.json").read_text())
    (mask_dir / "config.json").write_text(json.dumps({**mask, "keep_only_token_ids": [5]}))
    with pytest.raises(UnsupportedModelError, match="keep_only_token_ids"):
        OnnxColbertEncoder(broken, file_name=FP32_FILE)


def _as_pylate_folder(native: Path, out: Path, skiplist: list[str]) -> Path:
    """Rewrite a native save as PyLate 1.6 writes one: Transformer + ``pylate.models.Dense.Dense``, flat settings."""
    shutil.copytree(native, out)
    shutil.rmtree(out / "2_MultiVectorMask")
    shutil.rmtree(out / "3_Normalize")
    dense = json.loads((out / "1_Dense" / "config.json").read_text())
    for key in ("module_input_name", "module_output_name"):
        dense.pop(key)
    (out / "1_Dense" / "config.json").write_text(json.dumps({**dense, "use_residual": False}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (out / "modules.json").write_text(json.dumps(modules))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    settings = {"model_type": "ColBERT", "prompts": {"query": "", "document": ""}, "default_prompt_name": None,
                "similarity_fn_name": "MaxSim", "query_prefix": "", "document_prefix": "", "query_length": 16,
                "document_length": 40, "attend_to_expansion_tokens": False, "skiplist_words": skiplist,
                "do_query_expansion": True}  # fmt: skip
    (out / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return out


def test_pylate_folder_where_pylate_and_multi_vector_encoder_agree(st6_model, tmp_path):
    from sentence_transformers import MultiVectorEncoder

    native, _, prepared, _ = st6_model(SPECS[0])
    vocab = json.loads((native / "tokenizer.json").read_text())["model"]["vocab"]
    in_vocab = [word for word in string.punctuation if word in vocab]  # PyLate and ST agree on these
    pylate_folder = _as_pylate_folder(native, tmp_path / "pylate", in_vocab)
    assert read_colbert_layout(pylate_folder).format is ColbertFormat.PYLATE
    model = MultiVectorEncoder(str(pylate_folder), device="cpu")
    texts = [text for text in DOCUMENTS if "[UNK]" not in model.tokenizer.tokenize(text)]
    assert len(texts) >= 5
    # Our encoder reading the PyLate folder (PyLate's semantics) with the graph prepared from the same weights.
    shutil.copytree(prepared / "onnx", pylate_folder / "onnx")
    ours = OnnxColbertEncoder(pylate_folder, file_name=FP32_FILE, threads=1)
    assert_same_vectors(ours.encode(QUERIES, is_query=True), reference(model, QUERIES, True))
    assert_same_vectors(ours.encode(texts, is_query=False), reference(model, texts, False))
    # prepare on the ST6 stack: MultiVectorEncoder is the reference and writes the output in its format.
    report = prepare(pylate_folder.parent / "pylate", tmp_path / "prepared")
    assert report["reference"]["library"] == "sentence-transformers"
    assert report["validation"]["files"][FP32_FILE]["token_counts_equal"]
    converted = OnnxColbertEncoder(tmp_path / "prepared", file_name=FP32_FILE, threads=1)
    assert converted.layout.format is ColbertFormat.MULTI_VECTOR_ENCODER
    assert_same_vectors(converted.encode(DOCUMENTS, is_query=False), reference(model, DOCUMENTS, False))


def test_embed_job_writes_the_token_vectors(st6_model, tmp_path, capsys):
    """``embed`` on a ColBERT folder (kind detected): the per-token vectors MultiVectorEncoder gives."""
    import json

    import pyarrow.parquet as pq

    from cli_support import run_in_process

    _, model, folder, _ = st6_model(SPECS[0])
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(DOCUMENTS)), "utf-8")
    common = ["--model", str(folder), "--file-name", FP32_FILE, "--id-column", "id", "--part-size", "4"]
    code, _, err = run_in_process(capsys, "embed", str(corpus), "--output", str(tmp_path / "d.parquet"), *common)
    assert code == 0, err
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.column("id").to_pylist() == list(range(len(DOCUMENTS)))
    stored = [np.asarray(rows, dtype=np.float32) for rows in table.column("embedding").to_pylist()]
    assert_same_vectors(stored, reference(model, DOCUMENTS, False))
    code, _, err = run_in_process(
        capsys, "embed", str(corpus), "--output", str(tmp_path / "q.jsonl"), *common, "--queries"
    )
    assert code == 0, err
    lines = (tmp_path / "q.jsonl").read_text().splitlines()
    queries = [np.asarray(json.loads(line)["embedding"], dtype=np.float32) for line in lines]
    assert_same_vectors(queries, reference(model, DOCUMENTS, True))
    code, _, err = run_in_process(capsys, "embed", str(corpus), "--output", str(tmp_path / "d.npy"), *common)
    assert code == 1 and "a .npy matrix cannot hold" in err
    code, _, err = run_in_process(
        capsys, "embed", str(corpus), "--output", str(tmp_path / "n.parquet"), *common, "--normalize"
    )
    assert code == 1 and "normalize apply to dense models only" in err


def test_prepare_benchmarks_and_the_encoder_loads_the_measured_file(hf_dirs, tmp_path):
    """With the benchmark on, the report times FP32 and the INT8 file; the faster-in-both is loaded by default."""
    from fastembed_adapter.cpu import detect_target
    from fastembed_adapter.layout import FP32_FILE, MANIFEST_NAME, read_json
    from fastembed_adapter.prepare.colbert import prepare_colbert
    from fastembed_adapter.prepare.pipeline import PrepareOptions

    source = build(hf_dirs["bert"], Spec(name="benched"), tmp_path / "source")
    out = tmp_path / "out"
    options = PrepareOptions(
        model=str(source), output=out, recipe="blocked-8bit", threads=1,
        min_mean_cosine_int8=0.99, min_topk_agreement_int8=0.9,
    )  # fmt: skip
    report = prepare_colbert(options)
    int8 = report["default_file"]
    assert int8 != FP32_FILE and report["recipe"] == "blocked-8bit"
    backends = report["benchmark"]["backends"]
    assert set(backends) == {"pytorch", FP32_FILE, int8}
    assert all(row["p50_ms"] > 0 and row["throughput"] > 0 for row in backends.values())
    fp32, quantized = backends[FP32_FILE], backends[int8]
    faster = fp32["p50_ms"] < quantized["p50_ms"] and fp32["throughput"] > quantized["throughput"]
    expected = FP32_FILE if faster else int8
    target = detect_target()
    assert target is not None
    assert report["fastest_file"] == read_json(out / MANIFEST_NAME)["fastest_file"] == {target.value: expected}
    assert f"**`{expected}`**" in (out / "REPORT.md").read_text(encoding="utf-8")
    assert "Quick benchmark" in (out / "REPORT.md").read_text(encoding="utf-8")
    assert OnnxColbertEncoder(out, threads=1).file_name == expected
    assert OnnxColbertEncoder(out, file_name=int8, threads=1).file_name == int8  # an explicit file still wins
