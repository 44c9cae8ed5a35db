"""TextTokenizer vs the HF fast tokenizer called the way sentence-transformers calls it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from fastembed_adapter import CorruptModelError, InvalidInputError, ModelNotFoundError
from fastembed_adapter.tokenization import BatchOptions, TextTokenizer, position_limit
from tiny import MAX_SEQ_LENGTH, TEXTS, TinySpec

LONG = " ".join(TEXTS * 10)
CASES = {
    "batch": TEXTS,
    "single": [TEXTS[0]],
    "long": [LONG, TEXTS[2]],
    "empty_strings": ["", " ", TEXTS[1]],
    "unknown_chars": ["日本語のテキスト 😀", "ΑΒΓ"],
}


def _hf(folder: Path, texts: list[str], max_length: int | None) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return dict(tokenizer(texts, padding=True, truncation="longest_first", max_length=max_length, return_tensors="np"))


def _assert_same(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[key].dtype == np.int64
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


@pytest.fixture(scope="module")
def folder(make_st_model) -> Path:
    return make_st_model(TinySpec("bert"))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("max_length", [MAX_SEQ_LENGTH, 5, 200])
def test_matches_hf_tokenizer(folder, case, max_length):
    ours = TextTokenizer(folder, max_length)
    _assert_same(ours.encode(CASES[case]), _hf(folder, CASES[case], max_length))


SIDES = [{"padding_side": "left"}, {"truncation_side": "left"}, {"padding_side": "left", "truncation_side": "left"}]


@pytest.mark.parametrize("config", SIDES)
def test_padding_and_truncation_sides(folder, tmp_path, config):
    copy = tmp_path / "tok"
    shutil.copytree(folder, copy)
    path = copy / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    texts = [LONG, *TEXTS]
    ours = TextTokenizer(copy, 12)
    assert ours.padding_side == config.get("padding_side", "right")
    _assert_same(ours.encode(texts), _hf(copy, texts, 12))


def test_max_seq_length_setter(folder):
    ours = TextTokenizer(folder, None)
    assert ours.encode([LONG])["input_ids"].shape[1] > MAX_SEQ_LENGTH
    ours.max_seq_length = 7
    assert ours.encode([LONG])["input_ids"].shape == (1, 7)
    _assert_same(ours.encode(TEXTS), _hf(folder, TEXTS, 7))
    for bad in (0, -2, 1.5, True, "8"):
        with pytest.raises(InvalidInputError, match=repr(bad).replace(".", r"\.")):
            ours.max_seq_length = bad


def test_empty_batch(folder):
    out = TextTokenizer(folder, MAX_SEQ_LENGTH).encode([])
    assert out["input_ids"].shape == (0, 0)


@pytest.mark.parametrize("prompt", ["query: ", "Represent this sentence for searching: ", "x"])
def test_prompt_length_matches_st(folder, st_models, prompt):
    st = st_models(folder)
    measure = (
        getattr(st[0], "_get_prompt_length", None) or st._get_prompt_length
    )  # ST 6: the module's; ST 5: the model's
    assert TextTokenizer(folder, MAX_SEQ_LENGTH).prompt_length(prompt) == measure(prompt)


def test_pad_token_from_config(folder):
    from transformers import AutoTokenizer

    ours = TextTokenizer(folder, MAX_SEQ_LENGTH)
    hf = AutoTokenizer.from_pretrained(str(folder))
    assert ours.pad_token == hf.pad_token
    assert ours.pad_id == hf.pad_token_id
    assert ours.special_ids == frozenset(hf.all_special_ids)


def test_do_lower_case_prepends_lowercase(folder, tmp_path):
    from tokenizers import Tokenizer, normalizers

    copy = tmp_path / "tok"
    shutil.copytree(folder, copy)
    tok = Tokenizer.from_file(str(copy / "tokenizer.json"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.save(str(copy / "tokenizer.json"))
    cased = TextTokenizer(copy, MAX_SEQ_LENGTH)
    lowered = TextTokenizer(copy, MAX_SEQ_LENGTH, do_lower_case=True)
    upper = [t.upper() for t in TEXTS]
    expected = cased.encode([t.lower() for t in upper])["input_ids"]
    np.testing.assert_array_equal(lowered.encode(upper)["input_ids"], expected)
    assert not np.array_equal(cased.encode(upper)["input_ids"], lowered.encode(upper)["input_ids"])


def test_missing_tokenizer_json(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"tokenizer\.json"):
        TextTokenizer(tmp_path, MAX_SEQ_LENGTH)


def test_corrupt_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(CorruptModelError, match=r"tokenizer\.json"):
        TextTokenizer(tmp_path, MAX_SEQ_LENGTH)


TEXT_CALLS = [
    {"max_length": 8},
    {"max_length": 10, "truncation": "only_first"},
    {"padding": "max_length", "max_length": 20},
    {"padding": "max_length"},
    {"pad_to_multiple_of": 8},
    {"max_length": 12, "pad_to_multiple_of": 4},
    {"truncation": False},
    {"truncation": "do_not_truncate", "padding": "longest"},
]


@pytest.mark.parametrize("call", TEXT_CALLS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_batch_options_match_the_hf_call(folder, call):
    """processing_kwargs={"text": call} as ST 6 calls the tokenizer: its text defaults, then the call's."""
    from transformers import AutoTokenizer

    texts = [LONG, *TEXTS]
    hf = AutoTokenizer.from_pretrained(str(folder))  # model_max_length 64 (MAX_SEQ_LENGTH), as ST saved it
    ref = dict(hf(texts, **{"padding": True, "truncation": "longest_first", **call}, return_tensors="np"))
    ours = TextTokenizer(folder, MAX_SEQ_LENGTH)
    options = BatchOptions.parse({"text": call}, MAX_SEQ_LENGTH)
    _assert_same(ours.pad(ours.tokenize(texts, options), options), ref)
    _assert_same(ours.encode(texts), _hf(folder, texts, MAX_SEQ_LENGTH))  # the tokenizer itself is unchanged


