"""``ModelHost``: the replica's one encoder, its lifecycle (loading → ready → draining), embed and tokenize.

The model is loaded on the worker thread after the server starts listening, so ``/health`` can
answer 503 while it loads; a probe encode must succeed before the state becomes ``ready``. The
embed path checks each request against the model (prompt name, ``dimensions``, token lengths)
before queueing it, then post-processes the rows it gets back from the micro-batcher. Tokenizing
needs no model call, so it runs on the event loop (or a thread for large requests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..colbert import OnnxColbertEncoder
from ..late_interaction import colbert_scores
from ..modules import normalize
from .batching import Arrival, MicroBatcher, Rows
from .errors import ModelKindError, NotReadyError, PayloadTooLargeError, RequestValidationError
from .metrics import ServerMetrics
from .outputs import BatchKey, Outputs, Token, tei_tokens
from .schemas import EmbedJob, Output, RerankJob, TokenizeJob
from .settings import ServerSettings

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ..encoder import OnnxSentenceEncoder

__all__ = ["EmbedResult", "ModelHost", "RerankResult", "State", "TokenizeResult"]


logger = logging.getLogger(__name__)
PROBE_TEXT = "fastembed-adapter readiness probe"
# Requests with less text than this are tokenized for counting on the event loop; larger ones on a thread.
_INLINE_COUNT_CHARS = 4096
T = TypeVar("T")


class State(str, Enum):
    """Lifecycle of a replica."""

    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass(frozen=True)
class EmbedResult:
    """Rows for one request (in input order) and the tokens they used (after truncation).

    ``vectors`` is a float32 array ``(texts, dim)``, or for ``Output.TOKENS`` a list with one
    ``(tokens, hidden)`` array per text.
    """

    vectors: np.ndarray | list[np.ndarray]
    tokens: int


@dataclass(frozen=True)
class RerankResult:
    """``(index, score)`` of each text, best first, and the tokens the query and texts used."""

    ranked: list[tuple[int, float]]
    tokens: int


@dataclass(frozen=True)
class TokenizeResult:
    """Per text its tokens (TEI's ``/tokenize`` rows) and the total token count."""

    rows: list[list[Token]]
    tokens: int


class ModelHost:
    """Owns the encoder and the micro-batcher of one replica."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        encoder_factory: Callable[[], OnnxSentenceEncoder | OnnxColbertEncoder],
    ) -> None:
        """Nothing is loaded until :meth:`start`."""
        self.settings = settings
        self.metrics = metrics
        self.state = State.LOADING
        self.error: str | None = None
        self.encoder: OnnxSentenceEncoder | OnnxColbertEncoder | None = None
        self.on_fatal: Callable[[], None] | None = None  # set by the runner: stop the server when loading fails
        self._factory = encoder_factory
        self._outputs: Outputs | None = None
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
        self._outputs = Outputs(encoder, self.settings.max_batch_texts)
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

    def ready_encoder(self) -> OnnxSentenceEncoder | OnnxColbertEncoder:
        """The encoder, or ``NotReadyError`` (503) while loading or after a failed load."""
        if self.encoder is None:
            self.metrics.rejected.labels("not_ready").inc()
            if self.state is State.FAILED:
                raise NotReadyError(f"The model failed to load ({self.error}).", retry_after=30)
            raise NotReadyError("The model is still loading; retry shortly.", retry_after=5)
        return self.encoder

    def dense_encoder(self) -> OnnxSentenceEncoder:
        """The sentence encoder, or ``ModelKindError`` (400) on a ColBERT model."""
        encoder = self.ready_encoder()
        if isinstance(encoder, OnnxColbertEncoder):
            raise ModelKindError(
                "This server runs a ColBERT (multi-vector) model: it has no sentence embeddings. "
                "POST /embed_multi for token vectors or /rerank to score texts against a query."
            )
        return encoder

    def colbert_encoder(self) -> OnnxColbertEncoder:
        """The ColBERT encoder, or ``ModelKindError`` (400) on a sentence-embedding model."""
        encoder = self.ready_encoder()
        if not isinstance(encoder, OnnxColbertEncoder):
            raise ModelKindError(
                "This server runs a sentence-embedding model; /embed_multi and /rerank need a ColBERT model. "
                "POST /embed, /embed_all or /v1/embeddings instead."
            )
        return encoder

    # -- embedding ---------------------------------------------------------------------------
    def _encode(self, texts: list[str], key: Hashable) -> Rows:
        if self._outputs is None or not isinstance(key, BatchKey):
            raise TypeError(f"no encoder yet, or batch key {key!r} is not a BatchKey")
        return self._outputs.compute(texts, key)

    @staticmethod
    async def _off_loop(texts: list[str], fn: Callable[[list[str]], T]) -> T:
        """``fn(texts)`` on the event loop for small requests, else on a thread (tokenizing blocks)."""
        if sum(len(text) for text in texts) <= _INLINE_COUNT_CHARS:
            return fn(texts)
        return await asyncio.to_thread(fn, texts)

    async def _token_lengths(
        self, encoder: OnnxSentenceEncoder, texts: list[str], prompt_name: str | None
    ) -> list[int]:
        """Untruncated token counts (prompt in), for the truncation check and the usage figures."""
        return await self._off_loop(texts, lambda chunk: encoder.count_tokens(chunk, prompt_name=prompt_name))

    async def tokenize(self, job: TokenizeJob, arrival: Arrival | None = None) -> TokenizeResult:
        """TEI's ``/tokenize``: the tokens of each text with the prompt prepended, untruncated (as TEI)."""
        if arrival is not None:
            arrival.done()  # never queued: batches being formed need not wait for it
        encoder = self.dense_encoder()
        prompt = encoder.resolve_prompt(prompt_name=job.prompt_name) or ""

        def listing(texts: list[str]) -> list[list[Token]]:
            encodings = encoder.token_encodings(texts, prompt=prompt, add_special_tokens=job.add_special_tokens)
            return [tei_tokens(encoding, prompt + text) for encoding, text in zip(encodings, texts, strict=True)]

        rows = await self._off_loop(job.texts, listing)
        return TokenizeResult(rows, sum(len(row) for row in rows))

    async def embed(self, job: EmbedJob, arrival: Arrival | None = None) -> EmbedResult:
        """Check ``job`` against the model, queue it (then ``arrival.done()``), and post-process its rows.

        ``Output.SENTENCE`` rows are what ``encode()`` returns; cut to ``dimensions``, they are
        re-normalised when the model normalises (so they stay unit vectors). ``Output.UNNORMALIZED``
        rows (TEI's ``normalize: false``) are cut without re-normalising. ``job.normalize`` then
        L2-normalises either. ``Output.TOKENS`` rows are returned as computed.
        """
        if job.output.multi_vector:
            return await self._embed_multi(job, arrival)
        encoder = self.dense_encoder()
        dimension = encoder.get_sentence_embedding_dimension()
        if job.dimensions is not None and job.dimensions > dimension:
            raise RequestValidationError(
                f"'dimensions' is {job.dimensions} but this model's embeddings have {dimension}; "
                f"ask for 1..{dimension}."
            )
        lengths = await self._token_lengths(encoder, job.texts, job.prompt_name)
        limit = encoder.max_seq_length
        if limit is not None:
            if not job.truncate:
                for index, length in enumerate(lengths):
                    if length > limit:
                        raise PayloadTooLargeError(
                            f"Input {index} has {length} tokens but this model reads at most {limit} "
                            "(max_seq_length) and truncation is off for this request. Send truncate=true "
                            "(TEI routes), or leave it out on a server started without --no-auto-truncate, "
                            "or split the text."
                        )
            lengths = [min(length, limit) for length in lengths]
        tokens = sum(lengths)
        output = job.output
        if output is Output.UNNORMALIZED and self._outputs is not None and not self._outputs.unnormalizing:
            output = Output.SENTENCE  # no final Normalize to leave out: share the cached encode() path
        rows = await self.batcher.submit(job.texts, tokens, BatchKey(job.prompt_name, output), arrival)
        if job.output is Output.TOKENS:
            return EmbedResult(list(rows), tokens)
        vectors = np.asarray(rows, dtype=np.float32)
        if job.dimensions is not None and job.dimensions < vectors.shape[1]:
            vectors = vectors[:, : job.dimensions]
            if job.output is Output.SENTENCE and encoder.layout.normalize:  # unit length, as the full vectors
                vectors = normalize(vectors)
        if job.normalize:
            vectors = normalize(vectors)
        return EmbedResult(np.ascontiguousarray(vectors, dtype=np.float32), tokens)

    # -- ColBERT ------------------------------------------------------------------------------------
    async def _colbert_lengths(
        self, encoder: OnnxColbertEncoder, texts: list[str], is_query: bool, prompt_name: str | None, truncate: bool
    ) -> int:
        """Tokens ``texts`` are read with (after truncation); 413 for a long text when truncation is off."""
        counts = await self._off_loop(texts, lambda chunk: encoder.count_tokens(chunk, is_query, prompt_name))
        limit = encoder.token_limit(is_query)
        if not truncate:
            for index, count in enumerate(counts):
                if count > limit:
                    name = "query_length" if is_query else "document_length"
                    raise PayloadTooLargeError(
                        f"Input {index} has {count} tokens but this model reads at most {limit} ({name}) and "
                        "truncation is off for this request. Send truncate=true or split the text."
                    )
        return sum(min(count, limit) for count in counts)

    async def _embed_multi(self, job: EmbedJob, arrival: Arrival | None) -> EmbedResult:
        encoder = self.colbert_encoder()
        is_query = job.output is Output.QUERY_TOKENS
        tokens = await self._colbert_lengths(encoder, job.texts, is_query, job.prompt_name, job.truncate)
        rows = await self.batcher.submit(job.texts, tokens, BatchKey(job.prompt_name, job.output), arrival)
        return EmbedResult([np.ascontiguousarray(row, dtype=np.float32) for row in rows], tokens)

    async def rerank(self, job: RerankJob, arrival: Arrival | None = None) -> RerankResult:
        """TEI's ``/rerank`` on a ColBERT model: each text's MaxSim score against the query, best first."""
        encoder = self.colbert_encoder()
        query_tokens = await self._colbert_lengths(encoder, [job.query], True, None, job.truncate)
        document_tokens = await self._colbert_lengths(encoder, job.texts, False, None, job.truncate)
        tokens = query_tokens + document_tokens
        query, documents = await asyncio.gather(
            self.batcher.submit([job.query], query_tokens, BatchKey(None, Output.QUERY_TOKENS)),
            self.batcher.submit(job.texts, document_tokens, BatchKey(None, Output.DOCUMENT_TOKENS), arrival),
        )
        scores = colbert_scores([np.asarray(query[0])], list(documents))[0].astype(np.float64)
        if not job.raw_scores:
            scores = scores / max(len(query[0]), 1)
        order = np.argsort(-scores, kind="stable")
        return RerankResult([(int(index), float(scores[index])) for index in order], tokens)


def _probe(encoder: OnnxSentenceEncoder | OnnxColbertEncoder) -> np.ndarray:
    if isinstance(encoder, OnnxColbertEncoder):
        rows = encoder.encode([PROBE_TEXT], is_query=False, show_progress_bar=False)
        return np.asarray(rows[0], dtype=np.float32).reshape(1, -1)
    vectors: np.ndarray = encoder.encode([PROBE_TEXT], show_progress_bar=False)
    return vectors
