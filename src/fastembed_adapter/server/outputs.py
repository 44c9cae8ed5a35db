"""What the worker thread computes for each :class:`~.schemas.Output`, and TEI's token listing.

- ``SENTENCE``: ``encode()`` itself (cached, rows regrouped by length).
- ``UNNORMALIZED``: the sentence embedding without the model's final ``Normalize`` module(s), as
  TEI's ``/embed`` returns it for ``normalize: false`` (``encoder.encode_unnormalized``, cached).
  A model without a final ``Normalize`` gets ``SENTENCE`` instead (the same vectors).
- ``TOKENS``: the transformer's vector of each real token of a text (prompt and special tokens
  included, padding dropped), as TEI's ``/embed_all``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..colbert import OnnxColbertEncoder
from ..layout import ModelLayout
from .batching import Rows
from .schemas import Output

if TYPE_CHECKING:
    from tokenizers import Encoding

    from ..encoder import OnnxSentenceEncoder

__all__ = ["BatchKey", "Outputs", "Token", "tei_tokens"]


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


class Outputs:
    """Computes every :class:`~.schemas.Output` with one encoder (on the worker thread)."""

    def __init__(self, encoder: OnnxSentenceEncoder | OnnxColbertEncoder, batch_size: int) -> None:
        """Wrap ``encoder``; ``batch_size`` texts go into one ONNX call."""
        self.colbert = encoder if isinstance(encoder, OnnxColbertEncoder) else None
        self.encoder: OnnxSentenceEncoder = encoder if not isinstance(encoder, OnnxColbertEncoder) else None  # type: ignore[assignment]
        self.batch_size = batch_size
        self.unnormalizing = isinstance(encoder.layout, ModelLayout) and encoder.layout.ends_in_normalize

    def compute(self, texts: list[str], key: BatchKey) -> Rows:
        """The rows of ``texts`` for ``key`` (prompt and output), in order."""
        if self.colbert is not None:
            rows: list[np.ndarray] = self.colbert.encode(
                texts,
                is_query=key.output is Output.QUERY_TOKENS,
                prompt_name=key.prompt_name,
                batch_size=self.batch_size,
                show_progress_bar=False,
            )
            return rows
        if key.output is Output.TOKENS:
            return self._tokens(texts, key.prompt_name)
        if key.output is Output.UNNORMALIZED and self.unnormalizing:
            return self._unnormalized(texts, key.prompt_name)
        vectors: np.ndarray = self.encoder.encode(
            texts, prompt_name=key.prompt_name, batch_size=self.batch_size, show_progress_bar=False
        )
        return vectors

    def _unnormalized(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        return self.encoder.encode_unnormalized(texts, prompt_name=prompt_name, batch_size=self.batch_size)

    def _tokens(self, texts: list[str], prompt_name: str | None) -> list[np.ndarray]:
        counts = self.encoder.count_tokens(texts, prompt_name=prompt_name)  # before encode(), which reuses its tokens
        rows = self.encoder.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            output_value="token_embeddings",
            show_progress_bar=False,
        )
        limit = self.encoder.max_seq_length
        lengths = [min(count, limit) if limit is not None else count for count in counts]
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
