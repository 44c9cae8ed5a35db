"""``OnnxSentenceEncoder``: ``SentenceTransformer.encode()`` on ONNX Runtime, without torch."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import CacheInfo, EmbeddingCache
from .cpu import QuantTarget, detect_target
from .errors import InvalidInputError
from .hub import resolve_model
from .layout import ModelLayout, read_layout
from .metrics import EncoderMetrics
from .modules import normalize
from .pooling import PRECISIONS, exclude_prompt, pool, quantize
from .session import OnnxSession
from .similarity import Similarity, SimilarityFunction, pairwise_similarity_fn, similarity_fn
from .tokenization import TextTokenizer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["OnnxSentenceEncoder"]

logger = logging.getLogger(__name__)
# Batches tokenized per call of the Rust tokenizer, enough to regroup them by token count; the texts
# cap bounds the padded arrays held at once (2,048 x 512 tokens x 3 int64 arrays = 25 MB).
_WINDOW_BATCHES = 16
_WINDOW_TEXTS = 2048
_OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)


def _is_singular(sentences: object) -> bool:
    """Same test as ``SentenceTransformer.is_singular_input``: lists, tuples and str/object arrays are batches."""
    if isinstance(sentences, (list, tuple)):
        return False
    return not (isinstance(sentences, np.ndarray) and sentences.ndim >= 1 and sentences.dtype.kind in ("U", "O"))


def _check_texts(sentences: object) -> tuple[list[str], bool]:
    """Return the texts as a list and whether the input was a single text; reject non-strings clearly."""
    if _is_singular(sentences):
        if not isinstance(sentences, str):
            raise InvalidInputError(
                f"sentences must be a str or a list of str, got {type(sentences).__name__}: {sentences!r:.80}."
            )
        return [sentences], True
    items: Any = sentences
    texts = items.tolist() if isinstance(items, np.ndarray) else list(items)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"sentences[{index}] is {type(text).__name__} ({text!r:.80}); every item must be a str."
            )
    return texts, False


def _positive_int(name: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")


class OnnxSentenceEncoder:
    """A drop-in for ``SentenceTransformer`` that runs an (INT8) ONNX file with ONNX Runtime.

    Loads a folder written by ``prepare``, a sentence-transformers folder or a hub repo that
    ships ``onnx/*.onnx``. Tokenization, truncation, pooling and normalisation follow the
    model's own configs.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        file_name: str | None = None,
        threads: int | None = None,
        spinning: bool = True,
        revision: str | None = None,
        truncate_dim: int | None = None,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        cache_size: int = 1024,
        cache_max_bytes: int | None = None,
        metrics: bool = True,
        registry: CollectorRegistry | None = None,
        model_name: str | None = None,
    ) -> None:
        """Load the model folder and build one ONNX Runtime session.

        Args:
            model_name_or_path: a local folder or a hub repo id (``owner/name``).
            file_name: ONNX file inside the folder, e.g. ``onnx/model.onnx``. Default: the INT8
                file made for this CPU, else ``onnx/model.onnx``.
            threads: intra-op threads; default the CPUs this process may use (cgroup quota, affinity).
            spinning: let idle ORT threads busy-wait between calls (lowest latency); False saves CPU
                between requests (servers, throttled containers).
            revision: hub revision (branch, tag or commit) when loading from the hub.
            truncate_dim: default dimension to truncate sentence embeddings to (else the model config's).
            prompts: prompts by name; the model config fills in names not given here.
            default_prompt_name: prompt used when ``encode`` gets none.
            similarity_fn_name: ``cosine``, ``dot``, ``euclidean`` or ``manhattan`` (default: config, else cosine).
            cache_size: sentence embeddings kept in the LRU cache; 0 disables it.
            cache_max_bytes: optional bound on the bytes the cache holds.
            metrics: record Prometheus metrics (per-stage durations, sizes, cache, errors).
            registry: the ``CollectorRegistry`` to record into (default: prometheus_client's global one).
            model_name: the ``model`` label of the metrics (default: the folder name).
        """
        if not isinstance(model_name_or_path, (str, Path)):
            raise InvalidInputError(
                f"model_name_or_path must be a folder path or hub id, got {type(model_name_or_path).__name__}."
            )
        _positive_int("truncate_dim", truncate_dim, allow_none=True)
        _positive_int("threads", threads, allow_none=True)
        root, chosen = resolve_model(model_name_or_path, file_name, revision)
        self.layout: ModelLayout = read_layout(root)
        self.model_path = root
        self.file_name = chosen
        self._warn_on_isa_mismatch()
        # Cold start: the session build (which releases the GIL) and the manifest's sha256 check run in
        # worker threads while this one loads the tokenizer and the metrics (and imports
        # prometheus_client). A manifest mismatch explains a failed load better than ONNX Runtime does.
        manifest = self.layout.manifest
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fea-load") as pool:
            session = pool.submit(OnnxSession, root / chosen, threads, spinning)
            check = pool.submit(manifest.verify, root, chosen) if manifest is not None else None
            try:
                self.tokenizer = TextTokenizer(root, self.layout.max_seq_length, self.layout.do_lower_case)
                self.metrics = EncoderMetrics(model_name or root.name, registry, enabled=metrics)
                self.session = session.result()
            except Exception:
                if check is not None:
                    check.result()  # a manifest mismatch names the damaged file: raise that first
                raise
            if check is not None:
                check.result()
        self.truncate_dim = truncate_dim if truncate_dim is not None else self.layout.truncate_dim
        self.prompts = self._merge_prompts(prompts)
        self.default_prompt_name = default_prompt_name or self.layout.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InvalidInputError(
                f"Default prompt name '{self.default_prompt_name}' not found in the configured prompts "
                f"dictionary with keys {list(self.prompts)!r}."
            )
        self.similarity_fn_name = similarity_fn_name or self.layout.similarity_fn_name or "cosine"
        self._prompt_lengths: dict[str, int] = {}
        self._cache = EmbeddingCache(cache_size, cache_max_bytes)

    def _merge_prompts(self, given: Mapping[str, str] | None) -> dict[str, str]:
        """Like ST: ``query``/``document`` always exist; the config fills names the caller left unset."""
        merged: dict[str, str | None] = {"query": None, "document": None, **(given or {})}
        for name, text in self.layout.prompts.items():
            if merged.get(name) is None:
                merged[name] = text
        return {name: text or "" for name, text in merged.items()}

    def _warn_on_isa_mismatch(self) -> None:
        """Warn when an INT8 file made for VNNI runs on an x86 CPU without VNNI (it can saturate there)."""
        no_vnni = detect_target() in (QuantTarget.AVX2, QuantTarget.AVX512)
        if QuantTarget.AVX512_VNNI.value in self.file_name and no_vnni:
            warnings.warn(
                f"{self.file_name} was quantized for AVX512-VNNI, which this CPU lacks; results may lose "
                "accuracy. Re-run `prepare --target auto` on this machine.",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- attributes sentence-transformers code reads ----------------------------------------
    @property
    def device(self) -> str:
        """Always ``"cpu"``."""
        return "cpu"

    @property
    def max_seq_length(self) -> int | None:
        """Texts are truncated to this many tokens; settable like ``SentenceTransformer.max_seq_length``."""
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self.tokenizer.max_seq_length = value

    def get_max_seq_length(self) -> int | None:
        """Same as ``max_seq_length``."""
        return self.max_seq_length

    def get_sentence_embedding_dimension(self) -> int:
        """Dimension of the sentence embeddings (after ``truncate_dim``, like sentence-transformers)."""
        dimension = self.layout.dimension
        return min(dimension, self.truncate_dim) if self.truncate_dim else dimension

    def get_embedding_dimension(self) -> int:
        """Same as :meth:`get_sentence_embedding_dimension` (the sentence-transformers >= 5.7 name)."""
        return self.get_sentence_embedding_dimension()

    def __len__(self) -> int:
        """Number of modules in ``modules.json``, like ``len(SentenceTransformer)``."""
        return len(self.layout.modules)

    @property
    def similarity_fn_name(self) -> str:
        """Name of the similarity function used by :attr:`similarity` (settable)."""
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str | SimilarityFunction) -> None:
        self._similarity_fn_name = SimilarityFunction.parse(value).value

    @property
    def similarity(self) -> Similarity:
        """Matrix similarity ``f(a, b) -> (len(a), len(b))`` named by :attr:`similarity_fn_name`."""
        return similarity_fn(self._similarity_fn_name)

    @property
    def similarity_pairwise(self) -> Similarity:
        """Pairwise similarity ``f(a, b) -> (len(a),)`` named by :attr:`similarity_fn_name`."""
        return pairwise_similarity_fn(self._similarity_fn_name)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the embedding cache."""
        return self._cache.info()

    def clear_cache(self) -> None:
        """Empty the embedding cache and reset its counters."""
        self._cache.clear()

    def __repr__(self) -> str:
        pooling = "+".join(mode.value for mode in self.layout.pooling.modes)
        return (
            f"OnnxSentenceEncoder(model={str(self.model_path)!r}, file={self.file_name!r}, "
            f"dim={self.get_sentence_embedding_dimension()}, max_seq_length={self.max_seq_length}, "
            f"pooling={pooling!r}, normalize={self.layout.normalize}, threads={self.session.threads})"
        )

    # -- encoding ----------------------------------------------------------------------------
    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            if prompt_name is not None:
                logger.warning(
                    "Provide either a `prompt`, a `prompt_name`, or neither, but not both. "
                    "Ignoring the `prompt_name` in favor of `prompt`."
                )
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InvalidInputError(
                    f"Prompt name '{prompt_name}' not found in the configured prompts dictionary "
                    f"with keys {list(self.prompts)!r}."
                )
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None

    def _forward(self, features: dict[str, np.ndarray], prompt: str | None) -> dict[str, np.ndarray]:
        """Run and pool one padded batch; returns ST-style features (numpy)."""
        self.metrics.batch(len(features["input_ids"]), int(features["input_ids"].size))
        with self.metrics.time("inference"):
            tokens = self.session.run(features)
        with self.metrics.time("pooling"):
            mask = features["attention_mask"]
            if prompt and not self.layout.pooling.include_prompt:
                if prompt not in self._prompt_lengths:
                    self._prompt_lengths[prompt] = self.tokenizer.prompt_length(prompt)
                mask = exclude_prompt(mask, self._prompt_lengths[prompt])
                features["attention_mask"] = mask
            features["token_embeddings"] = tokens
            embedding = pool(self.layout.pooling, tokens, mask)
            for module in self.layout.post_modules:
                embedding = module(embedding)
            features["sentence_embedding"] = embedding
        return features

    def encode(
        self,
        sentences: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed ``sentences`` with the same arguments and return values as ``SentenceTransformer.encode``.

        Returns a float32 array ``(dim,)`` for a str and ``(n, dim)`` for a list, in input order; an
        empty list gives what sentence-transformers gives, ``np.asarray([])`` (shape ``(0,)``).
        """
        with self.metrics.observe_call():
            if kwargs:
                raise InvalidInputError(
                    f"{type(self).__name__}.encode() has been called with additional keyword arguments that this "
                    f"model does not use: {list(kwargs)}. This model does not accept any additional keyword "
                    "arguments."
                )
            if device not in (None, "cpu"):
                raise InvalidInputError(f"device must be None or 'cpu' (ONNX Runtime CPU), got {device!r}.")
            if output_value not in _OUTPUT_VALUES:
                raise InvalidInputError(f"output_value must be one of {list(_OUTPUT_VALUES)}, got {output_value!r}.")
            if precision not in PRECISIONS:
                raise InvalidInputError(f"Precision {precision!r} is not supported, must be one of {PRECISIONS}")
            _positive_int("batch_size", batch_size)
            _positive_int("truncate_dim", truncate_dim, allow_none=True)
            texts, singular = _check_texts(sentences)
            if show_progress_bar is None:
                show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
            if convert_to_tensor:
                convert_to_numpy = False
            if output_value != "sentence_embedding":
                convert_to_tensor = convert_to_numpy = False
            resolved_prompt = self._resolve_prompt(prompt, prompt_name)
            truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
            if output_value == "sentence_embedding":
                results = self._sentence_embeddings(texts, resolved_prompt, batch_size, show_progress_bar)
                if truncate_dim is not None:
                    results = [vector[:truncate_dim] for vector in results]
                if normalize_embeddings and results:
                    results = list(normalize(np.stack(results)))
            else:
                self.metrics.call(len(texts), hits=0, misses=0)
                results = self._run(texts, resolved_prompt, batch_size, show_progress_bar, output_value)
            return self._convert(results, singular, precision, convert_to_numpy, convert_to_tensor)

    def encode_query(
        self,
        sentences: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the ``query`` prompt when neither ``prompt`` nor ``prompt_name`` is given (as ST)."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_document(
        self,
        sentences: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the first of the ``document``/``passage``/``corpus`` prompts that exists (as ST)."""
        if prompt_name is None and prompt is None:
            prompt_name = next((name for name in ("document", "passage", "corpus") if name in self.prompts), None)
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def _sentence_embeddings(self, texts: list[str], prompt: str | None, batch_size: int, progress: bool) -> list[Any]:
        """Sentence embeddings (after the model's Normalize) in input order; only cache misses are computed."""
        keys = [(self.max_seq_length, prompt or "", text) for text in texts]
        found = self._cache.get_many(keys)
        missing = [index for index, vector in enumerate(found) if vector is None]
        hits = len(texts) - len(missing) if self._cache.enabled else 0
        self.metrics.call(len(texts), hits=hits, misses=len(missing) if self._cache.enabled else 0)
        if missing:
            computed = self._run([texts[i] for i in missing], prompt, batch_size, progress, "sentence_embedding")
            self._cache.put_many([(keys[i], vector) for i, vector in zip(missing, computed, strict=True)])
            for index, vector in zip(missing, computed, strict=True):
                found[index] = vector
        return found

    def _run(
        self, texts: list[str], prompt: str | None, batch_size: int, progress: bool, output_value: str | None
    ) -> list[Any]:
        """Encode in batches of similar length and return per-text outputs in the input order.

        Texts go longest first in characters, like ST, and are tokenized a window of up to
        ``_WINDOW_BATCHES`` batches (at most ``_WINDOW_TEXTS`` texts) at a time. Within a window the
        batches are then cut by token count, not characters: on short sentences that pads ~1 % of
        tokens instead of ~13 %. A right-padded row's vector and token embeddings do not depend on
        its batch (FP32 and the per-token/blocked INT8 recipes compute each row on its own; only
        per-tensor ``dynamic`` INT8 shifts slightly with the batch). ST's exact batches are kept
        where the batch shows in the result: ``output_value=None`` (rows carry the padded inputs)
        and left-padding tokenizers (decoder positions count the padding).
        """
        order = np.argsort([-len(text) for text in texts])
        if prompt:
            texts = [prompt + text for text in texts]
        regroup = output_value is not None and self.tokenizer.padding_side == "right"
        window = batch_size * max(1, min(_WINDOW_BATCHES, _WINDOW_TEXTS // batch_size))
        rows: list[Any] = [None] * len(texts)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=-(-len(texts) // batch_size), desc="Batches")
        try:
            for start in range(0, len(texts), window):
                picked = order[start : start + window]
                with self.metrics.time("tokenize"):
                    encodings = self.tokenizer.tokenize([texts[i] for i in picked])
                    if regroup:
                        by_tokens = np.argsort([-len(enc.ids) for enc in encodings], kind="stable")
                        picked, encodings = picked[by_tokens], [encodings[i] for i in by_tokens]
                    firsts = range(0, len(picked), batch_size)
                    batches = [self.tokenizer.pad(encodings[first : first + batch_size]) for first in firsts]
                for first, features in zip(firsts, batches, strict=True):
                    outputs = self._split(self._forward(features, prompt), output_value)
                    for index, output in zip(picked[first : first + batch_size], outputs, strict=True):
                        rows[index] = output
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return rows

    @staticmethod
    def _split(features: dict[str, np.ndarray], output_value: str | None) -> list[Any]:
        """Per-text outputs of one batch, as ST's encode loop builds them."""
        if output_value == "token_embeddings":
            rows = []
            for tokens, mask in zip(features["token_embeddings"], features["attention_mask"], strict=True):
                real = np.flatnonzero(mask)
                rows.append(tokens[: (int(real[-1]) if len(real) else 0) + 1])
            return rows
        if output_value is None:
            n = len(features["sentence_embedding"])
            return [{name: value[i] for name, value in features.items()} for i in range(n)]
        return list(features["sentence_embedding"])

    @staticmethod
    def _convert(results: list[Any], singular: bool, precision: str, to_numpy: bool, to_tensor: bool) -> Any:
        """Apply precision and the numpy/tensor conversion exactly in ST's order."""
        output: Any = results
        if results and precision != "float32":
            output = quantize(np.asarray(results), precision)
        if to_tensor:
            try:
                import torch
            except ImportError as exc:
                raise InvalidInputError(
                    "convert_to_tensor=True needs torch, which is not installed; use convert_to_numpy=True "
                    "(the default) or install torch."
                ) from exc
            if isinstance(output, np.ndarray):
                output = torch.from_numpy(output)
            elif output:
                output = torch.from_numpy(np.stack(output))
            else:
                output = torch.tensor([])
        elif to_numpy:
            # np.asarray of an empty list is float64 (0,): exactly what sentence-transformers returns
            output = output if isinstance(output, np.ndarray) else np.asarray(output)
        elif isinstance(output, np.ndarray):
            output = list(output)
        return output[0] if singular else output
