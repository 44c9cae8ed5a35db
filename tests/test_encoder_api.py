"""The encoder API the server (and later encoders) build on: prompts, token counts, token listings,
and the vector before the model's final Normalize — each against sentence-transformers computed live."""

from __future__ import annotations

import numpy as np
import pytest

from checks import assert_close_fp32
from fastembed_adapter import InvalidInputError, OnnxSentenceEncoder
from tiny import FP32_FILE, MAX_SEQ_LENGTH, TEXTS, TinySpec

PROMPTS = {"query": "query: ", "document": "passage: "}
LONG = " ".join(TEXTS * 3)  # past max_seq_length


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model(TinySpec("bert", dense="tanh", prompts=PROMPTS, default_prompt_name="query"))


def test_resolve_prompt_is_encodes(model, st_models):
    source, folder = model
    ours, st = OnnxSentenceEncoder(folder, file_name=FP32_FILE), st_models(source)
    assert ours.resolve_prompt() == PROMPTS["query"]  # the default prompt
    assert ours.resolve_prompt(prompt_name="document") == PROMPTS["document"]
    assert ours.resolve_prompt(prompt="mine: ", prompt_name="document") == "mine: "
    with pytest.raises(InvalidInputError, match=r"Prompt name 'nope' not found.*\['query', 'document'\]"):
        ours.resolve_prompt(prompt_name="nope")
    with pytest.raises(ValueError, match=r"Prompt name 'nope' not found"):
        st.encode("x", prompt_name="nope")  # the same words as sentence-transformers


def test_count_tokens_untruncated_with_the_prompt(model, st_models):
    source, folder = model
    ours, st = OnnxSentenceEncoder(folder, file_name=FP32_FILE), st_models(source)
    texts = [*TEXTS, LONG, ""]
    for name in ("query", "document"):
        expected = [len(st.tokenizer(PROMPTS[name] + text)["input_ids"]) for text in texts]
        assert ours.count_tokens(texts, prompt_name=name) == expected
    assert ours.count_tokens([LONG], prompt="")[0] > MAX_SEQ_LENGTH  # not truncated
    fresh = OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    calls = []
    clone = fresh.tokenizer._truncating(None)

    class Counting:
        def encode_batch_fast(self, batch, add_special_tokens=True):
            calls.append(list(batch))
            return clone.encode_batch_fast(batch, add_special_tokens=add_special_tokens)

    fresh.tokenizer._clones[None] = Counting()  # type: ignore[assignment]
    counts = fresh.count_tokens(texts)
    assert fresh.count_tokens(texts) == counts  # the second count reuses the first one's tokens
    assert calls == [[PROMPTS["query"] + text for text in texts]]  # one Rust call for the whole list, each text once


def test_token_encodings_carry_offsets(model):
    _, folder = model
    ours = OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    (encoding,) = ours.token_encodings(["The old lighthouse"], prompt="", add_special_tokens=False)
    assert encoding.tokens == ["the", "old", "lighthouse"] and encoding.offsets == [(0, 3), (4, 7), (8, 18)]
    (with_prompt,) = ours.token_encodings(["x"], prompt_name="document")
    assert with_prompt.tokens[0] == "[CLS]" and len(with_prompt.ids) == ours.count_tokens(["x"], "document")[0]


def test_encode_unnormalized_is_the_model_without_its_final_normalize(model, st_models):
    from sentence_transformers import SentenceTransformer

    source, folder = model
    st = st_models(source)
    assert type(st[len(st) - 1]).__name__ == "Normalize"
    without = SentenceTransformer(modules=[st[i] for i in range(len(st) - 1)], device="cpu", prompts=PROMPTS)
    texts = [*TEXTS, LONG]
    ours = OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    got = ours.encode_unnormalized(texts, prompt_name="document")
    assert_close_fp32(got, without.encode(texts, prompt_name="document"))
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)  # really before the Normalize
    # cached apart from encode()'s normalized vectors, and equal on the second call
    assert_close_fp32(ours.encode(texts, prompt_name="document"), st.encode(texts, prompt_name="document"))
    np.testing.assert_array_equal(ours.encode_unnormalized(texts, prompt_name="document"), got)
    assert ours.encode_unnormalized([]).shape == (0, ours.get_sentence_embedding_dimension())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"inputs": "a\ud800b"}, r"inputs\[0\] holds a lone surrogate U\+D800 at character 1"),
        ({"inputs": ["ok", "x\udfffy"]}, r"inputs\[1\] holds a lone surrogate U\+DFFF at character 1"),
        ({"inputs": "x", "prompt": 5}, r"prompt must be a str or None, got int: 5"),
        ({"inputs": "x", "prompt": b"x"}, r"prompt must be a str or None, got bytes"),
        ({"inputs": "x", "prompt": ["x"]}, r"prompt must be a str or None, got list"),
        ({"inputs": "x", "prompt_name": ["x"]}, r"prompt_name must be a str or None, got list"),
        ({"inputs": "x", "prompt": "\ud83d"}, r"prompt holds a lone surrogate U\+D83D"),
    ],
)
def test_bad_text_and_prompt_values_are_named(model, st_models, call, match):
    """Issue 16: these reached the tokenizer or str concatenation and raised bare TypeErrors."""
    source, folder = model
    ours = OnnxSentenceEncoder(folder, file_name=FP32_FILE)
    with pytest.raises(InvalidInputError, match=match):
        ours.encode(**call)
    with pytest.raises((TypeError, ValueError)):  # sentence-transformers refuses them too, less clearly
        st_models(source).encode(**call)
    assert ours.encode("a\U0001f511b").shape == (ours.get_sentence_embedding_dimension(),)  # a real emoji is fine
