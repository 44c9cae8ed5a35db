"""OnnxSentenceEncoder vs SentenceTransformer.encode on the same tiny random models (FP32 file)."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import pytest

from checks import FP32_MAX_ABS, assert_close_fp32, assert_precision_close, st_dimension
from fastembed_adapter import (
    CorruptModelError,
    InvalidInputError,
    ModelNotFoundError,
    OnnxSentenceEncoder,
    UnsupportedModelError,
)
from fastembed_adapter.layout import MANIFEST_NAME
from fastembed_adapter.pooling import quantize
from tiny import ARCHITECTURES, FP32_FILE, MAX_SEQ_LENGTH, POOLING_MODES, TEXTS, TinySpec, int8_file

# sentence-transformers 6 changed a few results (int8 buckets, ...): compare to ST where it has ours.
ST6 = int(version("sentence-transformers").split(".")[0]) >= 6

SPECS = [TinySpec(arch, mode, normalize=mode == "mean") for arch in ARCHITECTURES for mode in POOLING_MODES] + [
    TinySpec("bert", "mean", normalize=False)
]
BASE_SPECS = [TinySpec(arch) for arch in ARCHITECTURES]
LONG_TEXT = " ".join(["the old lighthouse keeper noticed a strange light over the harbour"] * 40)
PROMPTS = {"query": "query: ", "document": "passage: "}
INPUTS = {
    "str": TEXTS[0],
    "list": TEXTS,
    "tuple": tuple(TEXTS[:3]),
    "ndarray": np.array(TEXTS[:4]),
    "empty_list": [],
    "empty_string": "",
    "empty_string_in_list": ["", TEXTS[1]],
    "long_text": [LONG_TEXT, TEXTS[1]],
    "whitespace": ["  padded text with spaces  ", "\ttabbed\n", " "],
}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("kind", list(INPUTS))
def test_parity_per_input_kind(pair, spec, kind):
    st, ours = pair(spec)
    sentences = INPUTS[kind]
    assert_close_fp32(ours.encode(sentences), st.encode(sentences))


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
def test_shapes_and_dtype(pair, spec):
    st, ours = pair(spec)
    single, batch, empty = ours.encode(TEXTS[0]), ours.encode(TEXTS), ours.encode([])
    assert single.shape == (32,) and single.dtype == np.float32
    assert batch.shape == (len(TEXTS), 32) and batch.dtype == np.float32
    ref_empty = st.encode([])
    assert empty.shape == ref_empty.shape == (0,)
    assert empty.dtype == ref_empty.dtype
    assert ours.get_sentence_embedding_dimension() == st_dimension(st)
    assert ours.max_seq_length == st.max_seq_length == MAX_SEQ_LENGTH


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
def test_long_text_is_truncated(pair, spec):
    st, ours = pair(spec)
    tokens = ours.encode(LONG_TEXT, output_value="token_embeddings")
    assert len(tokens) == MAX_SEQ_LENGTH == len(st.encode(LONG_TEXT, output_value="token_embeddings"))
    # Everything past the limit is cut: appending more text changes nothing.
    np.testing.assert_allclose(ours.encode(LONG_TEXT + " more words"), ours.encode(LONG_TEXT), atol=FP32_MAX_ABS)


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_batch_size(pair, spec, batch_size):
    st, ours = pair(spec)
    assert_close_fp32(ours.encode(TEXTS, batch_size=batch_size), st.encode(TEXTS, batch_size=batch_size))


@pytest.mark.parametrize("normalize_embeddings", [True, False])
def test_normalize_embeddings(pair, normalize_embeddings):
    st, ours = pair(TinySpec("bert", "cls", normalize=False))
    ref = st.encode(TEXTS, normalize_embeddings=normalize_embeddings)
    got = ours.encode(TEXTS, normalize_embeddings=normalize_embeddings)
    assert_close_fp32(got, ref)
    norms = np.linalg.norm(got, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) == normalize_embeddings


@pytest.mark.parametrize("sentences", [TEXTS, TEXTS[0], []], ids=["list", "str", "empty"])
def test_convert_to_tensor(pair, sentences):
    import torch

    st, ours = pair(TinySpec("bert"))
    ref, got = st.encode(sentences, convert_to_tensor=True), ours.encode(sentences, convert_to_tensor=True)
    assert isinstance(got, torch.Tensor)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert_close_fp32(got.numpy(), ref.numpy())


def test_convert_to_numpy_false_gives_list(pair):
    st, ours = pair(TinySpec("bert"))
    ref, got = st.encode(TEXTS[:3], convert_to_numpy=False), ours.encode(TEXTS[:3], convert_to_numpy=False)
    assert isinstance(got, list) and len(got) == len(ref) == 3
    for row, ref_row in zip(got, ref, strict=True):
        assert_close_fp32(np.asarray(row), ref_row.numpy())


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("truncate_dim", [1, 8, 32, 64])
def test_truncate_dim_argument(pair, spec, truncate_dim):
    st, ours = pair(spec)
    got = ours.encode(TEXTS, truncate_dim=truncate_dim)
    assert got.shape == (len(TEXTS), min(truncate_dim, 32))
    assert_close_fp32(got, st.encode(TEXTS, truncate_dim=truncate_dim))


def test_truncate_dim_constructor(tiny_model, st_models):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(TinySpec("bert"))
    st = SentenceTransformer(str(source), device="cpu", truncate_dim=8)
    ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1, truncate_dim=8)
    assert ours.get_sentence_embedding_dimension() == st_dimension(st) == 8
    assert_close_fp32(ours.encode(TEXTS), st.encode(TEXTS))
    # an explicit argument wins over the constructor's
    assert_close_fp32(ours.encode(TEXTS, truncate_dim=4), st.encode(TEXTS, truncate_dim=4))


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
def test_token_embeddings(pair, spec):
    st, ours = pair(spec)
    texts = [*TEXTS, LONG_TEXT]
    ref, got = st.encode(texts, output_value="token_embeddings"), ours.encode(texts, output_value="token_embeddings")
    assert isinstance(got, list) and len(got) == len(ref)
    for row, ref_row in zip(got, ref, strict=True):
        assert len(row) == len(ref_row)
        assert_close_fp32(np.asarray(row), ref_row.numpy())
    single = ours.encode(TEXTS[0], output_value="token_embeddings")
    assert_close_fp32(np.asarray(single), st.encode(TEXTS[0], output_value="token_embeddings").numpy())


def test_output_value_none(pair):
    st, ours = pair(TinySpec("bert"))
    ref, got = st.encode(TEXTS[:3], output_value=None), ours.encode(TEXTS[:3], output_value=None)
    assert len(got) == len(ref) == 3
    for row, ref_row in zip(got, ref, strict=True):
        assert_close_fp32(np.asarray(row["sentence_embedding"]), ref_row["sentence_embedding"].numpy())
        np.testing.assert_array_equal(row["attention_mask"], ref_row["attention_mask"].numpy())
        np.testing.assert_array_equal(row["input_ids"], ref_row["input_ids"].numpy())


def test_output_value_none_keeps_st_batches(pair):
    """Rows of output_value=None carry the padded batch inputs: same batches as ST, same widths."""
    st, ours = pair(TinySpec("bert"))
    ref, got = st.encode(TEXTS, output_value=None, batch_size=3), ours.encode(TEXTS, output_value=None, batch_size=3)
    for row, ref_row in zip(got, ref, strict=True):
        np.testing.assert_array_equal(row["input_ids"], ref_row["input_ids"].numpy())
        assert_close_fp32(np.asarray(row["sentence_embedding"]), ref_row["sentence_embedding"].numpy())


def _padded_tokens(counts: list[int], batch_size: int) -> int:
    batches = [counts[i : i + batch_size] for i in range(0, len(counts), batch_size)]
    return sum(max(batch) * len(batch) for batch in batches)


def test_batches_are_cut_by_token_count(pair, monkeypatch):
    """Texts go longest first in characters (ST's order), then each window is regrouped by token count."""
    st, ours = pair(TinySpec("bert"))
    texts = [*TEXTS, "! ? ! ? ! ? ! ?", "!?!?!?!?!?!?", "internationalization", "x y z w v u"]
    counts = [len(enc.ids) for enc in ours.tokenizer.tokenize(texts)]
    by_chars = [counts[i] for i in np.argsort([-len(t) for t in texts])]
    best = _padded_tokens(sorted(counts, reverse=True), 3)
    assert _padded_tokens(by_chars, 3) > best, "the texts must order differently by characters and by tokens"
    widths: list[tuple[int, int]] = []
    run = ours.session.run
    monkeypatch.setattr(ours.session, "run", lambda f: widths.append(f["input_ids"].shape) or run(f))
    got = ours.encode(texts, batch_size=3)
    assert sum(rows * width for rows, width in widths) == best
    assert_close_fp32(got, st.encode(texts, batch_size=3))


def test_progress_bar_counts_batches(pair, capsys):
    _, ours = pair(TinySpec("bert"))
    ours.encode(TEXTS, batch_size=3, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Batches" in err and "4/4" in err


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision(pair, spec, precision):
    st, ours = pair(spec)
    texts = [*TEXTS, *(t.upper() for t in TEXTS)]
    # ST 5 truncated (x - min) / step - 128 toward zero; ST 6 floors, as we do
    ref = st.encode(texts, precision=precision) if ST6 or precision != "int8" else quantize(st.encode(texts), precision)
    assert_precision_close(ours.encode(texts, precision=precision), ref, precision)


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
def test_order_preserved_and_row_equals_single(pair, spec):
    _, ours = pair(spec)
    batch = ours.encode(TEXTS, batch_size=4)
    for index, text in enumerate(TEXTS):
        np.testing.assert_allclose(ours.encode(text), batch[index], atol=FP32_MAX_ABS)
    reversed_batch = ours.encode(TEXTS[::-1], batch_size=4)
    np.testing.assert_allclose(reversed_batch[::-1], batch, atol=FP32_MAX_ABS)


def test_second_call_equals_first(pair):
    _, ours = pair(TinySpec("mpnet"))
    np.testing.assert_array_equal(ours.encode(TEXTS), ours.encode(TEXTS))


@pytest.mark.parametrize("spec", BASE_SPECS, ids=lambda s: s.name)
def test_max_seq_length_setter(tiny_model, spec):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(spec)
    st = SentenceTransformer(str(source), device="cpu")
    ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1)
    before = ours.encode(TEXTS)
    st.max_seq_length = ours.max_seq_length = 6
    assert ours.max_seq_length == ours.get_max_seq_length() == st.max_seq_length == 6
    got = ours.encode(TEXTS)
    assert_close_fp32(got, st.encode(TEXTS))
    assert not np.allclose(got[0], before[0], atol=FP32_MAX_ABS)
    assert len(ours.encode(TEXTS[0], output_value="token_embeddings")) == 6


# -- prompts ------------------------------------------------------------------------------------

PROMPT_SPECS = [
    TinySpec("bert", prompts=PROMPTS),
    TinySpec("bert", prompts=PROMPTS, include_prompt=False),
    TinySpec("mpnet", prompts=PROMPTS, include_prompt=False),
]


@pytest.mark.parametrize("spec", PROMPT_SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"prompt_name": "query"}, {"prompt_name": "document"}, {"prompt": "custom prompt: "}, {"prompt": ""}],
    ids=["none", "query", "document", "prompt", "empty-prompt"],
)
def test_prompts(pair, spec, kwargs):
    st, ours = pair(spec)
    texts = [*TEXTS, LONG_TEXT]
    assert_close_fp32(ours.encode(texts, **kwargs), st.encode(texts, **kwargs))
    assert_close_fp32(ours.encode(texts[0], **kwargs), st.encode(texts[0], **kwargs))


