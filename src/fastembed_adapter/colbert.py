"""``OnnxColbertEncoder``: ``pylate.models.ColBERT.encode()`` on ONNX Runtime, without torch.

The same layers as the dense encoder — :class:`~.tokenization.TextTokenizer`, :mod:`.planning`,
:class:`~.session.OnnxSession`, :class:`~.cache.EmbeddingCache`, :class:`~.metrics.EncoderMetrics`,
the input checks of :mod:`.st_compat` — with PyLate's tokenization around them (see
``pylate/models/colbert.py``): the prefix token inserted right after the first token, queries
padded to ``query_length`` with the mask token (attended to or not), documents' skiplist and
padding tokens dropped, then per-token L2 normalisation.

A sentence-transformers 6 ``MultiVectorEncoder`` folder follows that class instead
(``encode_query`` / ``encode_document``): the ``query`` / ``document`` prompt prepended as text,
expansion with its token (mask, else EOS), the skiplist on its ``skiplist_tasks`` without the words
that are not single vocabulary tokens, and normalisation only when the folder has a ``Normalize``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import CacheInfo, EmbeddingCache
from .colbert_layout import ColbertFormat, ColbertLayout, read_colbert_layout
from .errors import CorruptModelError, InvalidInputError, UnsupportedModelError, model_access
from .hub import resolve_model
from .late_interaction import colbert_scores, pad_tokens, pool_tokens
from .metrics import EncoderMetrics
from .modules import normalize
from .planning import COLBERT_BATCH_TOKENS, batches, windows
from .pooling import PRECISIONS, quantize_matrices
from .session import load_beside
from .st_compat import auth_token, check_device, check_texts, hub_options, positive_int
from .tokenization import BatchOptions, TextTokenizer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["OnnxColbertEncoder"]

logger = logging.getLogger(__name__)
_OUTPUT_VALUES = ("token_embeddings", None)


@dataclass(frozen=True)
class _Side:
    """How queries or documents are tokenized: PyLate's ``tokenize(is_query=...)``."""

    is_query: bool
    max_length: int  # tokens from the tokenizer (the prefix token, if any, comes on top)
    prefix_id: int | None
    expand: bool  # pad to max_length with the expansion token (queries with do_query_expansion)
    attend_all: bool  # attention on every position (attend_to_expansion_tokens)
    skip: bool  # drop skiplist tokens on this side
    prompt_name: str | None  # the prompt used when the call names none (MultiVectorEncoder's "query"/"document")


