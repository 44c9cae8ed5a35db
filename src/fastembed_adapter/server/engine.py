"""``ModelHost``: the replica's one encoder, its lifecycle (loading → ready → draining) and the embed path.

The model is loaded on the worker thread after the server starts listening, so ``/health`` can
answer 503 while it loads; a probe encode must succeed before the state becomes ``ready``. The
embed path checks each request against the model (prompt name, ``dimensions``, token lengths)
before queueing it, then post-processes the rows it gets back from the micro-batcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from ..modules import normalize
from .batching import Arrival, MicroBatcher
from .errors import NotReadyError, PayloadTooLargeError, RequestValidationError
from .metrics import ServerMetrics
from .schemas import EmbedJob
from .settings import ServerSettings

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from ..encoder import OnnxSentenceEncoder

__all__ = ["EmbedResult", "ModelHost", "State"]

logger = logging.getLogger(__name__)
PROBE_TEXT = "fastembed-adapter readiness probe"
# Requests with less text than this are tokenized for counting on the event loop; larger ones on a thread.
_INLINE_COUNT_CHARS = 4096


class State(str, Enum):
    """Lifecycle of a replica."""

    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass(frozen=True)
class EmbedResult:
    """Rows for one request (in input order) and the tokens they used (after truncation)."""

    vectors: np.ndarray
    tokens: int


class ModelHost:
    """Owns the encoder and the micro-batcher of one replica."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        encoder_factory: Callable[[], OnnxSentenceEncoder],
    ) -> None:
        """Nothing is loaded until :meth:`start`."""
        self.settings = settings
        self.metrics = metrics
        self.state = State.LOADING
        self.error: str | None = None
        self.encoder: OnnxSentenceEncoder | None = None
        self.on_fatal: Callable[[], None] | None = None  # set by the runner: stop the server when loading fails
        self._factory = encoder_factory
        self._counter: Tokenizer | None = None
        self._load_task: asyncio.Task[None] | None = None
        self.batcher = MicroBatcher(
            max_texts=settings.max_batch_texts,
            max_tokens=settings.max_batch_tokens,
            max_wait=settings.max_batch_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            metrics=metrics,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading the model in the background (returns at once)."""
        self._load_task = asyncio.get_running_loop().create_task(self._load(), name="fea-load-model")

    async def _load(self) -> None:
        try:
            encoder = await self.batcher.run_in_worker(self._factory)
            probe = await self.batcher.run_in_worker(_probe, encoder)
            if probe.shape[0] != 1 or not np.all(np.isfinite(probe)):
                raise RuntimeError(f"the probe encode returned shape {probe.shape} or non-finite values")
        except Exception as exc:
            self.state = State.FAILED
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("model failed to load: %s", self.error)
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.encoder = encoder
        self._counter = _untruncated(encoder)
        self.batcher.start(self._encode)
        if self.state is State.LOADING:
            self.state = State.READY
        logger.info("model ready: %r", encoder)

    def begin_drain(self) -> None:
        """SIGTERM: report 503 on /health so load balancers stop routing here; in-flight work continues."""
        if self.state is not State.FAILED:
            self.state = State.DRAINING

    async def stop(self) -> None:
        """Cancel a pending load and stop the batcher (after the server drained its connections)."""
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await self.batcher.stop()

    def ready_encoder(self) -> OnnxSentenceEncoder:
        """The encoder, or ``NotReadyError`` (503) while loading or after a failed load."""
        if self.encoder is None:
            self.metrics.rejected.labels("not_ready").inc()
            if self.state is State.FAILED:
                raise NotReadyError(f"The model failed to load ({self.error}).", retry_after=30)
            raise NotReadyError("The model is still loading; retry shortly.", retry_after=5)
        return self.encoder

    # -- embedding ---------------------------------------------------------------------------
    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        encoder = self.ready_encoder()
        vectors: np.ndarray = encoder.encode(
            texts, prompt_name=prompt_name, batch_size=self.settings.max_batch_texts, show_progress_bar=False
        )
        return vectors

    def _prompt(self, encoder: OnnxSentenceEncoder, prompt_name: str | None) -> str:
        if prompt_name is None:
            name = encoder.default_prompt_name
            return encoder.prompts.get(name, "") if name is not None else ""
        if prompt_name not in encoder.prompts:
            raise RequestValidationError(
                f"'prompt_name' {prompt_name!r} is not a prompt of this model; valid names: {sorted(encoder.prompts)}."
            )
        return encoder.prompts[prompt_name]

    def _count(self, texts: list[str]) -> list[int]:
        assert self._counter is not None  # set with the encoder
        return [len(enc.ids) for enc in self._counter.encode_batch(texts, add_special_tokens=True)]

    async def _token_lengths(self, texts: list[str], prompt: str) -> list[int]:
        full = [prompt + text for text in texts] if prompt else texts
        if sum(len(text) for text in full) <= _INLINE_COUNT_CHARS:
            return self._count(full)
        return await asyncio.to_thread(self._count, full)

    async def embed(self, job: EmbedJob, arrival: Arrival | None = None) -> EmbedResult:
        """Check ``job`` against the model, queue it (then ``arrival.done()``), and post-process its rows."""
        encoder = self.ready_encoder()
        dimension = encoder.get_sentence_embedding_dimension()
        if job.dimensions is not None and job.dimensions > dimension:
            raise RequestValidationError(
                f"'dimensions' is {job.dimensions} but this model's embeddings have {dimension}; "
                f"ask for 1..{dimension}."
            )
        lengths = await self._token_lengths(job.texts, self._prompt(encoder, job.prompt_name))
        limit = encoder.max_seq_length
        if limit is not None:
            if not job.truncate:
                for index, length in enumerate(lengths):
                    if length > limit:
                        raise PayloadTooLargeError(
                            f"Input {index} has {length} tokens but this model reads at most {limit} "
                            "(max_seq_length). Send truncate=true (/embed), start the server with "
                            "--auto-truncate, or split the text."
                        )
            lengths = [min(length, limit) for length in lengths]
        tokens = sum(lengths)
        vectors = await self.batcher.submit(job.texts, tokens, job.prompt_name, arrival)
        if job.dimensions is not None and job.dimensions < vectors.shape[1]:
            vectors = vectors[:, : job.dimensions]
            if encoder.layout.normalize:  # keep unit length, as the full vectors had
                vectors = normalize(vectors)
        if job.normalize:
            vectors = normalize(vectors)
        return EmbedResult(np.ascontiguousarray(vectors, dtype=np.float32), tokens)


def _probe(encoder: OnnxSentenceEncoder) -> np.ndarray:
    vectors: np.ndarray = encoder.encode([PROBE_TEXT], show_progress_bar=False)
    return vectors


def _untruncated(encoder: OnnxSentenceEncoder) -> Tokenizer:
    """A copy of the encoder's tokenizer without truncation or padding, for counting tokens."""
    from tokenizers import Tokenizer

    counter = Tokenizer.from_str(encoder.tokenizer.tokenizer.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter
