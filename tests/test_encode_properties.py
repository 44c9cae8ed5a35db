"""Property-based tests of ``OnnxSentenceEncoder.encode()`` (hypothesis) on the tiny random BERT model.

Generated: unicode text of every kind (NUL and other C0/C1 controls, bidi marks, zero-width
characters, combining marks, emoji sequences, CJK and RTL scripts, private-use, non-characters and
astral code points, the special tokens' own text, whitespace only, empty), lists of 0-24 texts, and
every argument of ``encode()`` with odd values, valid and not. Explicit cases add texts of
1,000,000 characters and lists of 5,000 texts (hypothesis would spend its budget building them).

Invariants: shapes and dtypes as sentence-transformers returns them; all finite; unit norm where
the model or ``normalize_embeddings`` normalises; input order kept; a text alone equals its row in
a batch; a cache hit equals the first result bit for bit and the cache never serves a vector of
other tokenization options; odd-but-valid arguments give what ``SentenceTransformer.encode``
gives; every rejection is ``InvalidInputError`` naming the bad value, index or code point; peak
memory is bounded by the tokens per ONNX batch, whatever ``batch_size`` says.

Reproducible: ``derandomize=True`` and no example database, so every CI run fuzzes the same inputs.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from checks import FP32_MIN_COSINE, assert_close_fp32, assert_precision_close, cosines
from fastembed_adapter import InvalidInputError, OnnxSentenceEncoder
from fastembed_adapter.pooling import PRECISIONS, quantize, quantize_matrices
from tiny import FP32_FILE, HIDDEN, MAX_SEQ_LENGTH, TEXTS, TinySpec

DIM = HIDDEN
POSITIONS = 128  # max_position_embeddings of the tiny BERT
NORM_TOLERANCE = 1e-5
# A text alone vs its row in a batch with the INT8 file prepare picks on this CPU. On this AVX2
# machine that is the plain `dynamic` recipe (one activation scale per batch, so a row moves with
# its batch). Measured on the generated texts: worst cosine 1 - 3.7e-8 over this test's 60
# examples, 1 - 5.7e-8 over 500 examples of the same strategy, 1 - 4.8e-8 over 300 random batches
# of 1-40 weird texts (batch_size 1..10**9). (README: the per-token/blocked recipes picked
# elsewhere do not move with the batch at all.) 1e-5 leaves a ~175-fold margin on 1 - cosine and
# still fails a swapped or mixed-up row: different texts of this model are at most 0.961 apart.
INT8_ALONE_MIN_COSINE = 0.99999
# Peak RSS growth (MB, ru_maxrss) of one encode(batch_size=10**9) call in a fresh process with
# max_seq_length=128 (FP32, 1 thread). Measured here: 600 x "中"*300 -> 106 MB (45 MB at
# batch_size=32); 2,100 mixed texts with output_value=None -> 165 MB (100 MB at 32). Without the
# padded-token bound per ONNX batch (planning.batches' max_tokens patched to 10**8) they take
# 391 MB and 876 MB, so 250 MB fails that regression in both while leaving 1.5x headroom.
MAX_ENCODE_PEAK_MB = 250

PROFILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies -----------------------------------------------------------------------------------

SPECIALS = (
    "\x00", "\x01", "\x08", "\x1b", "\x7f", "\x85", "\x9f",  # NUL, C0 and C1 controls
    "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u2028", "\u2029", "\u3000",  # whitespace
    "\u200e", "\u200f", "\u202a", "\u202b", "\u202e", "\u2066", "\u2067", "\u2069", "\u061c",  # bidi marks
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",  # zero-width
    "\u0301", "\u0308", "\u0327", "\u0650", "\u20dd", "\u0e49",  # combining marks
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f44d\U0001f3fd", "\U0001f1fa\U0001f1f3", "\u2764\ufe0f", "1\ufe0f\u20e3", "\U0001f600",  # emoji
    "中", "日本語", "한국어", "عربي", "עברית", "हिन्दी", "ไทย",
    "\ue000", "\U000f0000", "\uffff", "\ufffe", "\ufffd", "\U0010ffff", "\U0001d400",
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "##",  # the special tokens' own text
)  # fmt: skip
WHITESPACE = " \t\n\r\x0b\x0c\x85\u00a0\u1680\u2000\u2009\u202f\u205f\u3000\u2028\u2029"
WORDS = sorted({word for text in TEXTS for word in text.split()})

CHARS = st.characters(codec="utf-8")  # every code point but the surrogates
WEIRD_TEXT = st.lists(st.one_of(CHARS, st.sampled_from(SPECIALS)), max_size=40).map("".join)
WHITESPACE_TEXT = st.text(st.sampled_from(WHITESPACE), max_size=12)
# up to ~120 words: longer than max_seq_length (64 tokens), so truncation shows up
PROSE = st.lists(st.one_of(st.sampled_from(WORDS), WEIRD_TEXT), max_size=120).map(" ".join)
TEXT = st.one_of(st.just(""), WHITESPACE_TEXT, WEIRD_TEXT, PROSE)
TEXT_LISTS = st.lists(TEXT, max_size=24)
BATCH_SIZES = st.sampled_from([1, 2, 3, 7, 32, 10**9, 2**63, np.int64(4), np.int32(5)])
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)


def _show(**values: Any) -> None:
    """Report the generated values of a failing example (schemathesis' pytest plugin blanks hypothesis' own report)."""
    for name, value in values.items():
        note(f"{name} = {value!r}")


def _unit(rows: np.ndarray) -> bool:
    return bool(np.all(np.abs(np.linalg.norm(np.atleast_2d(rows).astype(np.float64), axis=1) - 1) <= NORM_TOLERANCE))


# -- fixtures (built once per module; hypothesis runs every example on them) ---------------------


@pytest.fixture(scope="module")
def folder(prepared_base):
    return prepared_base("bert")


@pytest.fixture(scope="module")
def fp32(folder):
    """FP32, no cache: properties of the computation itself."""
    return OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, cache_size=0, metrics=False)


@pytest.fixture(scope="module")
def cached(folder):
    return OnnxSentenceEncoder(folder, file_name=FP32_FILE, threads=1, cache_size=4096, metrics=False)


@pytest.fixture(scope="module")
def int8(folder):
    """The default file: the INT8 one prepare made for this CPU."""
    encoder = OnnxSentenceEncoder(folder, threads=1, cache_size=0, metrics=False)
    assert "int8" in encoder.file_name
    return encoder


@pytest.fixture(scope="module")
def int8_cached(folder):
    return OnnxSentenceEncoder(folder, threads=1, cache_size=4096, metrics=False)


@pytest.fixture(scope="module")
def reference(pair):
    """(SentenceTransformer, OnnxSentenceEncoder FP32 without cache) on the same tiny model."""
    return pair(TinySpec("bert"))


# -- shapes, dtypes, finiteness, norms -------------------------------------------------------------


@settings(PROFILE, max_examples=150)
@given(text=TEXT, truncate_dim=st.integers(1, DIM + 3))
def test_one_text_gives_one_finite_unit_vector(fp32, text, truncate_dim):
    _show(text=text, truncate_dim=truncate_dim)
    vector = fp32.encode(text)
    assert vector.shape == (DIM,) and vector.dtype == np.float32
    assert np.isfinite(vector).all()
    assert _unit(vector)  # the model ends with Normalize
    np.testing.assert_array_equal(fp32.encode([text]), vector[None])  # the same batch of one
    short = fp32.encode(text, truncate_dim=truncate_dim, normalize_embeddings=True)
    assert short.shape == (min(truncate_dim, DIM),) and short.dtype == np.float32
    assert np.isfinite(short).all() and _unit(short)


@settings(PROFILE, max_examples=100)
@given(texts=TEXT_LISTS, batch_size=BATCH_SIZES, progress=st.sampled_from([None, False, True]), data=st.data())
def test_rows_keep_input_order_and_equal_each_text_alone(fp32, texts, batch_size, progress, data):
    _show(texts=texts, batch_size=batch_size, progress=progress)
    rows = fp32.encode(texts, batch_size=batch_size, show_progress_bar=progress)
    if not texts:  # README: np.asarray([]), shape (0,), float64, as sentence-transformers
        assert rows.shape == (0,) and rows.dtype == np.float64
        return
    assert rows.shape == (len(texts), DIM) and rows.dtype == np.float32
    assert np.isfinite(rows).all() and _unit(rows)
    alone = {text: fp32.encode(text) for text in set(texts)}
    assert cosines(rows, np.stack([alone[text] for text in texts])).min() >= FP32_MIN_COSINE
    order = data.draw(st.permutations(range(len(texts))))
    _show(order=order)
    permuted = fp32.encode([texts[i] for i in order], batch_size=batch_size)
    assert cosines(permuted, rows[order]).min() >= FP32_MIN_COSINE


@settings(PROFILE, max_examples=60)
@given(texts=TEXT_LISTS, batch_size=BATCH_SIZES)
def test_int8_text_alone_equals_its_row(int8, texts, batch_size):
    _show(texts=texts, batch_size=batch_size)
    rows = int8.encode(texts, batch_size=batch_size)
    if not texts:
        assert rows.shape == (0,)
        return
    assert rows.shape == (len(texts), DIM) and rows.dtype == np.float32 and np.isfinite(rows).all()
    alone = {text: int8.encode(text) for text in set(texts)}
    assert cosines(rows, np.stack([alone[text] for text in texts])).min() >= INT8_ALONE_MIN_COSINE
    # one call, one vector per text: copies of a text get the same bits (a later cache hit can only be one)
    doubled = int8.encode([*texts, *texts], batch_size=batch_size)
    assert doubled[: len(texts)].tobytes() == doubled[len(texts) :].tobytes()


# -- the cache -------------------------------------------------------------------------------------


@settings(PROFILE, max_examples=60)
@given(texts=TEXT_LISTS, extra=TEXT_LISTS, batch_size=BATCH_SIZES, use_int8=st.booleans())
def test_a_cache_hit_equals_the_first_result_bit_for_bit(cached, int8_cached, texts, extra, batch_size, use_int8):
    _show(texts=texts, extra=extra, batch_size=batch_size, use_int8=use_int8)
    encoder = int8_cached if use_int8 else cached  # INT8 rows move with their batch; hits must not
    encoder.clear_cache()
    first = encoder.encode(texts, batch_size=batch_size)
    before = encoder.cache_info()
    again = encoder.encode(texts, batch_size=batch_size)
    assert again.tobytes() == first.tobytes() and again.dtype == first.dtype
    assert encoder.cache_info().hits - before.hits == len(texts)
    # hits mixed with misses, in another order and another batch size: still the first result
    mixed = encoder.encode([*extra, *texts[::-1]], batch_size=7)
    if texts:
        assert mixed[len(extra) :].tobytes() == first[::-1].tobytes()


_PROCESSING = st.one_of(
    st.none(),
    st.builds(lambda n: {"text": {"max_length": n}}, st.integers(1, POSITIONS)),
    st.builds(lambda n: {"common": {"max_length": n}}, st.integers(1, POSITIONS)),
    st.just({"text": {"padding": "max_length"}}),
    st.just({"text": {"truncation": False}}),  # texts here stay below the 128 positions
    st.just({"text": {"pad_to_multiple_of": 8}}),
)
_CALL = st.fixed_dictionaries(
    {"texts": st.lists(st.one_of(st.sampled_from(TEXTS), PROSE.map(lambda s: s[:300])), max_size=6)},
    optional={
        "prompt": st.sampled_from(["", "query: ", "passage: ", "[SEP] "]),
        "processing_kwargs": _PROCESSING,
        "max_seq_length": st.integers(1, POSITIONS),
    },
)


@settings(PROFILE, max_examples=50)
@given(calls=st.lists(_CALL, min_size=1, max_size=4))
def test_the_cache_never_serves_a_vector_of_other_options(cached, fp32, calls):
    """A sequence of calls on one cached encoder gives what a fresh uncached encode of each call gives."""
    _show(calls=calls)
    cached.clear_cache()
    try:
        for call in calls:
            call = dict(call)
            texts = call.pop("texts")
            length = call.pop("max_seq_length", MAX_SEQ_LENGTH)
            cached.max_seq_length = fp32.max_seq_length = length
            if call.get("processing_kwargs") == {"text": {"truncation": False}}:
                texts = [text for text in texts if fp32.count_tokens([text], prompt=call.get("prompt"))[0] <= POSITIONS]
            try:
                want = fp32.encode(texts, **call)
            except InvalidInputError:  # e.g. pad_to_multiple_of=8 with max_seq_length=13: refused by both
                with pytest.raises(InvalidInputError):
                    cached.encode(texts, **call)
                continue
            got = cached.encode(texts, **call)
            assert got.shape == want.shape
            if texts:
                assert cosines(got, want).min() >= FP32_MIN_COSINE
    finally:
        cached.max_seq_length = fp32.max_seq_length = MAX_SEQ_LENGTH


# -- odd but valid arguments: what sentence-transformers returns -----------------------------------

_ODD_VALID = st.fixed_dictionaries(
    {},
    optional={
        "batch_size": BATCH_SIZES,
        "normalize_embeddings": st.sampled_from([True, False, 0, 1, None]),
        "convert_to_numpy": st.booleans(),
        "convert_to_tensor": st.booleans(),
        "output_value": st.sampled_from(["sentence_embedding", "token_embeddings", None]),
        "precision": st.sampled_from([*PRECISIONS, None]),
        "truncate_dim": st.sampled_from([None, 1, 5, DIM - 1, DIM, DIM + 1, 10**6, np.int64(4)]),
        "prompt": st.one_of(st.none(), st.sampled_from(["", "query: ", "[CLS]"]), WEIRD_TEXT),
        "prompt_name": st.sampled_from([None, "query", "document"]),
        "show_progress_bar": st.sampled_from([None, False, 0]),  # True: ours only (ST's tqdm costs ~0.4 s a call)
        "device": st.sampled_from([None, "cpu", "cpu:0"]),
        "processing_kwargs": st.sampled_from(
            [None, {}, {"text": {"max_length": 5}}, {"text": {"max_length": np.int64(9)}}, {"audio": {"x": 1}}]
        ),
        "task": st.sampled_from(["query", "document", None]),
        "chunk_size": st.sampled_from([None, 1, -1]),
    },
)


def _as_numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _assert_same_result(got: Any, ref: Any, precision: str) -> None:
    """``got`` (ours) is what ``ref`` (sentence-transformers) is; numpy where ST gives torch (README)."""
    if isinstance(ref, list):
        assert isinstance(got, list) and len(got) == len(ref)
        for row, ref_row in zip(got, ref, strict=True):
            _assert_same_result(row, ref_row, precision)
        return
    if isinstance(ref, dict):  # output_value=None
        assert list(got) == list(ref)
        assert_close_fp32(_as_numpy(got["sentence_embedding"]), _as_numpy(ref["sentence_embedding"]))
        np.testing.assert_array_equal(_as_numpy(got["input_ids"]), _as_numpy(ref["input_ids"]))
        return
    if isinstance(ref, np.ndarray):
        assert isinstance(got, np.ndarray)
    ours, theirs = _as_numpy(got), _as_numpy(ref)
    if ours.size == 0 or theirs.size == 0:
        assert_close_fp32(ours, theirs)  # same shape and dtype
    elif precision in ("int8", "uint8"):  # compared through their float32 results (see the test)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    elif precision.endswith("binary"):
        assert_precision_close(ours, theirs, precision)
    else:
        assert_close_fp32(ours, theirs)


def _requantized(floats: Any, precision: str) -> list[np.ndarray]:
    """``precision`` applied to our float32 result as encode() applies it (one set of buckets per call), as rows."""
    if not isinstance(floats, list):
        return [quantize(_as_numpy(floats), precision)]
    rows = [_as_numpy(row) for row in floats]
    if rows and rows[0].ndim == 2:  # token embeddings
        return quantize_matrices(rows, precision)
    return list(quantize(np.stack(rows), precision)) if rows else []


@settings(PROFILE, max_examples=60)
@given(
    texts=st.one_of(
        TEXT,
        TEXT_LISTS.map(lambda texts: texts[:8]),
        TEXT_LISTS.map(lambda texts: tuple(texts[:8])),
        TEXT_LISTS.map(lambda texts: np.array(texts[:8], dtype=object)),
    ),
    kwargs=_ODD_VALID,
)
def test_odd_valid_arguments_give_what_sentence_transformers_gives(reference, texts, kwargs):
    """ST accepts: ours accepts and returns the same; ST refuses: ours raises InvalidInputError."""
    _show(texts=texts, kwargs=kwargs)
    import torch

    st_model, ours = reference
    precision = kwargs.get("precision") or "float32"
    if kwargs.get("output_value", "sentence_embedding") is None and precision != "float32":
        # deliberate: refused up front (ST fails on it for any non-empty input, returns [] for an empty one)
        with pytest.raises(InvalidInputError, match="output_value=None"):
            ours.encode(texts, **kwargs)
        return
    try:
        ref = st_model.encode(texts, **kwargs)
    except Exception:  # ST's own exception type varies (ValueError, TypeError, KeyError, ...)
        with pytest.raises(InvalidInputError):
            ours.encode(texts, **kwargs)
        return
    got = ours.encode(texts, **kwargs)
    _assert_same_result(got, ref, precision)
    if kwargs.get("convert_to_tensor") and kwargs.get("output_value", "sentence_embedding") == "sentence_embedding":
        assert isinstance(got, torch.Tensor) and got.dtype == ref.dtype
    if precision in ("int8", "uint8") and len(texts):
        # int8/uint8 buckets span each dimension's min..max over the call's rows, so a 1-ulp FP32
        # difference can move a row's extreme by one bucket, and rows that tokenize alike make the
        # range ~0 in ST: compare the float32 results with ST, and our buckets with our floats.
        floats = {**kwargs, "precision": "float32"}
        got_floats = ours.encode(texts, **floats)
        _assert_same_result(got_floats, st_model.encode(texts, **floats), "float32")
        for row, want in zip(got if isinstance(got, list) else [got], _requantized(got_floats, precision), strict=True):
            np.testing.assert_array_equal(_as_numpy(row), want)


# -- rejections: always InvalidInputError, naming what was wrong -----------------------------------


def _assert_named(info: pytest.ExceptionInfo[InvalidInputError], *fragments: str) -> None:
    message = str(info.value)
    message.encode("utf-8")  # loggable: a bad value in the message is escaped (repr), never raw surrogates
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@settings(PROFILE, max_examples=80)
@given(texts=st.lists(WEIRD_TEXT, min_size=1, max_size=8), data=st.data(), single=st.booleans())
def test_a_lone_surrogate_is_refused_naming_index_code_point_and_position(fp32, texts, data, single):
    _show(texts=texts, single=single)
    index = data.draw(st.integers(0, len(texts) - 1))
    position = data.draw(st.integers(0, len(texts[index])))
    surrogate = data.draw(SURROGATES)
    texts[index] = texts[index][:position] + surrogate + texts[index][position:]
    _show(index=index, position=position, surrogate=surrogate)
    inputs = texts[index] if single else texts
    with pytest.raises(InvalidInputError) as info:
        fp32.encode(inputs)
    _assert_named(info, f"inputs[{0 if single else index}]", f"U+{ord(surrogate):04X}", f"character {position}")


_NOT_A_TEXT = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=5),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([np.float64(1.5), np.int64(3), bytearray(b"x"), object(), (x for x in "ab")]),
)


@settings(PROFILE, max_examples=60)
@given(texts=st.lists(WEIRD_TEXT, max_size=6), bad=_NOT_A_TEXT, data=st.data())
def test_a_non_str_item_is_refused_naming_its_index_and_type(fp32, texts, bad, data):
    _show(texts=texts, bad=bad)
    index = data.draw(st.integers(0, len(texts)))
    texts.insert(index, bad)
    _show(index=index)
    with pytest.raises(InvalidInputError) as info:
        fp32.encode(texts)
    _assert_named(info, f"inputs[{index}]", type(bad).__name__)


@settings(PROFILE, max_examples=30)
@given(bad=st.one_of(_NOT_A_TEXT.filter(lambda value: not isinstance(value, list)), st.sets(st.text(max_size=2))))
def test_inputs_that_are_neither_a_str_nor_a_list_are_refused_naming_the_type(fp32, bad):
    _show(bad=bad)
    with pytest.raises(InvalidInputError) as info:
        fp32.encode(bad)
    _assert_named(info, type(bad).__name__)


# Deliberately refused where sentence-transformers takes them by accident (positive_int): a bool
# (ST: batch_size=True is 1, truncate_dim=True keeps 1 column, False none) and truncate_dim <= 0
# (ST returns 0 or dim-1 columns; test_encoder.py pins truncate_dim=0). numpy integers are valid.
_NON_POSITIVE = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=-(2**70), max_value=-(2**63)),
    st.floats(),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from([None, np.float64(2.0), np.bool_(True), "4", [4], 4 + 0j]),
)
_NOT_STR = st.one_of(
    st.integers(),
    st.floats(),
    st.binary(min_size=1, max_size=4),
    st.lists(st.text(max_size=3), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
    st.sampled_from([np.str_, object(), ("x",)]),
)
_BAD_TEXT_OPTION = st.one_of(  # (processing_kwargs, what the message must show)
    st.integers(max_value=0).map(lambda n: ({"text": {"max_length": n}}, repr(n))),
    st.integers(POSITIONS + 1).map(lambda n: ({"common": {"max_length": n}}, f"max_length={n}")),
    st.sampled_from([np.float64(8.0), "8", True]).map(lambda v: ({"text": {"pad_to_multiple_of": v}}, repr(v))),
    st.sampled_from([[1], "text", 3]).map(lambda v: ({"text": v}, repr(v))),
    st.sampled_from(["only_second", None, 2]).map(lambda v: ({"text": {"truncation": v}}, repr(v))),
    st.sampled_from([False, "do_not_pad", None]).map(lambda v: ({"text": {"padding": v}}, repr(v))),
    st.sampled_from(["add_special_tokens", "return_tensors", "stride"]).map(lambda k: ({"text": {k: 1}}, repr(k))),
)


def _bad(name: str, values: st.SearchStrategy[Any], shown: Any = None) -> st.SearchStrategy[tuple[str, Any, str]]:
    """(keyword, bad value, what the message must show): by default the value's repr (messages use ``!r:.80``)."""
    return values.map(lambda value: (name, value, shown(value) if shown else repr(value)[:40]))


