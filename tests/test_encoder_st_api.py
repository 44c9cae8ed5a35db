"""encode()'s sentence-transformers 6 arguments, one parity test each against the installed ST.

Where sentence-transformers 5.x and 6.x differ, a test asserts our (6.x) behaviour and compares
to ST live only when the installed ST has it (``ST6``); on 5.x it compares to what 5.x gives for
the same computation (e.g. ST's float embeddings quantized by the 6.x formula).
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version

import numpy as np
import pytest

from checks import assert_close_fp32, assert_precision_close
from fastembed_adapter import InferenceError, InvalidInputError, OnnxSentenceEncoder, st_compat
from fastembed_adapter import encoder as encoder_module
from fastembed_adapter.layout import MANIFEST_NAME
from fastembed_adapter.pooling import quantize_matrices
from tiny import FP32_FILE, MAX_SEQ_LENGTH, TEXTS, TinySpec

ST6 = int(version("sentence-transformers").split(".")[0]) >= 6
LONG_TEXT = " ".join(["the old lighthouse keeper noticed a strange light over the harbour"] * 40)
PROMPTS = {"query": "query: ", "document": "passage: "}
POSITIONS = 128  # conftest: bert max_position_embeddings 128; mpnet 130 with MPNet's fixed padding_idx 1
RENAMED = "The `{}` argument was renamed and is now deprecated. Please use `{}` instead."


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget the once-per-process warnings, ours and transformers' ``warning_once`` (ST's)."""
    monkeypatch.setattr(st_compat, "_WARNED", set())
    cache_clear = getattr(getattr(logging.Logger, "warning_once", None), "cache_clear", None)
    if cache_clear is not None:
        cache_clear()


def _messages(caplog, logger_prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(logger_prefix) and r.levelno == logging.WARNING]


# -- inputs / sentences -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
def test_inputs_keyword(pair, method):
    st, ours = pair(TinySpec("bert", prompts=PROMPTS))
    ref = getattr(st, method)(inputs=TEXTS) if ST6 else getattr(st, method)(TEXTS)
    assert_close_fp32(getattr(ours, method)(inputs=TEXTS), ref)


@pytest.mark.parametrize("method", ["encode", "encode_query", "encode_document"])
def test_sentences_keyword_still_works_and_warns_once(pair, method, caplog, fresh_warnings):
    st, ours = pair(TinySpec("bert", prompts=PROMPTS))
    expected = RENAMED.format("sentences", "inputs")
    with caplog.at_level(logging.WARNING):
        ref = getattr(st, method)(sentences=TEXTS)
        got = getattr(ours, method)(sentences=TEXTS)
        getattr(ours, method)(sentences=TEXTS[:2])
    assert_close_fp32(got, ref)
    assert _messages(caplog, "fastembed_adapter") == [expected]  # once per process, as warning_once
    if ST6:
        assert _messages(caplog, "sentence_transformers") == [expected]
    else:  # ST 5 named the argument `sentences`: nothing to warn about
        assert _messages(caplog, "sentence_transformers") == []


def test_inputs_wins_over_sentences(pair, caplog, fresh_warnings):
    _, ours = pair(TinySpec("bert"))
    with caplog.at_level(logging.WARNING):
        got = ours.encode(inputs=TEXTS[:2], sentences=["ignored"])
    assert got.shape == (2, 32)
    assert _messages(caplog, "fastembed_adapter") == [RENAMED.format("sentences", "inputs")]


def test_encode_query_takes_encode_arguments_positionally(pair):
    st, ours = pair(TinySpec("bert", prompts=PROMPTS))
    ref = st.encode_query(TEXTS, None, None, 3, False, "sentence_embedding", "float32", True, False, None, True, 8)
    got = ours.encode_query(TEXTS, None, None, 3, False, "sentence_embedding", "float32", True, False, None, True, 8)
    assert_close_fp32(got, ref)


# -- task, pool, chunk_size, device --------------------------------------------------------------------