def test_prompt_changes_output_and_include_prompt_matters(pair):
    _, with_prompt = pair(PROMPT_SPECS[0])
    _, without_prompt = pair(PROMPT_SPECS[1])
    plain = with_prompt.encode(TEXTS)
    assert not np.allclose(with_prompt.encode(TEXTS, prompt_name="query"), plain, atol=1e-3)
    assert not np.allclose(
        without_prompt.encode(TEXTS, prompt_name="query"), with_prompt.encode(TEXTS, prompt_name="query"), atol=1e-3
    )


def test_default_prompt_name(tiny_model):
    from sentence_transformers import SentenceTransformer

    source, onnx_dir = tiny_model(PROMPT_SPECS[1])
    st = SentenceTransformer(str(source), device="cpu", default_prompt_name="query")
    ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1, default_prompt_name="query")
    assert_close_fp32(ours.encode(TEXTS), st.encode(TEXTS))
    assert_close_fp32(ours.encode(TEXTS, prompt_name="document"), st.encode(TEXTS, prompt_name="document"))


def test_unknown_prompt_name(pair):
    st, ours = pair(PROMPT_SPECS[0])
    with pytest.raises(ValueError, match="nope"):
        st.encode(TEXTS, prompt_name="nope")
    with pytest.raises(InvalidInputError, match="nope") as info:
        ours.encode(TEXTS, prompt_name="nope")
    assert "'query'" in str(info.value) and "'document'" in str(info.value)  # names the valid choices


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(pair):
    return pair(TinySpec("bert"))[1]