def _other_text(*valid: str) -> st.SearchStrategy[str]:
    return st.text().filter(lambda text: text not in valid)


def _type_named(name: str) -> Any:
    return lambda value: f"{name} must be a str or None, got {type(value).__name__}"


_BAD_ARGUMENT = st.one_of(
    _bad("batch_size", _NON_POSITIVE),
    _bad("truncate_dim", _NON_POSITIVE.filter(lambda value: value is not None)),
    _bad("precision", st.one_of(_other_text(*PRECISIONS), _NOT_STR)),
    _bad("output_value", st.one_of(_other_text("sentence_embedding", "token_embeddings"), _NOT_STR)),
    _bad("prompt", _NOT_STR, _type_named("prompt")),
    _bad("prompt_name", _NOT_STR, _type_named("prompt_name")),
    _bad("prompt_name", _other_text("query", "document")),
    _bad("device", st.one_of(_other_text("cpu", "cpu:0"), _NOT_STR)),
    _bad("processing_kwargs", st.one_of(st.integers(), st.text(min_size=1), st.lists(st.integers(), min_size=1))),
    _BAD_TEXT_OPTION.map(lambda case: ("processing_kwargs", *case)),
    _bad("pool", st.one_of(st.integers(), st.dictionaries(st.text(max_size=2), st.integers())), lambda _: "pool="),
    st.just(("output_value", None, "precision='int8'")),  # valid alone, refused with precision='int8'
)


