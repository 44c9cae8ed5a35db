"""Tokenizer loading, truncation and padding exactly as sentence-transformers calls its fast tokenizer.

sentence-transformers calls ``tokenizer(texts, padding=True, truncation="longest_first",
max_length=max_seq_length)``; on a fast tokenizer that sets the Rust backend's truncation
(``longest_first``, ``truncation_side``) and pad-to-longest padding (``padding_side``, the pad
token) before ``encode_batch``. We configure the same backend from ``tokenizer.json`` and
``tokenizer_config.json`` and never import transformers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache
from tokenizers import Encoding, Tokenizer, normalizers

from .errors import CorruptModelError, InvalidInputError, ModelNotFoundError
from .layout import read_json

__all__ = ["PROCESSING_KWARGS_KEYS", "BatchOptions", "TextTokenizer", "position_limit"]

# Top-level keys of sentence-transformers' ``processing_kwargs`` (Transformer._VALID_PROCESSING_KWARGS_KEYS).
PROCESSING_KWARGS_KEYS = frozenset({"common", "text", "audio", "image", "video", "chat_template"})
# The text processor arguments a call may override, and the values each accepts.
_TRUNCATE = (True, "longest_first", "only_first")
_NO_TRUNCATE = (False, "do_not_truncate")
_PAD_LONGEST = (True, "longest")
_TEXT_OPTIONS = {
    "max_length": "a positive int or None",
    "truncation": f"one of {[*_TRUNCATE, *_NO_TRUNCATE]}",
    "padding": f"one of {[*_PAD_LONGEST, 'max_length']}",
    "pad_to_multiple_of": "a positive int or None",
}
# Tokenizer classes whose ``model_input_names`` leave out token_type_ids (transformers' class defaults),
# for a tokenizer_config.json that does not list them.
_NO_TOKEN_TYPE_CLASSES = frozenset(
    {
        "BartTokenizer", "BigBirdTokenizer", "BloomTokenizer", "CLIPTokenizer", "CamembertTokenizer",
        "CodeLlamaTokenizer", "DistilBertTokenizer", "GPT2Tokenizer", "GPTNeoXTokenizer", "GemmaTokenizer",
        "LlamaTokenizer", "MBartTokenizer", "MPNetTokenizer", "NllbTokenizer", "PegasusTokenizer",
        "Qwen2Tokenizer", "RobertaTokenizer", "SiglipTokenizer", "T5Tokenizer", "XLMRobertaTokenizer",
    }
)  # fmt: skip
# Model types whose learned positions start after the padding index (RoBERTa family): they hold
# ``max_position_embeddings - padding_idx - 1`` tokens; padding_idx is ``pad_token_id`` (MPNet fixes it at 1).
_OFFSET_POSITION_TYPES = frozenset(
    {"camembert", "data2vec-text", "ibert", "longformer", "roberta", "roberta-prelayernorm", "xlm-roberta",
     "xlm-roberta-xl", "xmod"}
)  # fmt: skip
_FIXED_PADDING_IDX = {"mpnet": 1}
_MAX_TRUNCATING_CLONES = 8
# Tokens of counted texts kept for the encode that follows (the server counts, then encodes): ~25 MB.
_COUNTED_TOKENS = 1 << 18


def position_limit(folder: Path) -> int | None:
    """Most tokens the model's position embeddings hold, from ``config.json`` (None when unbounded or unknown).

    ``max_position_embeddings`` (of the ``text_config`` for multimodal configs), less the padding
    offset of RoBERTa-style positions; xlnet's ``-1`` and configs without the key mean no limit.
    """
    path = folder / "config.json"
    config = read_json(path) if path.is_file() else {}
    nested = config.get("text_config")
    text: dict[str, Any] = nested if isinstance(nested, dict) else config
    positions = text.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or positions <= 0:
        return None
    model_type = text.get("model_type")
    if model_type in _FIXED_PADDING_IDX:
        positions -= _FIXED_PADDING_IDX[model_type] + 1
    elif model_type in _OFFSET_POSITION_TYPES:
        pad = text.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) else 1) + 1
    return positions


@dataclass(frozen=True)
class BatchOptions:
    """How one call truncates and pads its texts: the text processor kwargs sentence-transformers passes, resolved.

    Attributes:
        max_length: truncate every text to this many tokens (None: no truncation).
        pad_to: pad every row to at least this width (``padding="max_length"``), else to the longest.
        pad_to_multiple_of: round the padded width up to a multiple of this.
    """

    max_length: int | None
    pad_to: int | None = None
    pad_to_multiple_of: int | None = None

    @classmethod
    def parse(cls, processing_kwargs: Mapping[str, Any] | None, max_seq_length: int | None) -> BatchOptions:
        """Resolve ``encode(processing_kwargs=...)`` as sentence-transformers' ``Transformer.preprocess`` does.

        The ``text`` and ``common`` entries are merged over ST's text defaults (``padding=True``,
        ``truncation="longest_first"``; ``common`` wins, as in ST); ``max_length`` falls back to
        ``max_seq_length`` as the tokenizer's ``model_max_length`` does. Audio, image, video and
        chat-template entries do not apply to text and are left alone, as ST leaves them; unknown
        top-level keys too (ST warns about them). A text option ONNX Runtime batches cannot honour
        raises ``InvalidInputError`` naming it.
        """
        if processing_kwargs is None:
            return cls(max_seq_length)
        if not isinstance(processing_kwargs, Mapping):
            raise InvalidInputError(
                "processing_kwargs must be a dict like {'text': {'max_length': 256}}, "
                f"got {processing_kwargs!r:.80}."
            )
        call: dict[str, Any] = {"padding": True, "truncation": "longest_first"}
        for key in ("text", "common"):
            entry = processing_kwargs.get(key)
            if entry is not None and not isinstance(entry, Mapping):
                raise InvalidInputError(f"processing_kwargs[{key!r}] must be a dict, got {entry!r:.80}.")
            call.update(entry or {})
        unsupported = sorted(set(call) - set(_TEXT_OPTIONS))
        if unsupported:
            raise InvalidInputError(
                f"processing_kwargs text option(s) {unsupported} are not supported by OnnxSentenceEncoder. "
                f"Supported: {', '.join(_TEXT_OPTIONS)}."
            )
        # numpy integers (np.int64(256)) are ints to the tokenizer, as in sentence-transformers
        max_length, multiple = (
            int(value) if isinstance(value, np.integer) else value
            for value in (call.get("max_length"), call.get("pad_to_multiple_of"))
        )
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", multiple)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidInputError(f"processing_kwargs {name} must be {_TEXT_OPTIONS[name]}, got {value!r}.")
        length = max_length if max_length is not None else max_seq_length
        truncation, padding = call["truncation"], call["padding"]
        if truncation not in _TRUNCATE and truncation not in _NO_TRUNCATE:
            raise InvalidInputError(
                f"processing_kwargs truncation must be {_TEXT_OPTIONS['truncation']}, got {truncation!r}."
            )
        if padding not in _PAD_LONGEST and padding != "max_length":
            raise InvalidInputError(
                f"processing_kwargs padding must be {_TEXT_OPTIONS['padding']}, got {padding!r}: a batch array needs "
                "every row padded to one width."
            )
        if truncation in _TRUNCATE and length is not None and multiple is not None and length % multiple:
            raise InvalidInputError(  # the tokenizer raises this ValueError too
                f"processing_kwargs truncates to {length} tokens (max_length), which is not a multiple of "
                f"pad_to_multiple_of={multiple}; pick a max_length that is."
            )
        return cls(
            max_length=length if truncation in _TRUNCATE else None,
            pad_to=length if padding == "max_length" else None,
            pad_to_multiple_of=multiple,
        )


def _token_text(value: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or a serialized AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class TextTokenizer:
    """The model's ``tokenizers.Tokenizer`` set up for sentence-transformers-style batches."""

    def __init__(
        self,
        folder: Path,
        max_seq_length: int | None,
        do_lower_case: bool = False,
        *,
        padding_side: str | None = None,
        truncation_side: str | None = None,
    ) -> None:
        """Load ``folder/tokenizer.json`` and its config; truncate to ``max_seq_length`` tokens.

        ``padding_side``/``truncation_side`` override the config's, as tokenizer keyword
        arguments to ``from_pretrained`` do.
        """
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
        self.padding_side = _side("padding_side", padding_side or config.get("padding_side", "right"))
        self.truncation_side = _side("truncation_side", truncation_side or config.get("truncation_side", "right"))
        self.model_input_names = _model_input_names(config)
        # Special tokens by role (``pad_token``, ``mask_token``, ``eos_token``, ...) as transformers reads them.
        self.named_tokens: dict[str, str] = {
            key: text
            for key in sorted({*special_map, *config})
            if key.endswith("_token") and (text := _token_text(config.get(key)) or _token_text(special_map.get(key)))
        }
        pad_token = self.named_tokens.get("pad_token")
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token is not None else None
        self.pad_token = pad_token
        self.pad_id = pad_id if pad_id is not None else 0
        self.special_ids = frozenset(
            token_id for token_id, token in self.tokenizer.get_added_tokens_decoder().items() if token.special
        )
        self.tokenizer.no_padding()
        self._max_seq_length: int | None = None
        self.max_seq_length = max_seq_length
        self._clones: dict[int | None, Tokenizer] = {}
        self._counted: LRUCache[str, Encoding] = LRUCache(_COUNTED_TOKENS, getsizeof=_token_count)
        self._counted_lock = threading.Lock()

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

    def tokenize(self, texts: list[str], options: BatchOptions | None = None) -> list[Encoding]:
        """Tokenize (with special tokens, truncated) without padding; offsets are not computed.

        ``options.max_length`` truncates this call to another length than ``max_seq_length``. A
        text :meth:`count` tokenized is not tokenized again: its kept tokens are truncated and get
        their special tokens (``post_process``, the step ``encode`` ends with), then are let go.
        """
        tokenizer = self.tokenizer
        if options is not None and options.max_length != self._max_seq_length:
            tokenizer = self._truncating(options.max_length)
        with self._counted_lock:
            counted = [self._counted.pop(text, None) for text in texts] if self._counted else []
        if not any(encoding is not None for encoding in counted):
            encodings: list[Encoding] = tokenizer.encode_batch_fast(texts, add_special_tokens=True)
            return encodings
        missing = [text for text, encoding in zip(texts, counted, strict=True) if encoding is None]
        fresh = iter(tokenizer.encode_batch_fast(missing, add_special_tokens=True) if missing else [])
        return [next(fresh) if encoding is None else tokenizer.post_process(encoding) for encoding in counted]

    def count(self, texts: list[str]) -> list[int]:
        """Untruncated token counts, special tokens in; the tokens are kept for the :meth:`tokenize` that follows."""
        with self._counted_lock:
            counted = [self._counted.get(text) for text in texts]
        missing = [text for text, encoding in zip(texts, counted, strict=True) if encoding is None]
        if missing:
            fresh = self._truncating(None).encode_batch_fast(missing, add_special_tokens=False)
            with self._counted_lock:
                for text, encoding in zip(missing, fresh, strict=True):
                    if _token_count(encoding) <= self._counted.maxsize:
                        self._counted[text] = encoding
            computed = iter(fresh)
            counted = [next(computed) if encoding is None else encoding for encoding in counted]
        specials = self.tokenizer.num_special_tokens_to_add(False)
        return [len(encoding.ids) + specials for encoding in counted if encoding is not None]

    def untruncated(self, texts: list[str], add_special_tokens: bool = True, offsets: bool = False) -> list[Encoding]:
        """Tokenize without truncation or padding (to count tokens; with ``offsets`` for listings)."""
        tokenizer = self._truncating(None)
        encode = tokenizer.encode_batch if offsets else tokenizer.encode_batch_fast
        encodings: list[Encoding] = encode(texts, add_special_tokens=add_special_tokens)
        return encodings

    def _truncating(self, max_length: int | None) -> Tokenizer:
        """A copy of the tokenizer truncating to ``max_length`` (None: not at all); a few are kept."""
        clone = self._clones.get(max_length)
        if clone is None:
            clone = Tokenizer.from_str(self.tokenizer.to_str())
            if max_length is None:
                clone.no_truncation()
            else:
                clone.enable_truncation(max_length, strategy="longest_first", direction=self.truncation_side, stride=0)
            if len(self._clones) < _MAX_TRUNCATING_CLONES:
                self._clones[max_length] = clone
        return clone

    def pad(self, encodings: Sequence[Encoding], options: BatchOptions | None = None) -> dict[str, np.ndarray]:
        """Stack encodings into int64 arrays padded to the longest, on the tokenizer's padding side.

        ``options`` pad to ``pad_to`` (``padding="max_length"``) and round up to ``pad_to_multiple_of``.
        """
        width = max((len(enc.ids) for enc in encodings), default=0)
        if options is not None and encodings:
            width = max(width, options.pad_to or 0)
            if options.pad_to_multiple_of:
                width = -(-width // options.pad_to_multiple_of) * options.pad_to_multiple_of
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

    def prompt_length(self, prompt: str, options: BatchOptions | None = None) -> int:
        """Tokens a prompt occupies at the start of a text, as sentence-transformers counts them.

        The prompt is tokenized alone (with special tokens, truncated as the call truncates); a
        trailing special token (SEP/EOS) is not counted.
        """
        ids = self.tokenize([prompt], options)[0].ids
        length = len(ids)
        if length and int(ids[-1]) in self.special_ids:
            length -= 1
        return length


def _token_count(encoding: Encoding) -> int:
    return max(len(encoding.ids), 1)


def _side(name: str, value: Any) -> str:
    if value not in ("left", "right"):
        raise InvalidInputError(f"{name} must be 'left' or 'right', got {value!r}.")
    return str(value)


def _model_input_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The features the HF tokenizer returns: the config's ``model_input_names``, else its class default."""
    names = config.get("model_input_names")
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return tuple(names)
    tokenizer_class = str(config.get("tokenizer_class") or "").removesuffix("Fast")
    if tokenizer_class in _NO_TOKEN_TYPE_CLASSES:
        return ("input_ids", "attention_mask")
    return ("input_ids", "token_type_ids", "attention_mask")