def test_truncation_length_must_be_a_multiple_of_pad_to_multiple_of(folder):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match=r"truncation length \(9\) is not a multiple of pad_to_multiple_of \(4\)"):
        AutoTokenizer.from_pretrained(str(folder))(
            TEXTS, padding=True, truncation=True, max_length=9, pad_to_multiple_of=4
        )
    with pytest.raises(InvalidInputError, match=r"9 tokens .* pad_to_multiple_of=4"):
        BatchOptions.parse({"text": {"max_length": 9, "pad_to_multiple_of": 4}}, MAX_SEQ_LENGTH)
    assert (
        BatchOptions.parse({"text": {"max_length": 9, "pad_to_multiple_of": 4, "truncation": False}}, 64).max_length
        is None
    )


def test_batch_options_defaults_and_precedence():
    assert BatchOptions.parse(None, 64) == BatchOptions(64) == BatchOptions.parse({}, 64)
    assert BatchOptions.parse({"text": {"max_length": 9}, "common": {"max_length": 5}}, 64).max_length == 5
    assert BatchOptions.parse({"text": {"truncation": False}}, 64).max_length is None
    assert BatchOptions.parse({"image": {"size": 3}, "chat_template": {"x": 1}}, 64) == BatchOptions(64)


def test_model_input_names(folder, tmp_path):
    assert TextTokenizer(folder, MAX_SEQ_LENGTH).model_input_names == ("input_ids", "token_type_ids", "attention_mask")
    copy = tmp_path / "tok"
    shutil.copytree(folder, copy)
    path = copy / "tokenizer_config.json"
    config = json.loads(path.read_text())
    del config["model_input_names"]
    for tokenizer_class, expected in (
        ("MPNetTokenizerFast", ("input_ids", "attention_mask")),
        ("XLMRobertaTokenizer", ("input_ids", "attention_mask")),
        ("BertTokenizer", ("input_ids", "token_type_ids", "attention_mask")),
    ):
        path.write_text(json.dumps({**config, "tokenizer_class": tokenizer_class}))
        assert TextTokenizer(copy, MAX_SEQ_LENGTH).model_input_names == expected


