"""TextTokenizer vs the HF fast tokenizer called the way sentence-transformers calls it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import MAX_SEQ_LENGTH, TEXTS, TinySpec
from fastembed_adapter import CorruptModelError, InvalidInputError, ModelNotFoundError
from fastembed_adapter.tokenization import TextTokenizer

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
    assert TextTokenizer(folder, MAX_SEQ_LENGTH).prompt_length(prompt) == st[0]._get_prompt_length(prompt)


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