class OnnxColbertEncoder:
    """A drop-in for ``pylate.models.ColBERT`` that runs the ONNX file ``prepare --kind colbert`` wrote.

    ``encode(..., is_query=True/False)`` returns what PyLate returns: one float32 ``(tokens, dim)``
    array per text, in input order (queries ``(query_length, dim)`` with query expansion).
    """

    @model_access()  # a model file this process may not read: ModelAccessError naming it
    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        file_name: str | None = None,
        threads: int | None = None,
        spinning: bool = True,
        revision: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        attend_to_expansion_tokens: bool | None = None,
        skiplist_words: Sequence[str] | None = None,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        cache_size: int = 1024,
        cache_max_bytes: int | None = None,
        metrics: bool = True,
        registry: CollectorRegistry | None = None,
        model_name: str | None = None,
        device: str | None = None,
        cache_folder: str | Path | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
    ) -> None:
        """Load a ColBERT model folder (or hub repo with ``onnx/*.onnx``) and build one ONNX Runtime session.

        The ColBERT settings (``query_prefix`` ... ``skiplist_words``) override the folder's
        ``config_sentence_transformers.json``, as ``pylate.models.ColBERT``'s arguments do; the
        other arguments mean what they mean to :class:`~fastembed_adapter.OnnxSentenceEncoder`.
        """
        if not isinstance(model_name_or_path, (str, Path)):
            raise InvalidInputError(
                f"model_name_or_path must be a folder path or hub id, got {type(model_name_or_path).__name__}."
            )
        positive_int("threads", threads, allow_none=True)
        check_device("device", device)
        hub = hub_options(model_name_or_path, cache_folder, local_files_only, auth_token(token, None))
        root, chosen = resolve_model(model_name_or_path, file_name=file_name, revision=revision, **hub)
        layout = read_colbert_layout(root).with_overrides(
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            query_length=query_length,
            document_length=document_length,
            do_query_expansion=do_query_expansion,
            attend_to_expansion_tokens=attend_to_expansion_tokens,
            skiplist_words=skiplist_words,
        )
        self.layout: ColbertLayout = layout
        self.model_path = root
        self.file_name = chosen
        self.session, (self.tokenizer, self.metrics) = load_beside(
            root,
            chosen,
            threads,
            spinning,
            layout.manifest,
            lambda: (
                TextTokenizer(root, layout.max_seq_length, layout.do_lower_case),
                EncoderMetrics(model_name or root.name, registry, enabled=metrics),
            ),
        )
        # A graph that ends at the transformer (``last_hidden_state``) gets the projection in numpy.
        self._project_in_numpy = self.session.output_name == "last_hidden_state"
        width = self.session.output_width
        expected = layout.projection[0].weight.shape[1] if self._project_in_numpy else layout.dimension
        if width is not None and width != expected:
            raise CorruptModelError(
                f"{str(root / chosen)!r} gives {width}-d token vectors but the model's projection expects "
                f"{expected}-d ones: the ONNX file belongs to another model. Re-run `prepare` or restore the folder."
            )
        self.prompts = {**layout.prompts, **(prompts or {})}
        self.default_prompt_name = default_prompt_name or layout.default_prompt_name
        self.expansion_id = self._expansion_id()
        self.query_prefix_id = self._prefix_id(layout.query_prefix)
        self.document_prefix_id = self._prefix_id(layout.document_prefix)
        self.skiplist = frozenset(self._skiplist_ids(layout.skiplist_words))
        self._skiplist_array = np.array(sorted(self.skiplist), dtype=np.int64)
        self._sides = {is_query: self._side(is_query) for is_query in (True, False)}
        self._cache = EmbeddingCache(cache_size, cache_max_bytes)

    # -- the model's tokens ------------------------------------------------------------------------
    def _token_id(self, token: str) -> int | None:
        """Transformers' ``convert_tokens_to_ids``: the vocabulary id, else the unknown token's (None without one)."""
        found = self.tokenizer.tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
        unk = self.tokenizer.named_tokens.get("unk_token")
        unk_id = self.tokenizer.tokenizer.token_to_id(unk) if unk is not None else None
        return int(unk_id) if unk_id is not None else None

    def _expansion_id(self) -> int:
        """PyLate pads with the mask token, else EOS, else pad; MultiVectorEncoder its token, else mask, else EOS."""
        native = self.layout.format is ColbertFormat.MULTI_VECTOR_ENCODER
        if native and self.layout.expansion_token is not None:
            token = self.layout.expansion_token
            found = self.tokenizer.tokenizer.token_to_id(token)
            if found is None:
                raise UnsupportedModelError(
                    f"{str(self.model_path)!r}: the query expansion token {token!r} is not in the tokenizer's "
                    "vocabulary."
                )
            return int(found)
        for role in ("mask_token", "eos_token") if native else ("mask_token", "eos_token", "pad_token"):
            text = self.tokenizer.named_tokens.get(role)
            found = self.tokenizer.tokenizer.token_to_id(text) if text is not None else None
            if found is not None:
                return int(found)
        raise UnsupportedModelError(
            f"{str(self.model_path)!r}: the tokenizer has no mask, EOS or pad token to expand queries with."
        )

    def _prefix_id(self, prefix: str) -> int | None:
        if prefix == "":
            return None
        found = self._token_id(prefix)
        if found is None:
            raise UnsupportedModelError(f"The ColBERT prefix {prefix!r} is not a token of this model's tokenizer.")
        return found

    def _skiplist_ids(self, words: Sequence[str]) -> list[int]:
        if self.layout.format is ColbertFormat.MULTI_VECTOR_ENCODER:
            # MultiVectorMask drops words that are not single vocabulary tokens (they would skip real [UNK]s).
            vocab = self.tokenizer.tokenizer
            return [int(found) for word in words if (found := vocab.token_to_id(word)) is not None]
        return [token_id for word in words if (token_id := self._token_id(word)) is not None]

    def _side(self, is_query: bool) -> _Side:
        layout = self.layout
        length = layout.query_length if is_query else layout.document_length
        prefix_id = self.query_prefix_id if is_query else self.document_prefix_id
        expand = is_query and layout.do_query_expansion
        native = layout.format is ColbertFormat.MULTI_VECTOR_ENCODER
        task = "query" if is_query else "document"
        return _Side(
            is_query=is_query,
            max_length=length - 1 if prefix_id is not None else length,
            prefix_id=prefix_id,
            expand=expand,
            attend_all=is_query and layout.attend_to_expansion_tokens,
            skip=task in layout.skiplist_tasks if native else not is_query,
            prompt_name=task if native else None,
        )

    # -- properties PyLate users read ----------------------------------------------------------------
    @property
    def query_prefix(self) -> str:
        """Prefix token of queries (``""``: none)."""
        return self.layout.query_prefix

    @property
    def document_prefix(self) -> str:
        """Prefix token of documents (``""``: none)."""
        return self.layout.document_prefix

    @property
    def query_length(self) -> int:
        """Tokens of every query with expansion (prefix included)."""
        return self.layout.query_length

    @property
    def document_length(self) -> int:
        """Most tokens a document keeps (prefix included)."""
        return self.layout.document_length

    @property
    def do_query_expansion(self) -> bool:
        """Whether queries are padded to ``query_length`` with the mask token."""
        return self.layout.do_query_expansion

    @property
    def attend_to_expansion_tokens(self) -> bool:
        """Whether the expansion tokens are attended to."""
        return self.layout.attend_to_expansion_tokens

    @property
    def skiplist_words(self) -> list[str]:
        """Words whose tokens are dropped from documents."""
        return list(self.layout.skiplist_words)

    def onnx_config(self) -> dict[str, Any]:
        """next-plaid's ``onnx_config.json``: the settings its Rust reader takes beside ``tokenizer.json``."""
        layout = self.layout
        return {
            "query_prefix": layout.query_prefix,
            "document_prefix": layout.document_prefix,
            "query_length": layout.query_length,
            "document_length": layout.document_length,
            "do_query_expansion": layout.do_query_expansion,
            "attend_to_expansion_tokens": layout.attend_to_expansion_tokens,
            "skiplist_words": list(layout.skiplist_words),
            "embedding_dim": layout.dimension,
            "mask_token_id": self.expansion_id,
            "pad_token_id": self.tokenizer.pad_id,
            "query_prefix_id": self.query_prefix_id,
            "document_prefix_id": self.document_prefix_id,
            "do_lower_case": layout.do_lower_case,
            "uses_token_type_ids": "token_type_ids" in self.tokenizer.model_input_names,
        }

    def get_embedding_dimension(self) -> int:
        """Width of each token vector."""
        return self.layout.dimension

    get_sentence_embedding_dimension = get_embedding_dimension

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the token-vector cache."""
        return self._cache.info()

    def clear_cache(self) -> None:
        """Drop every cached result."""
        self._cache.clear()

    def __repr__(self) -> str:
        """Folder, file and settings."""
        layout = self.layout
        return (
            f"OnnxColbertEncoder({str(self.model_path)!r}, file_name={self.file_name!r}, dim={layout.dimension}, "
            f"query_length={layout.query_length}, document_length={layout.document_length})"
        )

    # -- encoding ------------------------------------------------------------------------------------
    def resolve_prompt(
        self, prompt: str | None = None, prompt_name: str | None = None, is_query: bool | None = None
    ) -> str | None:
        """The prompt an encode() call prepends, as PyLate resolves it (``prompt`` wins over ``prompt_name``).

        In a MultiVectorEncoder folder a call naming no prompt uses the side's (``is_query``) ``query`` /
        ``document`` prompt, never ``default_prompt_name``, as ``encode_query`` / ``encode_document`` do.
        """
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidInputError(f"prompt must be a str or None, got {type(prompt).__name__}: {prompt!r:.80}.")
        if prompt_name is not None and not isinstance(prompt_name, str):
            raise InvalidInputError(f"prompt_name must be a str or None, got {type(prompt_name).__name__}.")
        if prompt is not None:
            if prompt_name is not None:
                logger.warning(
                    "Provide either a `prompt` or a `prompt_name`, not both. "
                    "Ignoring the `prompt_name` in favor of the provided `prompt`."
                )
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InvalidInputError(
                    f"Prompt name '{prompt_name}' not found in the configured prompts dictionary. "
                    f"Available keys are: {list(self.prompts)!r}."
                )
            return self.prompts[prompt_name]
        side_prompt = self._sides[is_query].prompt_name if is_query is not None else None
        if side_prompt is not None:
            return self.prompts.get(side_prompt)
        return self.prompts.get(self.default_prompt_name) if self.default_prompt_name is not None else None

    def count_tokens(
        self, inputs: Sequence[str], is_query: bool, prompt_name: str | None = None, prompt: str | None = None
    ) -> list[int]:
        """Untruncated tokens of each text as the model reads it (prompt, special and prefix tokens in).

        A query with expansion always reads ``query_length`` tokens; a longer one is truncated to it.
        """
        texts, _ = check_texts(inputs)
        side = self._sides[is_query]
        prefix = self.resolve_prompt(prompt, prompt_name, is_query) or ""
        extra = 1 if side.prefix_id is not None else 0
        counts = [count + extra for count in self.tokenizer.count([prefix + text for text in texts])]
        if side.expand:
            return [max(count, self.layout.query_length) for count in counts]
        return counts

    def token_limit(self, is_query: bool) -> int:
        """Most tokens a query (``query_length``) or document (``document_length``) is read with."""
        return self.layout.query_length if is_query else self.layout.document_length

    def encode(
        self,
        sentences: str | Sequence[str] | Sequence[Sequence[str]],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        padding: bool = False,
        device: str | None = None,
        normalize_embeddings: bool | None = None,
        is_query: bool = True,
        pool_factor: int = 1,
        protected_tokens: int = 1,
        output_value: str | None = "token_embeddings",
    ) -> Any:
        """Token vectors of each text, as ``pylate.models.ColBERT.encode`` returns them.

        ``normalize_embeddings`` None is the folder's default: PyLate normalises (its ``True``); a
        MultiVectorEncoder folder normalises when it has a ``Normalize`` module (its ``False``), and
        always with ``True``.

        A list of lists is encoded list by list (a list of results). ``output_value=None`` returns
        a dict of per-text ``token_embeddings`` (every position), ``input_ids``, ``attention_mask`` and
        ``masks`` (which positions the default output keeps).
        """
        if output_value not in _OUTPUT_VALUES:
            raise InvalidInputError(f"output_value must be 'token_embeddings' or None, got {output_value!r}.")
        positive_int("pool_factor", pool_factor)
        if output_value is None and pool_factor > 1:
            raise InvalidInputError("output_value=None is not compatible with pool_factor > 1.")
        if isinstance(sentences, list) and sentences and isinstance(sentences[0], list):
            options: dict[str, Any] = {
                "prompt_name": prompt_name, "prompt": prompt, "batch_size": batch_size, "precision": precision,
                "convert_to_numpy": convert_to_numpy, "convert_to_tensor": convert_to_tensor, "padding": padding,
                "device": device, "normalize_embeddings": normalize_embeddings, "is_query": is_query,
                "pool_factor": pool_factor, "protected_tokens": protected_tokens, "output_value": output_value,
            }  # fmt: skip
            results = [self.encode(batch, **options) for batch in sentences]
            if convert_to_tensor:
                import torch

                return [torch.stack(result) for result in results]
            return results
        positive_int("batch_size", batch_size)
        check_device("device", device)
        if not isinstance(protected_tokens, int) or isinstance(protected_tokens, bool) or protected_tokens < 0:
            raise InvalidInputError(f"protected_tokens must be a non-negative int, got {protected_tokens!r}.")
        if precision not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}.")
        if not isinstance(is_query, bool):
            raise InvalidInputError(f"is_query must be True or False, got {is_query!r}.")
        texts, singular = check_texts(sentences)
        if not convert_to_numpy:
            convert_to_tensor = True
        with self.metrics.observe_call():
            resolved = self.resolve_prompt(prompt, prompt_name, is_query)
            normalize_embeddings = self._normalizes(normalize_embeddings)
            if resolved is not None:
                texts = [resolved + text for text in texts]
            side = self._sides[is_query]
            if output_value is None:
                self.metrics.call(len(texts), hits=0, misses=0)
                rows = self._run(texts, side, batch_size, bool(show_progress_bar), normalize_embeddings, full=True)
                outputs: dict[str, list[np.ndarray]] = {
                    key: [row[key] for row in rows]
                    for key in ("token_embeddings", "input_ids", "attention_mask", "masks")
                }
            else:
                vectors = self._cached(texts, side, batch_size, bool(show_progress_bar), normalize_embeddings)
                if pool_factor > 1 and not is_query:
                    with self.metrics.time("pooling"):
                        vectors = [pool_tokens(vector, pool_factor, protected_tokens) for vector in vectors]
                outputs = {"token_embeddings": vectors}
        return _finish(outputs, padding, precision, convert_to_tensor, singular, output_value, self.expansion_id)

    def _normalizes(self, requested: bool | None) -> bool:
        if self.layout.normalize:
            return True
        if requested is None:
            return self.layout.format is ColbertFormat.PYLATE
        if not isinstance(requested, bool):
            raise InvalidInputError(f"normalize_embeddings must be True, False or None, got {requested!r}.")
        return requested

    def encode_query(self, sentences: str | Sequence[str], **kwargs: Any) -> Any:
        """``encode(..., is_query=True)`` (sentence-transformers 6's name)."""
        return self.encode(sentences, **{**kwargs, "is_query": True})

    def encode_document(self, sentences: str | Sequence[str], **kwargs: Any) -> Any:
        """``encode(..., is_query=False)`` (sentence-transformers 6's name)."""
        return self.encode(sentences, **{**kwargs, "is_query": False})

    encode_queries = encode_query
    encode_documents = encode_document

    def similarity(self, queries: Sequence[np.ndarray], documents: Sequence[np.ndarray]) -> np.ndarray:
        """MaxSim scores ``(queries, documents)`` (PyLate's ``colbert_scores``)."""
        return colbert_scores(queries, documents)

    def _cached(
        self, texts: list[str], side: _Side, batch_size: int, progress: bool, normalized: bool
    ) -> list[np.ndarray]:
        keys = [(side.is_query, normalized, text) for text in texts]

        def compute(missing: list[int]) -> list[np.ndarray]:
            rows = self._run([texts[i] for i in missing], side, batch_size, progress, normalized, full=False)
            return [row["token_embeddings"] for row in rows]

        found, hits, misses = self._cache.get_or_compute(keys, compute)
        self.metrics.call(len(texts), hits=hits, misses=misses)
        return found

    def _run(
        self, texts: list[str], side: _Side, batch_size: int, progress: bool, normalized: bool, full: bool
    ) -> list[dict[str, np.ndarray]]:
        """Per text (in input order) its kept token vectors, or with ``full`` every position and the masks.

        Batches are PyLate's (longest text first, ``batch_size`` at a time), so ``full`` rows are
        padded as PyLate pads them; kept vectors do not depend on the batch.
        """
        rows: list[dict[str, np.ndarray]] = [{} for _ in texts]
        options = BatchOptions(side.max_length)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=-(-len(texts) // batch_size), desc="Encoding queries" if side.is_query else "Encoding documents"
            )
        try:
            for picked in windows([len(text) for text in texts], batch_size):
                with self.metrics.time("tokenize"):
                    encodings = self.tokenizer.tokenize([texts[i] for i in picked], options)
                    # the widths _features pads to: expanded queries all max_length, plus the prefix token
                    inserted = side.prefix_id is not None
                    lengths = [(side.max_length if side.expand else len(e.ids)) + inserted for e in encodings]
                    budget = None if full else COLBERT_BATCH_TOKENS
                    plan = batches(lengths, batch_size, regroup=not full, max_tokens=budget)
                for batch in plan:
                    with self.metrics.time("tokenize"):
                        features = self._features([encodings[i] for i in batch], side)
                    with self.metrics.time("inference"):
                        self.metrics.batch(len(batch), int(features["input_ids"].size))
                        tokens = self.session.run(features)
                    with self.metrics.time("pooling"):
                        if self._project_in_numpy:
                            for module in self.layout.projection:
                                tokens = module(tokens)
                        for row, index in enumerate(picked[batch]):
                            rows[index] = self._row(tokens[row], features, row, side, normalized, full)
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return rows

    def _features(self, encodings: Sequence[Any], side: _Side) -> dict[str, np.ndarray]:
        """PyLate's ``tokenize``: padded (with the expansion token), prefix inserted after the first token."""
        width = side.max_length if side.expand else max((len(encoding.ids) for encoding in encodings), default=0)
        count = len(encodings)
        input_ids = np.full((count, width), self.expansion_id, dtype=np.int64)
        attention = np.zeros((count, width), dtype=np.int64)
        types = np.zeros((count, width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            cols = slice(width - n, width) if left else slice(0, n)
            input_ids[row, cols] = encoding.ids
            attention[row, cols] = 1
            types[row, cols] = encoding.type_ids
        if side.prefix_id is not None:
            input_ids = np.insert(input_ids, 1, side.prefix_id, axis=1)
            attention = np.insert(attention, 1, 1, axis=1)
            types = np.insert(types, 1, 0, axis=1)
        if side.attend_all:
            attention[:] = 1
        features = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self.tokenizer.model_input_names:
            features["token_type_ids"] = types
        return features

    def _row(
        self,
        tokens: np.ndarray,
        features: Mapping[str, np.ndarray],
        row: int,
        side: _Side,
        normalized: bool,
        full: bool,
    ) -> dict[str, np.ndarray]:
        ids, attention = features["input_ids"][row], features["attention_mask"][row]
        mask = np.ones(len(ids), dtype=bool) if side.is_query and side.expand else attention.astype(bool)
        if side.skip:
            mask &= ~np.isin(ids, self._skiplist_array)
        if full:
            vectors = normalize(tokens) if normalized else tokens
            return {"token_embeddings": vectors, "input_ids": ids, "attention_mask": attention, "masks": mask}
        kept = tokens[mask]
        return {"token_embeddings": normalize(kept) if normalized else np.ascontiguousarray(kept)}


def _finish(
    outputs: dict[str, list[np.ndarray]],
    padding: bool,
    precision: str,
    to_tensor: bool,
    singular: bool,
    output_value: str | None,
    pad_id: int,
) -> Any:
    """PyLate's tail of encode(): optional padding, precision, tensor conversion, the single-text case."""
    if padding and outputs["token_embeddings"]:
        pads = {"token_embeddings": 0, "masks": 0, "attention_mask": 0, "input_ids": pad_id}
        for key, values in outputs.items():
            stacked = pad_tokens(values) if values[0].ndim == 2 else _pad_rows(values, pads[key])
            outputs[key] = [stacked[i : i + 1] for i in range(len(values))]
    if precision != "float32" and outputs["token_embeddings"]:
        outputs["token_embeddings"] = quantize_matrices(outputs["token_embeddings"], precision)
    if to_tensor:
        try:
            import torch
        except ImportError as exc:
            raise InvalidInputError(
                "convert_to_tensor=True (or convert_to_numpy=False) needs torch, which is not installed; "
                "use convert_to_numpy=True (the default)."
            ) from exc
        tensors: dict[str, list[Any]] = {
            key: [torch.from_numpy(np.ascontiguousarray(value)) for value in values] for key, values in outputs.items()
        }
        outputs = tensors
    if output_value == "token_embeddings":
        values = outputs["token_embeddings"]
        return values[0] if singular else values
    if singular:
        return {key: values[0] for key, values in outputs.items()}
    return outputs


def _pad_rows(values: list[np.ndarray], fill: int) -> np.ndarray:
    width = max(len(value) for value in values)
    out = np.full((len(values), width), fill, dtype=values[0].dtype)
    for row, value in enumerate(values):
        out[row, : len(value)] = value
    return out