@pytest.mark.parametrize("task", ["query", "document", "anything"])
def test_task_is_accepted_without_a_router(pair, task):
    st, ours = pair(TinySpec("bert"))
    assert_close_fp32(ours.encode(TEXTS, task=task), st.encode(TEXTS, task=task))


def test_chunk_size_without_a_pool_is_ignored(pair):
    st, ours = pair(TinySpec("bert"))
    assert_close_fp32(ours.encode(TEXTS, chunk_size=3), st.encode(TEXTS, chunk_size=3))
    assert_close_fp32(ours.encode(TEXTS, pool=None), st.encode(TEXTS, pool=None))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"pool": {"input": None, "output": None, "processes": []}}, "pool="),
        ({"device": ["cpu", "cpu"]}, "device=['cpu', 'cpu']"),
        ({"device": []}, "device=[]"),
        ({"device": "cuda:0"}, "device='cuda:0'"),
        ({"max_length": 8}, "max_length"),  # ST's encode() rejects it too (only preprocess takes it)
    ],
)
def test_arguments_that_need_torch_raise(pair, kwargs, named):
    st, ours = pair(TinySpec("bert"))
    if kwargs.get("device") == [] or "max_length" in kwargs:
        with pytest.raises((ValueError, TypeError)):  # ST fails on these too (device=[] with a TypeError)
            st.encode(TEXTS[:2], **kwargs)
    with pytest.raises(InvalidInputError) as info:
        ours.encode(TEXTS[:2], **kwargs)
    assert named in str(info.value)


def test_cpu_device_accepted(pair):
    import torch

    st, ours = pair(TinySpec("bert"))
    for device in ("cpu", torch.device("cpu")):
        assert_close_fp32(ours.encode(TEXTS, device=device), st.encode(TEXTS, device=device))


def test_precision_none_is_float32(pair):
    st, ours = pair(TinySpec("bert"))
    assert_close_fp32(ours.encode(TEXTS, precision=None), st.encode(TEXTS, precision=None))


# -- processing_kwargs -----------------------------------------------------------------------------------

PROCESSING = {
    "max_length": ({"text": {"max_length": 8, "truncation": True}}, 8),
    "max_length_alone": ({"text": {"max_length": 6}}, 6),
    "common_wins": ({"text": {"max_length": 20}, "common": {"max_length": 5}}, 5),
    "longest_first": ({"text": {"truncation": "longest_first"}}, MAX_SEQ_LENGTH),
    "no_truncation_short_texts": ({"text": {"truncation": False}}, None),
    "pad_to_max_length": ({"text": {"padding": "max_length", "max_length": 40}}, 40),
    "pad_to_multiple_of": ({"text": {"pad_to_multiple_of": 8}}, MAX_SEQ_LENGTH),
    "other_modalities_ignored": ({"image": {"size": 4}, "audio": {}, "chat_template": {}}, MAX_SEQ_LENGTH),
}


@pytest.mark.parametrize(
    "spec", [TinySpec("bert"), TinySpec("bert", prompts=PROMPTS, include_prompt=False)], ids=lambda s: s.name
)
@pytest.mark.parametrize("case", list(PROCESSING))
def test_processing_kwargs(pair, spec, case):
    st, ours = pair(spec)
    processing, length = PROCESSING[case]
    texts = [*TEXTS, LONG_TEXT] if length is not None else TEXTS
    kwargs = {"prompt_name": "query"} if spec.prompts else {}
    got = ours.encode(texts, processing_kwargs=processing, **kwargs)
    rows = ours.encode(texts, processing_kwargs=processing, output_value=None, **kwargs)
    widths = {len(row["input_ids"]) for row in rows}
    if case == "pad_to_max_length":
        assert widths == {40}
    if case == "pad_to_multiple_of":
        assert all(width % 8 == 0 for width in widths)
    if length is not None:
        assert max(int(row["attention_mask"].sum()) for row in rows) == length
    if ST6:
        ref_rows = st.encode(texts, processing_kwargs=processing, output_value=None, **kwargs)
        for row, ref in zip(rows, ref_rows, strict=True):
            np.testing.assert_array_equal(row["input_ids"], ref["input_ids"].numpy())
        if case == "pad_to_max_length" and spec.prompts:
            # ST 6.2 measures the prompt padded to max_length too (prompt_length 39 here); right padding does
            # not change an embedding, so compare to the same truncation without the padding
            processing = {"text": {"max_length": 40}}
        assert_close_fp32(got, st.encode(texts, processing_kwargs=processing, **kwargs))
        ref_rows = st.encode(texts, processing_kwargs=processing, output_value=None, **kwargs)
        assert [row.get("prompt_length") for row in rows] == [ref.get("prompt_length") for ref in ref_rows]
    else:  # ST 5 rejects processing_kwargs; the same truncation through max_seq_length
        with pytest.raises(ValueError, match="processing_kwargs"):
            st.encode(texts, processing_kwargs=processing)
        before = st.max_seq_length
        try:
            st.max_seq_length = length
            assert_close_fp32(got, st.encode(texts, **kwargs))
        finally:
            st.max_seq_length = before