@settings(PROFILE, max_examples=300)
@given(texts=st.one_of(WEIRD_TEXT, st.lists(WEIRD_TEXT, max_size=3)), bad=_BAD_ARGUMENT)
@example(texts="x", bad=("prompt_name", "\x1b[2J", repr("\x1b[2J")))  # shown escaped, not as a terminal escape
@example(texts="x", bad=("prompt_name", "q\ud800", repr("q\ud800")))  # a raw surrogate makes the message unloggable
def test_a_bad_argument_is_refused_naming_the_value(fp32, texts, bad):
    _show(texts=texts, bad=bad)
    name, value, shown = bad
    kwargs = {name: value, **({"precision": "int8"} if name == "output_value" and value is None else {})}
    with pytest.raises(InvalidInputError) as info:
        fp32.encode(texts, **kwargs)
    _assert_named(info, shown)


_ENCODE_PARAMETERS = frozenset(inspect.signature(OnnxSentenceEncoder.encode).parameters) | {"sentences"}


@settings(PROFILE, max_examples=30)
@given(
    name=st.text(st.characters(codec="utf-8", categories=["L", "N", "Pc"]), min_size=1, max_size=12).filter(
        lambda s: s.isidentifier() and s not in _ENCODE_PARAMETERS
    ),
    surrogate=st.booleans(),
)
def test_an_unknown_keyword_is_refused_naming_it(fp32, name, surrogate):
    _show(name=name, surrogate=surrogate)
    name = name + "\ud800" if surrogate else name
    with pytest.raises(InvalidInputError) as info:
        fp32.encode("text", **{name: 1})
    _assert_named(info, repr(name)[:40])