def test_sides_given_to_the_constructor_win(folder):
    ours = TextTokenizer(folder, 8, padding_side="left", truncation_side="left")
    assert (ours.padding_side, ours.truncation_side) == ("left", "left")
    with pytest.raises(InvalidInputError, match="'up'"):
        TextTokenizer(folder, 8, padding_side="up")


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        ({"model_type": "bert", "max_position_embeddings": 512}, 512),
        ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, 512),
        ({"model_type": "xlm-roberta", "max_position_embeddings": 8194, "pad_token_id": 1}, 8192),
        ({"model_type": "mpnet", "max_position_embeddings": 514, "pad_token_id": 0}, 512),  # MPNet's padding_idx is 1
        ({"model_type": "xlnet", "max_position_embeddings": -1}, None),
        ({"model_type": "t5"}, None),
        ({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "max_position_embeddings": 2048}}, 2048),
    ],
)
def test_position_limit(tmp_path, config, limit):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert position_limit(tmp_path) == limit


def test_position_limit_of_the_test_models(make_st_model, tmp_path):
    from transformers import AutoModel

    assert position_limit(tmp_path) is None  # no config.json
    for arch in ("bert", "mpnet"):
        folder = make_st_model(TinySpec(arch))
        model = AutoModel.from_pretrained(str(folder))
        padding_idx = model.embeddings.position_embeddings.padding_idx
        offset = padding_idx + 1 if arch == "mpnet" else 0
        assert position_limit(folder) == model.config.max_position_embeddings - offset == 128


class _Counting:
    """A tokenizers.Tokenizer stand-in that counts the texts it encodes (the Rust class cannot be patched)."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner, self.texts = inner, 0

    def encode_batch_fast(self, texts, add_special_tokens=True):
        self.texts += len(texts)
        return self.inner.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _counting(tokenizer: TextTokenizer) -> tuple[_Counting, _Counting]:
    main = _Counting(tokenizer.tokenizer)
    clone = _Counting(tokenizer._truncating(None))
    tokenizer.tokenizer = main  # type: ignore[assignment]
    tokenizer._clones[None] = clone  # type: ignore[assignment]
    return main, clone


@pytest.mark.parametrize("side", ["right", "left"])
def test_count_then_tokenize_tokenizes_once_and_truncates_the_same(folder, side):
    texts = [LONG, *TEXTS, "", LONG + " tail"]
    reference = TextTokenizer(folder, 7, truncation_side=side)
    counted = TextTokenizer(folder, 7, truncation_side=side)
    main, clone = _counting(counted)
    counts = counted.count(texts)
    assert counts == [len(encoding.ids) for encoding in reference.untruncated(texts)]
    assert max(counts) > 7
    _assert_same(counted.pad(counted.tokenize(texts)), reference.encode(texts))
    assert (main.texts, clone.texts) == (0, len(texts))
    # taken once: a second tokenize encodes again, and a changed max_seq_length still applies
    counted.count(texts[:2])
    counted.max_seq_length = 5
    reference.max_seq_length = 5
    _assert_same(counted.encode(texts), reference.encode(texts))
    assert main.texts == len(texts) - 2


def test_count_keeps_a_bounded_number_of_tokens(folder, monkeypatch):
    import fastembed_adapter.tokenization as module

    monkeypatch.setattr(module, "_COUNTED_TOKENS", 40)
    tokenizer = TextTokenizer(folder, 7)
    tokenizer.count([LONG, *TEXTS])  # LONG alone is over the bound: counted, not kept
    assert LONG not in tokenizer._counted
    assert sum(len(encoding.ids) for encoding in tokenizer._counted.values()) <= 40