@pytest.mark.parametrize(
    ("processing", "named"),
    [
        ({"text": {"add_special_tokens": False}}, "add_special_tokens"),
        ({"common": {"return_tensors": "np"}}, "return_tensors"),
        ({"text": {"padding": False}}, "padding"),
        ({"text": {"truncation": "only_second"}}, "only_second"),
        ({"text": {"max_length": 0}}, "max_length"),
        ({"text": {"max_length": 1000}}, f"{POSITIONS} positions"),
        ({"text": {"padding": "max_length", "max_length": 500, "truncation": False}}, f"{POSITIONS} positions"),
        ({"text": "max_length=8"}, "processing_kwargs['text']"),
        ("max_length=8", "processing_kwargs"),
    ],
)
def test_processing_kwargs_we_cannot_honour(pair, processing, named):
    _, ours = pair(TinySpec("bert"))
    with pytest.raises(InvalidInputError) as info:
        ours.encode(TEXTS, processing_kwargs=processing)
    assert named in str(info.value)


def test_processing_kwargs_unknown_top_level_key_is_ignored_with_a_warning(pair, caplog, fresh_warnings):
    st, ours = pair(TinySpec("bert"))
    processing = {"txt": {"max_length": 4}}
    with caplog.at_level(logging.WARNING):
        got = ours.encode(TEXTS, processing_kwargs=processing)
    assert_close_fp32(got, ours.encode(TEXTS))
    assert any("Unknown keys in per-call `processing_kwargs`: {'txt'}" in m for m in _messages(caplog, "fastembed"))
    if ST6:
        assert_close_fp32(got, st.encode(TEXTS, processing_kwargs=processing))


def test_truncation_off_on_a_text_past_the_positions_is_our_error(pair, capfd):
    _, ours = pair(TinySpec("bert"))
    with pytest.raises(InvalidInputError, match=f"more than this model's {POSITIONS} positions"):
        ours.encode([LONG_TEXT], processing_kwargs={"text": {"truncation": False}})
    assert "onnxruntime" not in capfd.readouterr().err


# -- max_seq_length and the position limit -----------------------------------------------------------


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_max_seq_length_up_to_the_positions(tiny_model, arch):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(TinySpec(arch))
    st = SentenceTransformer(str(source), device="cpu")
    ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1)
    st.max_seq_length = ours.max_seq_length = POSITIONS
    tokens = ours.encode(LONG_TEXT, output_value="token_embeddings")
    assert len(tokens) == POSITIONS
    assert_close_fp32(ours.encode([LONG_TEXT, *TEXTS]), st.encode([LONG_TEXT, *TEXTS]))
    for too_long in (POSITIONS + 1, 10000):
        with pytest.raises(InvalidInputError, match=rf"max_seq_length={too_long} .* {POSITIONS} positions"):
            ours.max_seq_length = too_long
    assert ours.max_seq_length == POSITIONS