@settings(PROFILE, max_examples=20)
@given(prompt=WEIRD_TEXT, surrogate=SURROGATES, position=st.integers(0, 40))
def test_a_prompt_with_a_lone_surrogate_is_refused_naming_it(fp32, prompt, surrogate, position):
    _show(prompt=prompt, surrogate=surrogate, position=position)
    position = min(position, len(prompt))
    with pytest.raises(InvalidInputError) as info:
        fp32.encode("text", prompt=prompt[:position] + surrogate + prompt[position:])
    _assert_named(info, "prompt", f"U+{ord(surrogate):04X}", f"character {position}")


@settings(PROFILE, max_examples=25)
@given(
    texts=st.lists(st.sampled_from(TEXTS), max_size=5),
    long_text=st.lists(st.sampled_from(WORDS), min_size=POSITIONS, max_size=400).map(" ".join),
    data=st.data(),
    prompt=st.sampled_from([None, "query: "]),
)
def test_a_text_too_long_for_the_positions_is_refused_naming_it(fp32, texts, long_text, data, prompt):
    """truncation=False and a text past the 128 positions: the message shows that text and its token count."""
    _show(texts=texts, long_text=long_text, prompt=prompt)
    index = data.draw(st.integers(0, len(texts)))
    texts.insert(index, long_text)
    tokens = fp32.count_tokens([long_text], prompt=prompt)[0]
    with pytest.raises(InvalidInputError) as info:
        fp32.encode(texts, prompt=prompt, processing_kwargs={"text": {"truncation": False}})
    _assert_named(info, repr(long_text)[:30], f"{tokens} tokens", f"{POSITIONS} positions")