@pytest.mark.parametrize(
    ("sentences", "named"),
    [(None, "NoneType"), (42, "int"), (["a", None], "inputs[1]"), ([b"bytes"], "bytes"), ({"a": 1}, "dict")],
)
def test_bad_sentences(encoder, sentences, named):
    with pytest.raises(InvalidInputError) as info:
        encoder.encode(sentences)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "-3"),
        ({"batch_size": 2.5}, "2.5"),
        ({"unknown_kwarg": 1}, "unknown_kwarg"),
        ({"device": "cuda"}, "cuda"),
        ({"precision": "float16"}, "float16"),
        ({"output_value": "pooled"}, "pooled"),
        ({"truncate_dim": 0}, "truncate_dim"),
    ],
)
def test_bad_arguments(encoder, kwargs, named):
    with pytest.raises(InvalidInputError) as info:
        encoder.encode(TEXTS[:2], **kwargs)
    assert named in str(info.value)


def test_invalid_input_error_is_value_and_type_error():
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputError, TypeError)


def test_device_cpu_accepted(encoder):
    assert encoder.device == "cpu"
    np.testing.assert_array_equal(encoder.encode(TEXTS[:2], device="cpu"), encoder.encode(TEXTS[:2]))


def test_bad_max_seq_length(encoder):
    with pytest.raises(InvalidInputError, match="-1"):
        encoder.max_seq_length = -1