def test_no_truncation_then_a_long_text_is_our_error_not_ort_stderr(tiny_model, capfd):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1)
    ours.max_seq_length = None
    assert ours.encode(TEXTS).shape == (len(TEXTS), 32)  # short texts still fit
    with pytest.raises(InvalidInputError, match=f"{POSITIONS} positions"):
        ours.encode([LONG_TEXT])
    # past our check, ONNX Runtime's failure is translated and its own log stays off stderr
    features = ours.tokenizer.encode([LONG_TEXT])
    with pytest.raises(InferenceError, match="ONNX Runtime failed"):
        ours.session.run(features)
    assert "onnxruntime" not in capfd.readouterr().err


def test_config_max_seq_length_past_the_positions_is_capped(tiny_model, copy_folder, caplog):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    folder = copy_folder(onnx_dir)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 1000, "do_lower_case": False}))
    (folder / MANIFEST_NAME).unlink()  # a hand-edited folder: the manifest would refuse the changed config
    with caplog.at_level(logging.WARNING):
        ours = OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1)
    assert ours.max_seq_length == POSITIONS
    assert any("1000" in m and f"{POSITIONS} positions" in m for m in _messages(caplog, "fastembed_adapter"))
    assert len(ours.encode(LONG_TEXT, output_value="token_embeddings")) == POSITIONS


# -- truncate_embeddings -----------------------------------------------------------------------------------


def test_truncate_embeddings_context_manager(pair):
    st, ours = pair(TinySpec("bert"))
    st_context = st.truncate_embeddings if ST6 else st.truncate_sentence_embeddings
    with ours.truncate_embeddings(8), st_context(8):
        got = ours.encode(TEXTS)
        assert got.shape == (len(TEXTS), 8)
        assert ours.get_sentence_embedding_dimension() == 8
        assert_close_fp32(got, st.encode(TEXTS))
        assert_close_fp32(ours.encode(TEXTS, truncate_dim=4), st.encode(TEXTS, truncate_dim=4))
    assert ours.truncate_dim is None and ours.encode(TEXTS).shape == (len(TEXTS), 32)
    with pytest.raises(RuntimeError), ours.truncate_embeddings(4):
        raise RuntimeError("restored on errors too")
    assert ours.truncate_dim is None
    with pytest.raises(InvalidInputError, match="truncate_dim"), ours.truncate_embeddings(0):
        pass


def test_truncate_sentence_embeddings_alias_warns(pair):
    st, ours = pair(TinySpec("bert"))
    message = "The `truncate_sentence_embeddings` method has been renamed to `truncate_embeddings`."
    with pytest.warns(FutureWarning, match=message), ours.truncate_sentence_embeddings(4):
        got = ours.encode(TEXTS)
    assert got.shape == (len(TEXTS), 4)
    if ST6:
        with pytest.warns(FutureWarning, match=message), st.truncate_sentence_embeddings(4):
            assert_close_fp32(got, st.encode(TEXTS))
    else:
        with st.truncate_sentence_embeddings(4):
            assert_close_fp32(got, st.encode(TEXTS))


# -- similarity names ----------------------------------------------------------------------------------


def test_supported_similarity_fn_names(pair):
    st, _ = pair(TinySpec("bert"))
    assert OnnxSentenceEncoder.SUPPORTED_SIMILARITY_FN_NAMES == ("cosine", "dot", "euclidean", "manhattan")
    if ST6:
        assert type(st).SUPPORTED_SIMILARITY_FN_NAMES == OnnxSentenceEncoder.SUPPORTED_SIMILARITY_FN_NAMES


