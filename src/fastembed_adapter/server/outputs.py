"""What the worker thread computes for each :class:`~.schemas.Output`, and TEI's token listing.

- ``SENTENCE``: ``encode()`` itself (cached, rows regrouped by length).
- ``UNNORMALIZED``: the sentence embedding without the model's final ``Normalize`` module(s), as
  TEI's ``/embed`` returns it for ``normalize: false``. A view of the encoder (a shallow copy
  sharing its session, tokenizer and metrics) whose layout lacks those modules runs the
  encoder's own pooling and Dense/LayerNorm modules; it is called with ``output_value=None``,
  which never reads or fills the embedding cache (keyed without the modules), in chunks of the
  batch size so the per-token arrays it returns stay small. A model without a final
  ``Normalize`` gets ``SENTENCE`` instead (same vectors, with the cache).
- ``TOKENS``: the transformer's vector of each real token of a text (prompt and special tokens
  included, padding dropped), as TEI's ``/embed_all``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..modules import NormalizeModule, PostModule
from .batching import Rows
from .errors import RequestValidationError
from .schemas import Output

if TYPE_CHECKING:
    from tokenizers import Encoding

    from ..encoder import OnnxSentenceEncoder

__all__ = ["BatchKey", "Outputs", "Token", "before_final_normalize", "prompt_text", "tei_tokens"]


@dataclass(frozen=True)
class BatchKey:
    """Requests with equal keys share one encode call of a micro-batch."""

    prompt_name: str | None
    output: Output


@dataclass(frozen=True)
class Token:
    """One token as TEI's ``/tokenize`` lists it; ``start``/``stop`` are UTF-8 byte offsets (None if special)."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


def prompt_text(encoder: OnnxSentenceEncoder, prompt_name: str | None) -> str:
    """The prompt ``encode()`` prepends for ``prompt_name`` (None: the default prompt, if any)."""
    if prompt_name is None:
        name = encoder.default_prompt_name
        return encoder.prompts.get(name, "") if name is not None else ""
    if prompt_name not in encoder.prompts:
        raise RequestValidationError(
            f"'prompt_name' {prompt_name!r} is not a prompt of this model; valid names: {sorted(encoder.prompts)}."
        )
    return encoder.prompts[prompt_name]


def before_final_normalize(modules: Sequence[PostModule]) -> tuple[PostModule, ...] | None:
    """The post-pooling modules without the trailing ``Normalize`` ones; None when there are none to drop."""
    end = len(modules)
    while end and isinstance(modules[end - 1], NormalizeModule):
        end -= 1
    return tuple(modules[:end]) if end < len(modules) else None


class Outputs:
    """Computes every :class:`~.schemas.Output` with one encoder (on the worker thread)."""

    def __init__(self, encoder: OnnxSentenceEncoder, batch_size: int) -> None:
        """Wrap ``encoder``; ``batch_size`` texts go into one ONNX call."""
        self.encoder = encoder
        self.batch_size = batch_size
        modules = before_final_normalize(encoder.layout.post_modules)
        self.unnormalizing = modules is not None
        self._view = encoder
        if modules is not None:
            self._view = copy.copy(encoder)
            self._view.layout = dataclasses.replace(encoder.layout, post_modules=modules)
            vars(self._view).pop("encode", None)  # a wrapper set on the instance would call the original

    def compute(self, texts: list[str], key: BatchKey) -> Rows:
        """The rows of ``texts`` for ``key`` (prompt and output), in order."""
        if key.output is Output.TOKENS:
            return self._tokens(texts, key.prompt_name)
        if key.output is Output.UNNORMALIZED and self.unnormalizing:
            return self._unnormalized(texts, key.prompt_name)
        vectors: np.ndarray = self.encoder.encode(
            texts, prompt_name=key.prompt_name, batch_size=self.batch_size, show_progress_bar=False
        )
        return vectors

    def _unnormalized(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        dimension = self.encoder.get_sentence_embedding_dimension()  # the model's truncate_dim, as encode()
        vectors = np.empty((len(texts), dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = self._view.encode(
                texts[start : start + self.batch_size],
                prompt_name=prompt_name,
                batch_size=self.batch_size,
                output_value=None,
                show_progress_bar=False,
            )
            for offset, row in enumerate(rows):
                vectors[start + offset] = row["sentence_embedding"][:dimension]
        return vectors

    def _tokens(self, texts: list[str], prompt_name: str | None) -> list[np.ndarray]:
        rows = self.encoder.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            output_value="token_embeddings",
            show_progress_bar=False,
        )
        prompt = prompt_text(self.encoder, prompt_name)
        lengths = [len(enc.ids) for enc in self.encoder.tokenizer.tokenize([prompt + text for text in texts])]
        # sentence-transformers keeps rows up to the last real token: the leading pad rows of a
        # left-padded batch stay, so keep the last ``length`` rows (all of them on right padding).
        pairs = zip(rows, lengths, strict=True)
        return [np.ascontiguousarray(row[len(row) - length :], dtype=np.float32) for row, length in pairs]


def _byte_offsets(text: str) -> list[int]:
    """UTF-8 byte offset of every character position of ``text`` (``len(text) + 1`` values)."""
    if text.isascii():
        return list(range(len(text) + 1))
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + len(char.encode("utf-8", "surrogatepass")))
    return offsets


def tei_tokens(encoding: Encoding, text: str) -> list[Token]:
    """TEI's ``/tokenize`` rows for ``encoding`` of ``text``: byte offsets, the input's own text per token.

    ``tokenizers`` reports character offsets; TEI (Rust) reports UTF-8 byte offsets and slices the
    input's bytes for each token's text, so the same is done here.
    """
    offsets = _byte_offsets(text)
    raw = text.encode("utf-8", "surrogatepass")
    rows = []
    for token_id, (start, stop), special, token in zip(
        encoding.ids, encoding.offsets, encoding.special_tokens_mask, encoding.tokens, strict=True
    ):
        if special:
            rows.append(Token(id=token_id, text=token, special=True, start=None, stop=None))
        else:
            first, last = offsets[start], offsets[stop]
            piece = raw[first:last].decode("utf-8", "replace")
            rows.append(Token(id=token_id, text=piece, special=False, start=first, stop=last))
    return rows