def test_missing_folder(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(ModelNotFoundError) as info:
        OnnxSentenceEncoder(missing)
    assert "does-not-exist" in str(info.value)


def test_folder_without_onnx_files(make_st_model, copy_folder):
    folder = copy_folder(make_st_model(TinySpec("bert")))
    with pytest.raises(ModelNotFoundError, match=r"no onnx/\*\.onnx") as info:
        OnnxSentenceEncoder(folder)
    assert folder.name in str(info.value)


def test_unknown_file_name(prepared_base):
    with pytest.raises(ModelNotFoundError, match=r"model_fp16\.onnx"):
        OnnxSentenceEncoder(prepared_base("bert"), file_name="onnx/model_fp16.onnx")


def test_truncated_onnx_fails_manifest_check(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    name = int8_file()
    path = folder / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptModelError) as info:
        OnnxSentenceEncoder(folder)
    assert Path(name).name in str(info.value)
    assert "manifest" in str(info.value)


def test_changed_weight_that_still_loads_fails_manifest_check(prepared_base, copy_folder):
    """A same-size change ONNX Runtime cannot see (one weight byte) is caught by the sha256 check."""
    folder = copy_folder(prepared_base("bert"))
    path = folder / (FP32_FILE + "_data")  # the weights sit in <file>.onnx_data
    data = bytearray(path.read_bytes())
    weight = max(onnx.load(str(folder / FP32_FILE)).graph.initializer, key=lambda init: len(init.raw_data)).raw_data
    at = data.find(weight) + len(weight) // 2
    assert 0 <= at < len(data)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match="manifest") as info:
        OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    assert "model.onnx_data" in str(info.value)
    (folder / MANIFEST_NAME).unlink()
    OnnxSentenceEncoder(folder, file_name=FP32_FILE)  # the file itself still loads