def test_dot_product_name_is_rejected_as_st_rejects_it(pair, tiny_model):
    from sentence_transformers import SentenceTransformer, SimilarityFunction

    st, ours = pair(TinySpec("bert"))
    with pytest.raises(ValueError, match="dot_product"):
        st.similarity_fn_name = "dot_product"
    with pytest.raises(InvalidInputError, match=r"'dot_product'.*cosine, dot, euclidean, manhattan.*'dot'"):
        ours.similarity_fn_name = "dot_product"
    assert ours.similarity_fn_name == "cosine"
    source, onnx_dir = tiny_model(TinySpec("bert"))
    with pytest.raises(ValueError, match="dot_product"):
        SentenceTransformer(str(source), device="cpu", similarity_fn_name="dot_product")
    with pytest.raises(InvalidInputError, match="dot_product"):
        OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, similarity_fn_name="dot_product")
    # ST's own enum member (value "dot") is accepted by both
    for model in (st, ours):
        model.similarity_fn_name = SimilarityFunction.DOT_PRODUCT
        assert model.similarity_fn_name == "dot"
        model.similarity_fn_name = None
        assert model.similarity_fn_name == "cosine"


# -- precision -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["int8", "uint8"])
@pytest.mark.parametrize("inputs", [TEXTS[0], TEXTS[:1]], ids=["str", "one-item-list"])
def test_int8_of_a_single_embedding_raises(pair, precision, inputs):
    st, ours = pair(TinySpec("bert"))
    expected = f"Cannot compute {precision} quantization ranges from a single embedding"
    with pytest.raises(InvalidInputError, match=expected):
        ours.encode(inputs, precision=precision)
    if ST6:
        with pytest.raises(ValueError, match=expected):
            st.encode(inputs, precision=precision)


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_binary_of_a_single_embedding(pair, precision):
    st, ours = pair(TinySpec("bert"))
    for inputs in (TEXTS[0], TEXTS[:1]):
        got, ref = ours.encode(inputs, precision=precision), st.encode(inputs, precision=precision)
        assert_precision_close(got, ref, precision)


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
@pytest.mark.parametrize("inputs", [TEXTS, TEXTS[0]], ids=["list", "str"])
def test_token_embeddings_with_precision(pair, precision, inputs):
    st, ours = pair(TinySpec("bert"))
    got = ours.encode(inputs, output_value="token_embeddings", precision=precision)
    floats = st.encode(inputs, output_value="token_embeddings")
    floats = [t.numpy() for t in ([floats] if isinstance(inputs, str) else floats)]
    if ST6:
        ref = st.encode(inputs, output_value="token_embeddings", precision=precision)
    else:  # ST 5 fails on a list of token matrices: the ST 6 formula (shared buckets) on ST's float tokens
        ref = quantize_matrices(floats, precision)
        ref = ref[0] if isinstance(inputs, str) else ref
    rows, ref_rows = ([got], [ref]) if isinstance(inputs, str) else (got, ref)
    assert isinstance(got, (list, np.ndarray)) and len(rows) == len(ref_rows)
    dim = 32 if precision.endswith("int8") else 4
    for row, ref_row, tokens in zip(rows, ref_rows, floats, strict=True):
        assert isinstance(row, np.ndarray) and row.shape == (len(tokens), dim)
        assert_precision_close(row, np.asarray(ref_row), precision)


def test_output_value_none_with_precision_raises(pair):
    st, ours = pair(TinySpec("bert"))
    with pytest.raises((ValueError, TypeError)):
        st.encode(TEXTS, output_value=None, precision="binary")
    with pytest.raises(InvalidInputError, match="output_value=None"):
        ours.encode(TEXTS, output_value=None, precision="binary")


# -- output_value=None and tokenize ------------------------------------------------------------------------

NONE_SPECS = [TinySpec("bert"), TinySpec("mpnet"), TinySpec("bert", prompts=PROMPTS, include_prompt=False)]