# -- explicit big inputs ---------------------------------------------------------------------------

MILLION = 1_000_000
# (text, a short text with the same tokens after truncation to max_seq_length). The tiny model's
# BertNormalizer drops controls, format characters (bidi, zero-width) and accents.
BIG_TEXTS = {
    "cjk": ("中" * MILLION, "中" * 100),  # one token per character: the most tokens per character
    "words": ("word " * (MILLION // 5), "word " * 100),
    "zero-width": ("\u200b" * MILLION, ""),
    "spaces-then-word": (" " * (MILLION - 1) + "x", "x"),
    "combining": ("e" + "\u0301" * (MILLION - 1), "e"),
    "nul": ("\x00" * MILLION, ""),
    "rtl-override": ("\u202e" * (MILLION // 2) + "abc", "abc"),
}


@pytest.mark.parametrize("case", list(BIG_TEXTS))
def test_a_million_characters_encode_as_their_truncation(fp32, case):
    text, same_tokens = BIG_TEXTS[case]
    vector = fp32.encode(text)
    assert vector.shape == (DIM,) and np.isfinite(vector).all() and _unit(vector)
    np.testing.assert_array_equal(vector, fp32.encode(same_tokens))


def _many_texts(n: int, seed: int) -> list[str]:
    """``n`` texts of 0-300 characters mixing words and weird characters, the same on every run."""
    rng = np.random.default_rng(seed)
    pool = [*WORDS, *SPECIALS, *WHITESPACE]
    return ["".join(rng.choice(pool, size=int(rng.integers(0, 60)))) for _ in range(n)]


@pytest.mark.parametrize("texts", [["x"] * 5000, _many_texts(5000, seed=0)], ids=["same-5000", "mixed-5000"])
def test_five_thousand_texts(fp32, cached, texts):
    cached.clear_cache()
    rows = cached.encode(texts, batch_size=10**9)
    assert rows.shape == (5000, DIM) and rows.dtype == np.float32 and np.isfinite(rows).all() and _unit(rows)
    assert cached.encode(texts).tobytes() == rows.tobytes()  # all hits
    # README: batch_size=10**9 gives the same vectors as 32
    assert cosines(rows, fp32.encode(texts)).min() >= FP32_MIN_COSINE
    sample = np.random.default_rng(1).choice(5000, size=40, replace=False)
    alone = np.stack([fp32.encode(texts[i]) for i in sample])
    assert cosines(rows[sample], alone).min() >= FP32_MIN_COSINE


# -- peak memory -----------------------------------------------------------------------------------

_MEMORY_SCRIPT = """
import json, resource, sys
from fastembed_adapter import OnnxSentenceEncoder
folder, case = sys.argv[1], sys.argv[2]
encoder = OnnxSentenceEncoder(folder, file_name="onnx/model.onnx", threads=1, cache_size=0, metrics=False)
encoder.max_seq_length = 128
encoder.encode(["warm up"] * 64)
texts = {
    "cjk-600": ["中" * 300] * 600,
    "mixed-2100": [("中" * (i % 300)) + " word" * (i % 50) for i in range(2100)],  # > one window (2,048)
}[case]
kwargs = {"output_value": None} if case == "mixed-2100" else {}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
encoder.encode(texts, batch_size=10**9, **kwargs)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_growth_mb": (after - before) / 1024}))
"""


@pytest.mark.parametrize("case", ["cjk-600", "mixed-2100"])
def test_peak_memory_is_bounded_by_tokens_per_batch_not_batch_size(folder, case):
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(folder), case], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    growth = json.loads(done.stdout.strip().splitlines()[-1])["peak_growth_mb"]
    assert growth < MAX_ENCODE_PEAK_MB, growth