def _flip_token(path: Path) -> None:
    """One changed byte that keeps tokenizer.json valid JSON: a vocabulary token's first letter."""
    text = path.read_text(encoding="utf-8")
    at = text.index('"vocab"')
    at = text.index('"qu', at) + 1  # a token starting with "qu" (there are several in the tiny vocabulary)
    path.write_text(text[:at] + "x" + text[at + 1 :], encoding="utf-8")


def _mean_to_cls(path: Path) -> None:
    """Pooling mean -> cls, in the config format the installed sentence-transformers writes (6.x or 5.x)."""
    config = json.loads(path.read_text())
    if "pooling_mode" in config:
        config["pooling_mode"] = "cls"
    else:
        config["pooling_mode_mean_tokens"], config["pooling_mode_cls_token"] = False, True
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("tokenizer.json", _flip_token),
        ("1_Pooling/config.json", _mean_to_cls),
        (
            "tokenizer_config.json",
            lambda p: p.write_text(p.read_text().replace('"model_max_length"', '"model_max_length_"')),
        ),
    ],
)
def test_a_changed_file_that_changes_vectors_fails_the_manifest_check(prepared_base, copy_folder, name, damage):
    """The probe's silent wrong vectors: a damaged tokenizer or pooling config loaded without a word."""
    folder = copy_folder(prepared_base("bert"))
    before = (folder / name).read_bytes()
    damage(folder / name)
    assert (folder / name).read_bytes() != before
    with pytest.raises(CorruptModelError, match="does not match the manifest") as info:
        OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    assert name in str(info.value)
    (folder / "report.json").write_text("{}")  # descriptive files are not checked
    (folder / name).write_bytes(before)
    OnnxSentenceEncoder(folder, file_name=FP32_FILE)


def test_a_foreign_onnx_file_is_refused_without_a_manifest(prepared_base, copy_folder):
    """The graph's token width must match the pooling config's (a 768-d file in a 384-d folder)."""
    folder = copy_folder(prepared_base("bert"))
    (folder / MANIFEST_NAME).unlink()
    path = folder / "1_Pooling" / "config.json"
    config = json.loads(path.read_text())
    key = "embedding_dimension" if "embedding_dimension" in config else "word_embedding_dimension"  # ST 6 / 5
    config[key] *= 2
    path.write_text(json.dumps(config))
    with pytest.raises(CorruptModelError, match=r"gives 32-d token vectors but the pooling config expects 64-d"):
        OnnxSentenceEncoder(folder, file_name=FP32_FILE)