@pytest.mark.parametrize("spec", NONE_SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("prompt", [None, "query: "], ids=["no-prompt", "prompt"])
def test_output_value_none_keys_and_values(pair, spec, prompt):
    st, ours = pair(spec)
    rows = ours.encode(TEXTS[:3], output_value=None, prompt=prompt, truncate_dim=8)
    single = ours.encode(TEXTS[0], output_value=None, prompt=prompt, truncate_dim=8)
    refs = st.encode(TEXTS[:3], output_value=None, prompt=prompt, truncate_dim=8)
    inputs = ["input_ids", *(["token_type_ids"] if spec.arch == "bert" else []), "attention_mask"]
    keys = [*inputs, "modality", *(["prompt_length"] if prompt else []), "token_embeddings", "sentence_embedding"]
    assert list(single) == keys and single["modality"] == "text"
    for row, ref in zip(rows, refs, strict=True):
        assert list(row) == keys
        if ST6:
            assert list(row) == list(ref)
        else:  # ST 5 had no modality key
            assert [key for key in row if key != "modality"] == list(ref)
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            if name in row:
                assert row[name].dtype == np.int64
                if ST6 or name != "attention_mask" or spec.include_prompt:  # ST 5 zeroed the prompt in place
                    np.testing.assert_array_equal(row[name], ref[name].numpy(), err_msg=name)
        if prompt:
            assert isinstance(row["prompt_length"], int) and row["prompt_length"] == ref["prompt_length"] == 3
        assert row["sentence_embedding"].shape == (8,)
        assert_close_fp32(row["sentence_embedding"], ref["sentence_embedding"].numpy())
        assert_close_fp32(row["token_embeddings"], ref["token_embeddings"].numpy())


@pytest.mark.parametrize("spec", [TinySpec("bert"), TinySpec("mpnet")], ids=lambda s: s.name)
def test_tokenize_matches_st(pair, spec, caplog, fresh_warnings):
    st, ours = pair(spec)
    texts = [*TEXTS, LONG_TEXT]
    with caplog.at_level(logging.WARNING):
        got = ours.tokenize(texts)
        ref = st.tokenize(texts)
        ours.tokenize(texts)
    deprecated = "The `tokenize` method is deprecated, please use `preprocess` instead."
    assert _messages(caplog, "fastembed_adapter") == [deprecated]
    if ST6:
        assert list(got) == list(ref)
        assert _messages(caplog, "sentence_transformers") == [deprecated]
    else:
        assert list(got) == [*ref, "modality"]
    assert got["modality"] == "text" and got["input_ids"].shape[1] == MAX_SEQ_LENGTH
    for name, value in got.items():
        if name != "modality":
            assert isinstance(value, np.ndarray) and value.dtype == np.int64
            np.testing.assert_array_equal(value, ref[name].numpy(), err_msg=name)
    assert ours.tokenize([]) == {}
    if ST6:
        assert st.tokenize([]) == {}


def test_preprocess_with_prompt_and_kwargs(pair):
    st, ours = pair(TinySpec("bert", prompts=PROMPTS))
    got = ours.preprocess(TEXTS, prompt="query: ", processing_kwargs={"text": {"max_length": 8}}, task="query")
    assert got["prompt_length"] == 3 and got["input_ids"].shape[1] == 8
    if ST6:
        ref = st.preprocess(TEXTS, prompt="query: ", processing_kwargs={"text": {"max_length": 8}}, task="query")
        assert list(got) == list(ref) and got["prompt_length"] == ref["prompt_length"]
        np.testing.assert_array_equal(got["input_ids"], ref["input_ids"].numpy())
        short = st.preprocess(TEXTS, max_length=5)
        np.testing.assert_array_equal(ours.preprocess(TEXTS, max_length=5)["input_ids"], short["input_ids"].numpy())
    else:  # no preprocess in ST 5: the prompt prepended, tokenized at max_seq_length 8
        before = st.max_seq_length
        try:
            st.max_seq_length = 8
            np.testing.assert_array_equal(got["input_ids"], st.tokenize(["query: " + t for t in TEXTS])["input_ids"])
        finally:
            st.max_seq_length = before
    with pytest.raises(InvalidInputError, match=r"pass \[text\]"):
        ours.tokenize(TEXTS[0])
    with pytest.raises(InvalidInputError, match="bogus"):
        ours.preprocess(TEXTS, bogus=1)


def test_no_module_indexing(pair):
    st, ours = pair(TinySpec("bert"))
    assert type(st[0]).__name__ == "Transformer"
    with pytest.raises(InvalidInputError, match=r"no torch modules to index \(model\[0\]\).*Transformer"):
        ours[0]
    with pytest.raises(InvalidInputError, match="no torch modules"):
        list(ours)
    assert len(ours) == len(st)


# -- constructor keywords ------------------------------------------------------------------------------


def _load(onnx_dir, **kwargs):
    return OnnxSentenceEncoder(onnx_dir, threads=1, cache_size=0, metrics=False, **kwargs)


def test_device_and_backend_keywords(tiny_model):
    import torch

    _, onnx_dir = tiny_model(TinySpec("bert"))
    reference = _load(onnx_dir, file_name=FP32_FILE).encode(TEXTS)
    for kwargs in ({"device": "cpu"}, {"device": torch.device("cpu")}, {"backend": "onnx"}):
        np.testing.assert_array_equal(_load(onnx_dir, file_name=FP32_FILE, **kwargs).encode(TEXTS), reference)
    for kwargs, named in (
        ({"device": "cuda"}, "device='cuda'"),
        ({"device": "mps"}, "device='mps'"),
        ({"backend": "torch"}, "backend='torch'"),
        ({"backend": "openvino", "runtime": "onnxruntime"}, "backend='openvino'"),  # test_openvino.py: it loads
    ):
        with pytest.raises(InvalidInputError) as info:
            _load(onnx_dir, **kwargs)
        assert named in str(info.value)


def test_model_kwargs(tiny_model):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    reference = _load(onnx_dir, file_name=FP32_FILE).encode(TEXTS)
    honoured = {"file_name": FP32_FILE, "provider": "CPUExecutionProvider", "export": False, "dtype": "auto"}
    ours = _load(onnx_dir, model_kwargs={**honoured, "torch_dtype": "float32", "attn_implementation": "eager"})
    assert ours.file_name == FP32_FILE
    np.testing.assert_array_equal(ours.encode(TEXTS), reference)
    for model_kwargs, named in (
        ({"dtype": "float16"}, "'dtype'"),
        ({"provider": "CUDAExecutionProvider"}, "CUDAExecutionProvider"),
        ({"export": True}, "'export'"),
        ({"device_map": "auto"}, "'device_map'"),
        ({"quantization_config": {}, "low_cpu_mem_usage": True}, "['low_cpu_mem_usage', 'quantization_config']"),
        ({"file_name": "onnx/other.onnx"}, "disagree"),
    ):
        with pytest.raises(InvalidInputError) as info:
            _load(onnx_dir, file_name=FP32_FILE, model_kwargs=model_kwargs)
        assert named in str(info.value)


def test_processor_kwargs_model_max_length(tiny_model):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(TinySpec("bert"))
    ours = _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"model_max_length": 16})
    assert ours.max_seq_length == 16  # ST 6: processor_kwargs' model_max_length wins over the config's
    if ST6:
        st = SentenceTransformer(str(source), device="cpu", processor_kwargs={"model_max_length": 16})
        assert st.max_seq_length == 16
        assert_close_fp32(ours.encode([LONG_TEXT, *TEXTS]), st.encode([LONG_TEXT, *TEXTS]))
    else:  # ST 5 kept sentence_bert_config.json's max_seq_length
        st = SentenceTransformer(str(source), device="cpu", tokenizer_kwargs={"model_max_length": 16})
        assert st.max_seq_length == MAX_SEQ_LENGTH
    with pytest.raises(InvalidInputError, match=f"{POSITIONS} positions"):
        _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"model_max_length": 1000})
    with pytest.raises(InvalidInputError, match="use_fast"):
        _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"use_fast": True})


