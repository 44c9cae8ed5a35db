"""Tokenizer loading, truncation and padding exactly as sentence-transformers calls its fast tokenizer.

sentence-transformers calls ``tokenizer(texts, padding=True, truncation="longest_first",
max_length=max_seq_length)``; on a fast tokenizer that sets the Rust backend's truncation
(``longest_first``, ``truncation_side``) and pad-to-longest padding (``padding_side``, the pad
token) before ``encode_batch``. We configure the same backend from ``tokenizer.json`` and
``tokenizer_config.json`` and never import transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer, normalizers

from .errors import CorruptModelError, InvalidInputError, ModelNotFoundError
from .layout import read_json

__all__ = ["TextTokenizer"]


def _token_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or a serialized AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class TextTokenizer:
    """The model's ``tokenizers.Tokenizer`` set up for sentence-transformers-style batches."""

    def __init__(self, folder: Path, max_seq_length: int | None, do_lower_case: bool = False) -> None:
        """Load ``folder/tokenizer.json`` and its config; truncate to ``max_seq_length`` tokens."""
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ModelNotFoundError(
                f"{str(folder)!r} has no tokenizer.json (the fast tokenizer file). Re-run `prepare`, "
                "which always writes it, or save the model with a fast tokenizer."
            )
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for parse errors
            raise CorruptModelError(f"Cannot load {str(path)!r}: {exc}") from exc
        config_path = folder / "tokenizer_config.json"
        config = read_json(config_path) if config_path.exists() else {}
        special_map_path = folder / "special_tokens_map.json"
        special_map = read_json(special_map_path) if special_map_path.exists() else {}
        self.do_lower_case = do_lower_case
        if do_lower_case:
            self._prepend_lowercase()
        self.padding_side = str(config.get("padding_side", "right"))
        self.truncation_side = str(config.get("truncation_side", "right"))
        pad_token = _token_text(config.get("pad_token")) or _token_text(special_map.get("pad_token"))
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token is not None else None
        self.pad_token = pad_token
        self.pad_id = pad_id if pad_id is not None else 0
        self.special_ids = frozenset(
            token_id for token_id, token in self.tokenizer.get_added_tokens_decoder().items() if token.special
        )
        self.tokenizer.no_padding()
        self._max_seq_length: int | None = None
        self.max_seq_length = max_seq_length

    def _prepend_lowercase(self) -> None:
        """``do_lower_case``: prepend a ``Lowercase`` normalizer unless one is there, as ST's Transformer does."""
        current = self.tokenizer.normalizer
        if isinstance(current, normalizers.Lowercase) or (
            isinstance(current, normalizers.Sequence)
            and any(isinstance(current[i], normalizers.Lowercase) for i in range(len(current)))
        ):
            return
        parts = [normalizers.Lowercase()] + ([current] if current is not None else [])
        self.tokenizer.normalizer = normalizers.Sequence(parts)

    @property
    def max_seq_length(self) -> int | None:
        """Texts are truncated to this many tokens (special tokens included)."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidInputError(f"max_seq_length must be a positive int or None, got {value!r}.")
        self._max_seq_length = value
        if value is None:
            self.tokenizer.no_truncation()
        else:
            self.tokenizer.enable_truncation(value, strategy="longest_first", direction=self.truncation_side, stride=0)

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Tokenize a batch, padded to its longest text: int64 ``input_ids``, ``attention_mask``, ``token_type_ids``."""
        return self.pad(self.tokenize(texts))

    def tokenize(self, texts: list[str]) -> list[Encoding]:
        """Tokenize (with special tokens, truncated) without padding; offsets are not computed."""
        encodings: list[Encoding] = self.tokenizer.encode_batch_fast(texts, add_special_tokens=True)
        return encodings

    def pad(self, encodings: Sequence[Encoding]) -> dict[str, np.ndarray]:
        """Stack encodings into int64 arrays padded to the longest, on the tokenizer's padding side."""
        width = max((len(enc.ids) for enc in encodings), default=0)
        batch = len(encodings)
        input_ids = np.full((batch, width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((batch, width), dtype=np.int64)
        token_type_ids = np.zeros((batch, width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            cols = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            input_ids[row, cols] = enc.ids
            attention_mask[row, cols] = 1
            token_type_ids[row, cols] = enc.type_ids
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def prompt_length(self, prompt: str) -> int:
        """Tokens a prompt occupies at the start of a text, as sentence-transformers counts them.

        The prompt is tokenized alone (with special tokens, truncated); a trailing special token
        (SEP/EOS) is not counted.
        """
        ids = self.encode([prompt])["input_ids"][0]
        length = len(ids)
        if length and int(ids[-1]) in self.special_ids:
            length -= 1
        return length