def test_missing_weights_file_is_named(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    (folder / (int8_file() + "_data")).unlink()
    with pytest.raises(ModelNotFoundError, match=r"_data' is missing: the manifest lists it"):
        OnnxSentenceEncoder(folder)
    (folder / MANIFEST_NAME).unlink()  # without the manifest, ONNX Runtime's own complaint, translated
    with pytest.raises(CorruptModelError, match=rf"cannot load .*{Path(int8_file()).stem}") as info:
        OnnxSentenceEncoder(folder)
    assert not isinstance(info.value.__cause__, CorruptModelError)


def test_truncated_weights_file_without_manifest_fails_at_load(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    (folder / MANIFEST_NAME).unlink()
    path = folder / (int8_file() + "_data")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptModelError, match="cannot load"):
        OnnxSentenceEncoder(folder)


def test_garbage_onnx_without_manifest_fails_at_load(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    (folder / MANIFEST_NAME).unlink()
    (folder / FP32_FILE).write_bytes(b"this is not an onnx protobuf" * 100)
    with pytest.raises(CorruptModelError) as info:
        OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    assert "model.onnx" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)


def test_unknown_pooling_mode(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    config_path = folder / "1_Pooling" / "config.json"
    config = json.loads(config_path.read_text())
    config["pooling_mode"] = "median_tokens"
    config_path.write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError) as info:
        OnnxSentenceEncoder(folder)
    assert "median_tokens" in str(info.value)
    assert "mean" in str(info.value)  # lists the valid modes


def test_missing_tokenizer(prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json"):
        OnnxSentenceEncoder(folder)


def test_default_file_is_int8_for_this_cpu(prepared_base):
    ours = OnnxSentenceEncoder(prepared_base("bert"), threads=1)
    assert ours.file_name == int8_file()
    assert "OnnxSentenceEncoder(" in repr(ours)


def test_copy_without_manifest_still_loads(prepared_base, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(prepared_base("mpnet"), folder)
    (folder / MANIFEST_NAME).unlink()
    reference = OnnxSentenceEncoder(prepared_base("mpnet"), file_name=FP32_FILE, threads=1).encode(TEXTS)
    np.testing.assert_array_equal(OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1).encode(TEXTS), reference)


# -- the rest of the SentenceTransformer surface -------------------------------------------------
@pytest.mark.parametrize("spec", PROMPT_SPECS[:2], ids=lambda s: s.name)
@pytest.mark.parametrize("method", ["encode_query", "encode_document"])
def test_encode_query_and_document(pair, spec, method):
    st, ours = pair(spec)
    assert_close_fp32(getattr(ours, method)(TEXTS), getattr(st, method)(TEXTS))
    assert_close_fp32(getattr(ours, method)(TEXTS[0], prompt="x: "), getattr(st, method)(TEXTS[0], prompt="x: "))


def test_prompts_attribute_matches(pair):
    for spec in (PROMPT_SPECS[0], BASE_SPECS[0]):
        st, ours = pair(spec)
        assert ours.prompts == st.prompts
        assert ours.default_prompt_name == st.default_prompt_name


@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions(pair, name):
    st, ours = pair(BASE_SPECS[0])
    a, b = ours.encode(TEXTS[:4]), ours.encode(TEXTS[4:9])
    st.similarity_fn_name = name
    ours.similarity_fn_name = name
    np.testing.assert_allclose(ours.similarity(a, b), st.similarity(a, b).numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.similarity(a[0], b[0]), st.similarity(a[0], b[0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.similarity_pairwise(a, b[:4]), st.similarity_pairwise(a, b[:4]).numpy(), atol=1e-5)
    ours.similarity_fn_name = st.similarity_fn_name = "cosine"


def test_unknown_similarity_name(pair):
    _, ours = pair(BASE_SPECS[0])
    with pytest.raises(InvalidInputError, match=r"'jaccard'.*cosine, dot, euclidean, manhattan"):
        ours.similarity_fn_name = "jaccard"


def test_dimension_len_and_device(pair):
    st, ours = pair(BASE_SPECS[0])
    assert ours.get_embedding_dimension() == st_dimension(st)
    assert len(ours) == len(st)
    assert ours.device == "cpu"
    assert ours.similarity_fn_name == st.similarity_fn_name


@pytest.mark.parametrize(("cpu", "warns"), [("avx2", True), ("avx512", True), ("avx512_vnni", False)])
def test_vnni_file_on_a_cpu_without_vnni_warns(prepared_base, copy_folder, monkeypatch, cpu, warns):
    import shutil
    import warnings

    from fastembed_adapter import encoder as encoder_module
    from fastembed_adapter.cpu import QuantTarget
    from fastembed_adapter.layout import int8_file_name

    folder = copy_folder(prepared_base("bert"))
    (folder / MANIFEST_NAME).unlink()
    name = int8_file_name(QuantTarget.AVX512_VNNI)  # a file made for VNNI, whatever this machine is
    shutil.copyfile(folder / FP32_FILE, folder / name)
    monkeypatch.setattr(encoder_module, "detect_target", lambda: QuantTarget(cpu))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        OnnxSentenceEncoder(folder, file_name=name, threads=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert bool(messages) is warns, messages
    if warns:
        assert "AVX512-VNNI" in messages[0] and "prepare --target auto" in messages[0]


def test_session_load_hands_freed_heap_back(tiny_model, monkeypatch):
    from fastembed_adapter import session as session_module

    _, folder = tiny_model(TinySpec())
    calls = []
    monkeypatch.setattr(session_module, "release_freed_memory", lambda: calls.append(1))
    OnnxSentenceEncoder(folder, threads=1)
    assert calls == [1]
    monkeypatch.undo()
    session_module.release_freed_memory()  # the real one: no error on this platform either
    monkeypatch.setattr(session_module.sys, "platform", "darwin")
    session_module.release_freed_memory()  # a no-op elsewhere