def test_tokenizer_kwargs_is_the_deprecated_name(tiny_model, caplog, fresh_warnings):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    with caplog.at_level(logging.WARNING):
        ours = _load(onnx_dir, file_name=FP32_FILE, tokenizer_kwargs={"model_max_length": 12})
    assert ours.max_seq_length == 12
    assert _messages(caplog, "fastembed_adapter") == [RENAMED.format("tokenizer_kwargs", "processor_kwargs")]


def test_processor_kwargs_sides(tiny_model):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(TinySpec("bert"))
    name = "processor_kwargs" if ST6 else "tokenizer_kwargs"
    st = SentenceTransformer(str(source), device="cpu", **{name: {"truncation_side": "left"}})
    ours = _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"truncation_side": "left"})
    assert ours.tokenizer.truncation_side == st.tokenizer.truncation_side == "left"
    assert_close_fp32(ours.encode([LONG_TEXT, *TEXTS]), st.encode([LONG_TEXT, *TEXTS]))
    # padding_side reaches the tokenizer; BERT is only checked there (its ONNX graph assumes right padding)
    st = SentenceTransformer(str(source), device="cpu", **{name: {"padding_side": "left"}})
    ours = _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"padding_side": "left"})
    got, ref = ours.tokenizer.encode(TEXTS), st.tokenize(TEXTS)
    assert got["attention_mask"][1, 0] == 0  # the shorter text is padded on the left
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key], ref[key].numpy(), err_msg=key)
    with pytest.raises(InvalidInputError, match="'middle'"):
        _load(onnx_dir, file_name=FP32_FILE, processor_kwargs={"truncation_side": "middle"})


