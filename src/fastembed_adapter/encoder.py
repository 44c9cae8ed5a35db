"""``OnnxSentenceEncoder``: ``SentenceTransformer.encode()`` on ONNX Runtime (or OpenVINO), without torch.

The arguments and results follow sentence-transformers 6.x where 5.x and 6.x differ; the
keywords ST users pass that need torch (a multi-process ``pool``, ``device="cuda"``, most
``model_kwargs``) raise ``InvalidInputError`` naming the keyword.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, overload

import numpy as np

from .cache import CacheInfo, EmbeddingCache
from .cpu import QuantTarget, detect_target
from .errors import CorruptModelError, InvalidInputError, model_access
from .hub import resolve_model
from .layout import ModelLayout, read_layout
from .metrics import EncoderMetrics
from .modules import normalize
from .planning import batches, windows
from .pooling import PRECISIONS, exclude_prompt, pool, quantize, quantize_matrices
from .session import Runtime, load_beside, resolve_runtime, runtime_arguments
from .similarity import (
    SUPPORTED_SIMILARITY_FN_NAMES,
    Similarity,
    SimilarityFunction,
    pairwise_similarity_fn,
    similarity_fn,
)
from .tokenization import PROCESSING_KWARGS_KEYS, BatchOptions, TextTokenizer, position_limit

if TYPE_CHECKING:
    from enum import Enum

    from prometheus_client import CollectorRegistry
    from tokenizers import Encoding

from .st_compat import (
    LoadOverrides,
    auth_token,
    check_device,
    check_texts,
    check_unicode,
    hub_options,
    positive_int,
    remote_code,
    renamed_kwargs,
    warn_once,
)

__all__ = ["OnnxSentenceEncoder"]

logger = logging.getLogger(__name__)
_OUTPUT_VALUES = ("sentence_embedding", "token_embeddings", None)
_ENCODE_KWARGS = ("task", "processing_kwargs")  # the extra keywords ST's encode() takes on a model without a Router


def _as_int(value: Any) -> Any:
    """A numpy integer (``np.int64(32)``) as the Python int it stands for, as ST takes it; anything else as is."""
    return int(value) if isinstance(value, np.integer) else value


class OnnxSentenceEncoder:
    """A drop-in for ``SentenceTransformer`` that runs an (INT8) ONNX file with ONNX Runtime.

    Loads a folder written by ``prepare``, a sentence-transformers folder or a hub repo that
    ships ``onnx/*.onnx``. Tokenization, truncation, pooling and normalisation follow the
    model's own configs.
    """

    SUPPORTED_SIMILARITY_FN_NAMES: ClassVar[tuple[str, ...]] = SUPPORTED_SIMILARITY_FN_NAMES

    @renamed_kwargs(tokenizer_kwargs="processor_kwargs")
    @model_access()  # a model file this process may not read: ModelAccessError naming it
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
        similarity_fn_name: str | Enum | None = None,
        cache_size: int = 1024,
        cache_max_bytes: int | None = None,
        metrics: bool = True,
        registry: CollectorRegistry | None = None,
        model_name: str | None = None,
        device: str | None = None,
        cache_folder: str | Path | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        token: bool | str | None = None,
        use_auth_token: bool | str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        config_kwargs: Mapping[str, Any] | None = None,
        backend: str = "onnx",
        runtime: str | None = None,
    ) -> None:
        """Load the model folder and build one ONNX Runtime (or OpenVINO) session.

        Args:
            model_name_or_path: a local folder or a hub repo id (``owner/name``).
            file_name: ONNX file inside the folder, e.g. ``onnx/model.onnx``. Default: the INT8
                file made for this CPU, else ``onnx/model.onnx``; with ``runtime="openvino"``
                ``openvino/openvino_model.xml``, else ``onnx/model.onnx`` (INT8 files are refused).
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
            device: ``None`` or ``"cpu"``, as ``SentenceTransformer(device=...)``; others raise.
            cache_folder: hub cache folder (default ``$SENTENCE_TRANSFORMERS_HOME``, else the hub's).
            trust_remote_code: custom modelling code is never run; True on a model that declares
                some raises (its custom pre/post-processing would be missing).
            local_files_only: load from the hub cache only, never download.
            token: Hugging Face token for private or gated repos (``use_auth_token``: deprecated alias).
            use_auth_token: deprecated name of ``token`` (FutureWarning, as in sentence-transformers).
            model_kwargs: ST's ``AutoModel`` keywords that mean something here: ``file_name``,
                ``provider="CPUExecutionProvider"``, ``export=False``, ``dtype``/``torch_dtype``
                ``"auto"``/float32, ``attn_implementation`` (no effect: ORT runs its own attention),
                ``device_map="cpu"``; with OpenVINO also ``ov_config={"INFERENCE_PRECISION_HINT":
                "f32"|"bf16"}`` (bf16 only on CPUs that have it); others raise.
            processor_kwargs: tokenizer keywords ``model_max_length`` (sets ``max_seq_length``, as ST 6),
                ``padding_side``, ``truncation_side``; ``tokenizer_kwargs`` is the deprecated name.
            config_kwargs: not supported (the ONNX graph is built); a non-empty dict raises.
            backend: ``"onnx"``, or ``"openvino"`` (sentence-transformers' name for ``runtime="openvino"``);
                ``"torch"`` raises.
            runtime: ``"onnxruntime"`` (the default), ``"openvino"`` (extra ``openvino``: the IR
                ``prepare`` wrote, else the FP32 ONNX file) or ``"auto"`` (OpenVINO only where the
                manifest records it measured fastest on this CPU, else ONNX Runtime).
        """
        if not isinstance(model_name_or_path, (str, Path)):
            raise InvalidInputError(
                f"model_name_or_path must be a folder path or hub id, got {type(model_name_or_path).__name__}."
            )
        positive_int("truncate_dim", truncate_dim, allow_none=True)
        positive_int("threads", threads, allow_none=True)
        check_device("device", device)
        chosen_runtime, model_kwargs, precision = runtime_arguments(runtime, backend, model_kwargs)
        overrides = LoadOverrides.check(file_name, "onnx", model_kwargs, processor_kwargs, config_kwargs)
        hub = hub_options(model_name_or_path, cache_folder, local_files_only, auth_token(token, use_auth_token))
        # The runtime picks the file (from the hub, an OpenVINO IR is fetched only for a runtime that runs it).
        runtime_file: dict[str, Any] = {} if chosen_runtime is Runtime.ONNXRUNTIME else {"runtime": chosen_runtime}
        root, chosen = resolve_model(
            model_name_or_path, file_name=overrides.file_name, revision=revision, **hub, **runtime_file
        )
        self.layout: ModelLayout = read_layout(root)
        if chosen_runtime is Runtime.AUTO:  # resolve_model chose the file by the same rule
            chosen_runtime = resolve_runtime(chosen_runtime, self.layout.manifest, overrides.file_name)
        self.runtime = chosen_runtime.value
        self.model_path = root
        self.file_name = chosen
        remote = remote_code(root) if trust_remote_code else None
        if remote is not None:
            raise InvalidInputError(
                f"trust_remote_code=True: {str(root)!r} declares custom code ({remote}), which OnnxSentenceEncoder "
                "never runs, so custom pre/post-processing in it would be missing. Pass trust_remote_code=False to run "
                "the exported ONNX graph as it is, or use sentence_transformers.SentenceTransformer."
            )
        self._warn_on_isa_mismatch()
        self._position_limit = position_limit(root)
        max_seq_length = self._initial_max_seq_length(overrides.model_max_length)

        # Cold start: the session build (which releases the GIL) and the manifest's sha256 check run in
        # worker threads while this one loads the tokenizer and the metrics (and imports
        # prometheus_client). A manifest mismatch explains a failed load better than ONNX Runtime does.
        def build() -> tuple[TextTokenizer, EncoderMetrics]:
            tokenizer = TextTokenizer(
                root,
                max_seq_length,
                self.layout.do_lower_case,
                padding_side=overrides.padding_side,
                truncation_side=overrides.truncation_side,
            )
            return tokenizer, EncoderMetrics(model_name or root.name, registry, enabled=metrics)

        self.session, (self.tokenizer, self.metrics) = load_beside(
            root, chosen, threads, spinning, self.layout.manifest, build, chosen_runtime, precision
        )
        width, expected = self.session.output_width, self.layout.pooling.dimension
        if width is not None and width != expected:
            raise CorruptModelError(
                f"{str(root / chosen)!r} gives {width}-d token vectors but the pooling config expects {expected}-d "
                "ones (embedding_dimension): the ONNX file belongs to another model. Re-run `prepare` or restore "
                "the folder."
            )
        self.truncate_dim = truncate_dim if truncate_dim is not None else self.layout.truncate_dim
        self.prompts = self._merge_prompts(prompts)
        self.default_prompt_name = default_prompt_name or self.layout.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InvalidInputError(
                f"Default prompt name {self.default_prompt_name!r} not found in the configured prompts "
                f"dictionary with keys {list(self.prompts)!r}."
            )
        self.similarity_fn_name = similarity_fn_name or self.layout.similarity_fn_name or "cosine"
        self._prompt_lengths: dict[tuple[str, BatchOptions], int] = {}
        self._cache = EmbeddingCache(cache_size, cache_max_bytes)

    def _initial_max_seq_length(self, model_max_length: int | None) -> int | None:
        """``processor_kwargs['model_max_length']`` (checked against the positions), else the config's, capped."""
        if model_max_length is not None:
            self._check_positions("processor_kwargs['model_max_length']", model_max_length)
            return model_max_length
        configured = self.layout.max_seq_length
        limit = self._position_limit
        if configured is not None and limit is not None and configured > limit:
            logger.warning(
                "max_seq_length %d in %s is more than the model's %d positions; truncating texts to %d tokens.",
                configured,
                self.model_path,
                limit,
                limit,
            )
            return limit
        return configured

    def _check_positions(self, name: str, length: int | None) -> None:
        """Refuse a token count past the model's position embeddings (ONNX Runtime would fail on the batch)."""
        limit = self._position_limit
        if length is not None and limit is not None and length > limit:
            raise InvalidInputError(
                f"{name}={length} is more than this model's {limit} positions (max_position_embeddings in "
                f"config.json); valid: 1..{limit}."
            )

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
                stacklevel=4,
            )

    # -- attributes sentence-transformers code reads ----------------------------------------
    @property
    def device(self) -> str:
        """Always ``"cpu"``."""
        return "cpu"

    @property
    def max_seq_length(self) -> int | None:
        """Texts are truncated to this many tokens; settable like ``SentenceTransformer.max_seq_length``.

        Values past the model's position embeddings raise ``InvalidInputError`` (ST accepts them and
        fails on the first text that long).
        """
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            self._check_positions("max_seq_length", value)
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

    @contextmanager
    def truncate_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """In this context, :meth:`encode` truncates sentence embeddings to ``truncate_dim`` (None: not at all)."""
        positive_int("truncate_dim", truncate_dim, allow_none=True)
        original = self.truncate_dim
        try:
            self.truncate_dim = truncate_dim
            yield
        finally:
            self.truncate_dim = original

    @contextmanager
    def truncate_sentence_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """Deprecated name of :meth:`truncate_embeddings` (a FutureWarning, as in sentence-transformers 6)."""
        warnings.warn(
            "The `truncate_sentence_embeddings` method has been renamed to `truncate_embeddings`.",
            FutureWarning,
            stacklevel=3,
        )
        with self.truncate_embeddings(truncate_dim):
            yield

    def __len__(self) -> int:
        """Number of modules in ``modules.json``, like ``len(SentenceTransformer)``."""
        return len(self.layout.modules)

    def __getitem__(self, index: object) -> NoReturn:
        """``model[0]`` has nothing honest to return: there are no torch modules."""
        raise InvalidInputError(
            f"OnnxSentenceEncoder has no torch modules to index (model[{index!r}]): an ONNX graph replaces the "
            f"Transformer and the other modules ({', '.join(self.layout.modules)}) run in numpy. Use .tokenizer, "
            ".max_seq_length, .layout.pooling or .layout.post_modules instead."
        )

    @property
    def similarity_fn_name(self) -> str:
        """Name of the similarity function used by :attr:`similarity` (settable; None resets it to cosine)."""
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str | Enum | None) -> None:
        self._similarity_fn_name = SimilarityFunction.parse(value if value is not None else "cosine").value

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
            f"pooling={pooling!r}, normalize={self.layout.normalize}, threads={self.session.threads}, "
            f"runtime={self.runtime!r})"
        )

    # -- tokenization ------------------------------------------------------------------------
    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The features ``SentenceTransformer.preprocess`` gives for texts, as int64 numpy arrays.

        Keys in ST's order: the tokenizer's ``model_input_names`` (``input_ids``, ``token_type_ids``
        when the tokenizer makes them, ``attention_mask``), ``modality`` (``"text"``) and, with a
        non-empty ``prompt`` (prepended to every text), ``prompt_length``. ``task`` and
        ``processing_kwargs`` are accepted as in :meth:`encode`, and ``max_length`` as ST's
        ``Transformer.preprocess`` takes it (``processing_kwargs`` wins). An empty list gives ``{}``.
        """
        if isinstance(inputs, str):
            raise InvalidInputError(
                f"preprocess()/tokenize() take a list of texts, got a str ({inputs!r:.40}); pass [text]. "
                "(sentence-transformers would tokenize each character.)"
            )
        max_length = kwargs.pop("max_length", None)
        positive_int("max_length", max_length, allow_none=True)
        if max_length is not None:
            given = dict(kwargs.get("processing_kwargs") or {})
            given["text"] = {"max_length": max_length, **(given.get("text") or {})}
            kwargs["processing_kwargs"] = given
        options = self._batch_options(kwargs)
        texts, _ = check_texts(list(inputs))
        if not texts:
            return {}
        if prompt:
            texts = [prompt + text for text in texts]
        features = self.tokenizer.pad(self.tokenizer.tokenize(texts, options), options)
        return self._features(features, prompt, options)

    def tokenize(self, texts: Sequence[str], **kwargs: Any) -> dict[str, Any]:
        """Deprecated in sentence-transformers 6 (logged once): :meth:`preprocess` without a prompt."""
        warn_once("The `tokenize` method is deprecated, please use `preprocess` instead.")
        return self.preprocess(texts, **kwargs)

    def _features(self, features: dict[str, np.ndarray], prompt: str | None, options: BatchOptions) -> dict[str, Any]:
        """A padded batch as ST's preprocess returns it: the tokenizer's inputs, modality, prompt_length."""
        out: dict[str, Any] = {name: features[name] for name in self.tokenizer.model_input_names if name in features}
        out["modality"] = "text"
        if prompt:
            out["prompt_length"] = self._prompt_length(prompt, options)
        return out

    def _prompt_length(self, prompt: str, options: BatchOptions) -> int:
        key = (prompt, options)
        if key not in self._prompt_lengths:
            self._prompt_lengths[key] = self.tokenizer.prompt_length(prompt, options)
        return self._prompt_lengths[key]

    def _batch_options(self, kwargs: Mapping[str, Any]) -> BatchOptions:
        """The ``task``/``processing_kwargs`` extras of encode(): check them and resolve the call's tokenization."""
        if unused := sorted(set(kwargs) - set(_ENCODE_KWARGS)):
            raise InvalidInputError(
                f"{type(self).__name__}.encode() has been called with additional keyword arguments that this model "
                f"does not use: {unused}. The additional keyword arguments it accepts: {', '.join(_ENCODE_KWARGS)} "
                "(task has no effect: this model has no Router module)."
            )
        processing = kwargs.get("processing_kwargs")
        if isinstance(processing, Mapping) and (unknown := set(processing) - PROCESSING_KWARGS_KEYS):
            warn_once(
                f"Unknown keys in per-call `processing_kwargs`: {unknown}. "
                f"Valid keys are: {sorted(PROCESSING_KWARGS_KEYS)}. Unknown keys will be ignored."
            )
        options = BatchOptions.parse(processing, self.max_seq_length)
        self._check_positions("processing_kwargs max_length", options.max_length)
        self._check_positions("processing_kwargs max_length (padding='max_length')", options.pad_to)
        return options

    # -- encoding ----------------------------------------------------------------------------
    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        """The prompt ``encode()`` prepends for these arguments.

        ``prompt`` wins, then ``prompt_name``, then the default prompt; an unknown name raises
        ``InvalidInputError`` (sentence-transformers raises ValueError).
        """
        for name, value in (("prompt", prompt), ("prompt_name", prompt_name)):
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{name} must be a str or None, got {type(value).__name__}: {value!r:.80}.")
        if prompt is not None:
            check_unicode("prompt", prompt)
            if prompt_name is not None:
                logger.warning(
                    "Provide either a `prompt`, a `prompt_name`, or neither, but not both. "
                    "Ignoring the `prompt_name` in favor of `prompt`."
                )
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InvalidInputError(
                    f"Prompt name {prompt_name!r} not found in the configured prompts dictionary "
                    f"with keys {list(self.prompts)!r}."
                )
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None

    def _forward(
        self, features: dict[str, np.ndarray], prompt: str | None, options: BatchOptions, normalized: bool = True
    ) -> dict[str, Any]:
        """Run and pool one padded batch; returns ST 6's output features (numpy) in its key order.

        The ``attention_mask`` returned is the tokenizer's: ST 6 pools a copy with the prompt
        zeroed (``include_prompt=False``), where ST 5 zeroed it in place.
        """
        self.metrics.batch(len(features["input_ids"]), int(features["input_ids"].size))
        with self.metrics.time("inference"):
            tokens = self.session.run(features)
        with self.metrics.time("pooling"):
            out = self._features(features, prompt, options)
            mask = features["attention_mask"]
            pooled_mask = mask
            if prompt and not self.layout.pooling.include_prompt:
                pooled_mask = exclude_prompt(mask, out["prompt_length"])
            out["token_embeddings"] = tokens
            embedding = pool(self.layout.pooling, tokens, pooled_mask, original_mask=mask)
            for module in self.layout.post_modules if normalized else self.layout.before_final_normalize:
                embedding = module(embedding)
            out["sentence_embedding"] = embedding
        return out

    def _check_encode_args(
        self,
        output_value: str | None,
        precision: str | None,
        batch_size: int,
        truncate_dim: int | None,
        device: object,
        pool: object,
        kwargs: Mapping[str, Any],
    ) -> BatchOptions:
        """Validate encode()'s arguments (ST's names, values and messages) and return the call's tokenization."""
        if pool is not None:
            raise InvalidInputError(
                "pool= (a start_multi_process_pool() pool) runs torch worker processes, which OnnxSentenceEncoder "
                "does not have: drop it (chunk_size too) and set threads= on the encoder to use more CPUs."
            )
        if isinstance(device, (list, tuple)):
            raise InvalidInputError(
                f"device={device!r} asks for multi-process encoding over several devices; OnnxSentenceEncoder runs "
                "one process on the CPU: pass device=None or 'cpu' and set threads= on the encoder."
            )
        check_device("device", device)
        if output_value not in _OUTPUT_VALUES:
            raise InvalidInputError(f"output_value must be one of {list(_OUTPUT_VALUES)}, got {output_value!r}.")
        if precision is not None and precision not in PRECISIONS:
            raise InvalidInputError(f"Precision {precision!r} is not supported, must be one of {PRECISIONS}")
        if output_value is None and precision not in (None, "float32"):
            raise InvalidInputError(
                f"precision={precision!r} quantizes sentence or token embeddings; output_value=None returns every "
                "feature as is: pass precision='float32' (sentence-transformers fails on this combination)."
            )
        positive_int("batch_size", batch_size)
        positive_int("truncate_dim", truncate_dim, allow_none=True)
        return self._batch_options(kwargs)

    @overload
    def encode(
        self,
        inputs: str,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: str | None = "float32",
        convert_to_numpy: Literal[True] = True,
        convert_to_tensor: Literal[False] = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray: ...  # (dim,)

    @overload
    def encode(
        self,
        inputs: Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: Literal["sentence_embedding"] = "sentence_embedding",
        precision: str | None = "float32",
        convert_to_numpy: Literal[True] = True,
        convert_to_tensor: Literal[False] = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray: ...  # (n, dim)

    @overload
    def encode(self, inputs: str | Sequence[str] | np.ndarray, *args: Any, **kwargs: Any) -> Any: ...

    @renamed_kwargs(sentences="inputs")
    def encode(
        self,
        inputs: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str | None = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed ``inputs`` with the same arguments and return values as ``SentenceTransformer.encode`` (ST 6).

        Returns a float32 array ``(dim,)`` for a str and ``(n, dim)`` for a list, in input order; an
        empty list gives what sentence-transformers gives, ``np.asarray([])`` (shape ``(0,)``).
        ``sentences=`` still works (renamed ``inputs`` in ST 6; a warning is logged once). ``pool``
        and a list ``device`` (multi-process) raise; ``chunk_size`` only applies to those and is
        ignored, as in ST. ``task`` is accepted and has no effect (no Router module);
        ``processing_kwargs={"text": {...}}`` (and ``"common"``) may set ``max_length``,
        ``truncation``, ``padding`` and ``pad_to_multiple_of`` for this call.
        """
        with self.metrics.observe_call():
            batch_size, truncate_dim = _as_int(batch_size), _as_int(truncate_dim)
            options = self._check_encode_args(output_value, precision, batch_size, truncate_dim, device, pool, kwargs)
            texts, singular = check_texts(inputs)
            if show_progress_bar is None:
                show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
            if convert_to_tensor:
                convert_to_numpy = False
            if output_value != "sentence_embedding":
                convert_to_tensor = convert_to_numpy = False
            resolved_prompt = self.resolve_prompt(prompt, prompt_name)
            truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim
            if output_value == "sentence_embedding":
                results = self._sentence_embeddings(texts, resolved_prompt, batch_size, show_progress_bar, options)
                if truncate_dim is not None:
                    results = [vector[:truncate_dim] for vector in results]
                if normalize_embeddings and results:
                    results = list(normalize(np.stack(results)))
            else:
                self.metrics.call(len(texts), hits=0, misses=0)
                results = self._run(texts, resolved_prompt, batch_size, show_progress_bar, output_value, options)
                if output_value is None and truncate_dim is not None:
                    for row in results:
                        row["sentence_embedding"] = row["sentence_embedding"][:truncate_dim]
            return self._convert(results, singular, precision or "float32", convert_to_numpy, convert_to_tensor)

    @renamed_kwargs(sentences="inputs")
    def encode_query(
        self,
        inputs: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the ``query`` prompt when neither ``prompt`` nor ``prompt_name`` is given, and task="query".

        Further arguments are :meth:`encode`'s, in its order.
        """
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(inputs, prompt_name, prompt, *args, task="query", **kwargs)

    @renamed_kwargs(sentences="inputs")
    def encode_document(
        self,
        inputs: str | Sequence[str] | np.ndarray,
        prompt_name: str | None = None,
        prompt: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the first ``document``/``passage``/``corpus`` prompt that exists, and task="document".

        Further arguments are :meth:`encode`'s, in its order.
        """
        if prompt_name is None and prompt is None:
            prompt_name = next((name for name in ("document", "passage", "corpus") if name in self.prompts), None)
        return self.encode(inputs, prompt_name, prompt, *args, task="document", **kwargs)

    def encode_unnormalized(
        self,
        inputs: Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
    ) -> np.ndarray:
        """Sentence embeddings ``(n, dim)`` before the model's final ``Normalize`` module(s), cached.

        What text-embeddings-inference returns for ``normalize: false``; the same as :meth:`encode` on a
        model without a final ``Normalize``. The model's ``truncate_dim`` applies, as in ``encode()``.
        """
        texts, _ = check_texts(inputs)
        positive_int("batch_size", batch_size)
        with self.metrics.observe_call():
            resolved, options = self.resolve_prompt(prompt, prompt_name), self._batch_options({})
            rows = self._sentence_embeddings(texts, resolved, batch_size, False, options, normalized=False)
        dimension = self.get_sentence_embedding_dimension()
        return np.stack(rows)[:, :dimension] if rows else np.empty((0, dimension), dtype=np.float32)

    def count_tokens(
        self, inputs: Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> list[int]:
        """Tokens of each text as the model would read them without truncation (prompt and special tokens in)."""
        texts, _ = check_texts(inputs)
        prefix = self.resolve_prompt(prompt, prompt_name) or ""
        return self.tokenizer.count([prefix + text for text in texts])

    def token_encodings(
        self,
        inputs: Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        add_special_tokens: bool = True,
    ) -> list[Encoding]:
        """The tokenizer's untruncated ``Encoding`` of each prompt + text, with offsets (TEI's ``/tokenize``)."""
        texts, _ = check_texts(inputs)
        prefix = self.resolve_prompt(prompt, prompt_name) or ""
        return self.tokenizer.untruncated([prefix + text for text in texts], add_special_tokens, offsets=True)

    def _sentence_embeddings(
        self,
        texts: list[str],
        prompt: str | None,
        batch_size: int,
        progress: bool,
        options: BatchOptions,
        normalized: bool = True,
    ) -> list[Any]:
        """Sentence embeddings (after the model's Normalize, unless not ``normalized``) in input order.

        Only cache misses are computed; the vector before the final Normalize has keys of its own.
        """
        keys: list[tuple[Any, ...]] = [(options, prompt or "", text) for text in texts]
        if not normalized:
            keys = [(*key, "before-normalize") for key in keys]

        def compute(missing: list[int]) -> list[Any]:
            picked = [texts[i] for i in missing]
            return self._run(picked, prompt, batch_size, progress, "sentence_embedding", options, normalized)

        found, hits, misses = self._cache.get_or_compute(keys, compute)
        self.metrics.call(len(texts), hits=hits, misses=misses)
        return found

    def _run(
        self,
        texts: list[str],
        prompt: str | None,
        batch_size: int,
        progress: bool,
        output_value: str | None,
        options: BatchOptions,
        normalized: bool = True,
    ) -> list[Any]:
        """Encode in the batches :mod:`.planning` plans and return per-text outputs in the input order.

        Right-padded rows are regrouped by token count (a row's vector and token embeddings do not
        depend on its batch with FP32 and the per-token/blocked INT8 recipes; only per-tensor
        ``dynamic`` INT8 shifts slightly with the batch). ST's batches are kept where the batch shows
        in the result: ``output_value=None`` (rows carry the padded inputs) and left-padding
        tokenizers (decoder positions count the padding), up to the padded-token bound per call.
        """
        planned = windows([len(text) for text in texts], batch_size)  # ST sorts by the texts, prompt left out
        given = texts
        if prompt:
            texts = [prompt + text for text in texts]
        regroup = output_value is not None and self.tokenizer.padding_side == "right"
        rows: list[Any] = [None] * len(texts)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=-(-len(texts) // batch_size), desc="Batches")
        try:
            for picked in planned:
                with self.metrics.time("tokenize"):
                    encodings = self.tokenizer.tokenize([texts[i] for i in picked], options)
                    plan = batches([len(encoding.ids) for encoding in encodings], batch_size, regroup)
                    padded = [self.tokenizer.pad([encodings[i] for i in batch], options) for batch in plan]
                for batch, features in zip(plan, padded, strict=True):
                    self._check_width(features, [given[i] for i in picked[batch]])
                    outputs = self._split(self._forward(features, prompt, options, normalized), output_value)
                    for index, output in zip(picked[batch], outputs, strict=True):
                        rows[index] = output
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return rows

    def _check_width(self, features: dict[str, np.ndarray], texts: list[str]) -> None:
        """A padded batch wider than the position embeddings: name its longest text instead of ORT's broadcast error."""
        limit, width = self._position_limit, features["input_ids"].shape[1]
        if limit is not None and width > limit:
            lengths = features["attention_mask"].sum(axis=1)
            row = int(np.argmax(lengths))
            raise InvalidInputError(
                f"The text {texts[row]!r:.60} ({len(texts[row])} characters) is {int(lengths[row])} tokens long "
                f"after tokenization ({width} with padding), more than this model's {limit} positions: keep "
                f"truncation on (max_seq_length <= {limit}, processing_kwargs truncation=True) or shorten the text."
            )

    @staticmethod
    def _split(features: dict[str, Any], output_value: str | None) -> list[Any]:
        """Per-text outputs of one batch, as ST's encode loop builds them."""
        if output_value == "token_embeddings":
            rows = []
            for tokens, mask in zip(features["token_embeddings"], features["attention_mask"], strict=True):
                real = np.flatnonzero(mask)
                rows.append(tokens[: (int(real[-1]) if len(real) else 0) + 1])
            return rows
        if output_value is None:
            n = len(features["sentence_embedding"])
            batched = [
                name for name, value in features.items() if isinstance(value, np.ndarray) and value.shape[:1] == (n,)
            ]
            return [
                {name: value[i] if name in batched else value for name, value in features.items()} for i in range(n)
            ]
        return list(features["sentence_embedding"])

    @staticmethod
    def _convert(results: list[Any], singular: bool, precision: str, to_numpy: bool, to_tensor: bool) -> Any:
        """Apply precision and the numpy/tensor conversion exactly in ST's order.

        Token embeddings (a list of ``(tokens, dim)`` arrays) are quantized with buckets shared by
        all of them, as ST 6 does (ST 5 failed on a list of them).
        """
        output: Any = results
        if results and precision != "float32":
            if isinstance(results[0], np.ndarray) and results[0].ndim == 2:
                output = quantize_matrices(results, precision)
            else:
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