def test_config_kwargs(tiny_model):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    assert _load(onnx_dir, file_name=FP32_FILE, config_kwargs={}).file_name == FP32_FILE
    with pytest.raises(InvalidInputError, match=r"config_kwargs \['hidden_dropout_prob'\]"):
        _load(onnx_dir, file_name=FP32_FILE, config_kwargs={"hidden_dropout_prob": 0.0})


def test_trust_remote_code(tiny_model, copy_folder):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    assert _load(onnx_dir, file_name=FP32_FILE, trust_remote_code=True).file_name == FP32_FILE  # nothing to trust
    folder = copy_folder(onnx_dir)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / MANIFEST_NAME).unlink()  # a hand-edited folder: the manifest would refuse the changed config
    with pytest.raises(InvalidInputError, match=r"trust_remote_code=True.*auto_map.*trust_remote_code=False"):
        _load(folder, file_name=FP32_FILE, trust_remote_code=True)
    assert _load(folder, file_name=FP32_FILE).encode(TEXTS[:2]).shape == (2, 32)


def test_hub_keywords_reach_resolve_model(tiny_model, monkeypatch):
    _, onnx_dir = tiny_model(TinySpec("bert"))
    calls = []

    def fake_resolve(name_or_path, **kwargs):
        calls.append((name_or_path, kwargs))
        return onnx_dir, FP32_FILE

    monkeypatch.setattr(encoder_module, "resolve_model", fake_resolve)
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    _load("owner/model", cache_folder="/tmp/hf-cache", local_files_only=True, token="hf_x", revision="v1")
    hub = {"cache_folder": "/tmp/hf-cache", "local_files_only": True, "token": "hf_x"}
    assert calls[-1] == ("owner/model", {"file_name": None, "revision": "v1", **hub})
    _load("owner/model")
    assert calls[-1] == ("owner/model", {"file_name": None, "revision": None})
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", "/tmp/st-home")  # ST's default cache_folder
    _load("owner/model")
    assert calls[-1][1]["cache_folder"] == "/tmp/st-home"
    _load(onnx_dir, cache_folder="/tmp/hf-cache", token="hf_x")  # a local folder needs no hub keyword
    assert calls[-1] == (onnx_dir, {"file_name": None, "revision": None})
    with pytest.warns(FutureWarning, match="use_auth_token"):
        _load("owner/model", use_auth_token="hf_old")
    assert calls[-1][1]["token"] == "hf_old"
    with pytest.warns(FutureWarning), pytest.raises(InvalidInputError, match="Both `token` and `use_auth_token`"):
        _load("owner/model", token="a", use_auth_token="b")
    with pytest.raises(InvalidInputError, match="local_files_only"):
        _load("owner/model", local_files_only="yes")
