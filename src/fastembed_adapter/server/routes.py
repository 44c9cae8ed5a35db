"""The routes of one replica, all in one table: :data:`ROUTES`.

Every model endpoint is an :class:`Api` (parse the JSON body into a job, run it on the
:class:`~.engine.ModelHost`, render the result), served by the one helper :func:`serve_api`.
Errors are raised, never rendered in a route: the app's exception handlers apply the table in
:mod:`.errors`.

The text-embeddings-inference (TEI) surface of an embedding model (``router/src/http/server.rs``):
``/embed``, ``/embed_all``, ``/similarity``, ``/tokenize``; ``POST /`` and ``POST /invocations``
(SageMaker) as ``/embed``, except that a sentence-similarity body (``inputs`` is an object) is
answered as ``/similarity`` (TEI needs ``TASK=sentence-similarity`` for that;
``huggingface_hub.InferenceClient`` posts both tasks to ``/``); ``GET /`` and ``GET /ping`` as
``/health``; ``/embeddings`` as OpenAI's ``/v1/embeddings``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..colbert import OnnxColbertEncoder
from ..extras import versions
from ..modules import normalize
from .batching import Arrival
from .docs import docs_page
from .engine import EmbedResult, ModelHost, RerankResult, State, TokenizeResult
from .errors import PayloadTooLargeError, error_body
from .openapi import openapi_schema
from .schemas import (
    EmbedJob,
    RerankJob,
    TokenizeJob,
    is_similarity,
    parse_embed_multi,
    parse_json,
    parse_openai,
    parse_rerank,
    parse_similarity,
    parse_tei,
    parse_tei_all,
    parse_tokenize,
)
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..encoder import OnnxSentenceEncoder

__all__ = ["API_PATHS", "PUBLIC_PATHS", "ROUTES", "Api", "error_response", "serve_api"]

_VERSIONED = ("fastembed-adapter", "onnxruntime", "tokenizers", "numpy", "starlette", "uvicorn")


class _Job(Protocol):
    @property
    def texts(self) -> list[str]: ...


class _Result(Protocol):
    @property
    def tokens(self) -> int: ...


JobT = TypeVar("JobT", bound=_Job)
ResultT = TypeVar("ResultT", bound=_Result)


def _any_body(data: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Api(Generic[JobT, ResultT]):
    """One request/response shape of a model endpoint.

    Attributes:
        parse: the JSON body (an object) and the settings → a checked job.
        run: executes the job on the host (``arrival`` is marked done once the job is queued).
        render: the job, its result and the host → the JSON response body.
        accepts: whether a body has this shape, for a route serving several (the last one takes the rest).
    """

    parse: Callable[[dict[str, Any], ServerSettings], JobT]
    run: Callable[[ModelHost, JobT, Arrival | None], Awaitable[ResultT]]
    render: Callable[[JobT, ResultT, ModelHost], Any]
    accepts: Callable[[dict[str, Any]], bool] = _any_body


def _host(request: Request) -> ModelHost:
    host: ModelHost = request.app.state.host
    return host


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size over ``limit`` bytes."""
    too_large = PayloadTooLargeError(
        f"The request body is larger than {limit} bytes (--max-body-bytes); send fewer or shorter texts."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def serve_api(request: Request, apis: tuple[Api[Any, Any], ...]) -> Response:
    """The one model-endpoint helper: read → parse (first ``Api`` accepting the body, else the last) → run → render."""
    host = _host(request)
    host.ready_encoder()  # 503 before reading a body we could not serve
    with host.batcher.arriving() as arrival:  # batches being formed wait for this request
        data = parse_json(await read_body(request, host.settings.max_body_bytes))
        api = next((api for api in apis[:-1] if api.accepts(data)), apis[-1])
        job = api.parse(data, host.settings)
        request.state.texts = len(job.texts)
        result = await api.run(host, job, arrival)
    request.state.tokens = result.tokens
    return JSONResponse(api.render(job, result, host))


# -- response bodies ------------------------------------------------------------------------------


def _render_openai(job: EmbedJob, result: EmbedResult, host: ModelHost) -> dict[str, Any]:
    rows: list[Any]
    vectors = np.asarray(result.vectors)
    if job.encoding_format == "base64":
        little = vectors.astype("<f4", copy=False)
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        rows = vectors.tolist()
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": row} for index, row in enumerate(rows)],
        "model": host.settings.served_name,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }


def _render_vectors(job: EmbedJob, result: EmbedResult, host: ModelHost) -> list[list[float]]:
    """TEI ``/embed``: a list of vectors, also for a single string."""
    rows: list[list[float]] = np.asarray(result.vectors).tolist()
    return rows


def _render_token_vectors(job: EmbedJob, result: EmbedResult, host: ModelHost) -> list[list[list[float]]]:
    """TEI ``/embed_all``: per text, one vector per token."""
    return [np.asarray(tokens).tolist() for tokens in result.vectors]


def _render_similarity(job: EmbedJob, result: EmbedResult, host: ModelHost) -> list[float]:
    """TEI ``/similarity``: the cosine of the source sentence (row 0) with each other sentence."""
    unit = normalize(np.asarray(result.vectors), np.float64)
    cosines = unit[1:] @ unit[0]
    scores: list[float] = cosines.astype(np.float32).tolist()
    return scores


def _render_tokens(job: TokenizeJob, result: TokenizeResult, host: ModelHost) -> list[list[dict[str, Any]]]:
    """TEI ``/tokenize``: per text a list of ``{id, text, special, start, stop}``."""
    return [
        [{"id": t.id, "text": t.text, "special": t.special, "start": t.start, "stop": t.stop} for t in row]
        for row in result.rows
    ]


def _render_multi(job: EmbedJob, result: EmbedResult, host: ModelHost) -> list[dict[str, Any]]:
    """``/embed_multi``: per text its token vectors (JSON numbers, or base64 little-endian float32) and shape."""
    rows = []
    for index, tokens in enumerate(result.vectors):
        array = np.asarray(tokens, dtype="<f4")
        embedding: Any = (
            base64.b64encode(array.tobytes()).decode("ascii") if job.encoding_format == "base64" else array.tolist()
        )
        rows.append({"index": index, "shape": list(array.shape), "embedding": embedding})
    return rows


def _render_rerank(job: RerankJob, result: RerankResult, host: ModelHost) -> list[dict[str, Any]]:
    """TEI ``/rerank``: ``[{index, score(, text)}]``, best first."""
    return [
        {"index": index, "score": score, **({"text": job.texts[index]} if job.return_text else {})}
        for index, score in result.ranked
    ]


OPENAI: Api[EmbedJob, EmbedResult] = Api(parse_openai, ModelHost.embed, _render_openai)
EMBED_MULTI: Api[EmbedJob, EmbedResult] = Api(parse_embed_multi, ModelHost.embed, _render_multi)
TEI_RERANK: Api[RerankJob, RerankResult] = Api(parse_rerank, ModelHost.rerank, _render_rerank)
TEI_EMBED: Api[EmbedJob, EmbedResult] = Api(parse_tei, ModelHost.embed, _render_vectors)
TEI_EMBED_ALL: Api[EmbedJob, EmbedResult] = Api(parse_tei_all, ModelHost.embed, _render_token_vectors)
TEI_SIMILARITY: Api[EmbedJob, EmbedResult] = Api(parse_similarity, ModelHost.embed, _render_similarity, is_similarity)
TEI_TOKENIZE: Api[TokenizeJob, TokenizeResult] = Api(parse_tokenize, ModelHost.tokenize, _render_tokens)


# -- the other routes -------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """``GET /health`` (TEI: also ``GET /`` and ``/ping``): 200 once loaded and probed; 503 loading or draining."""
    host = _host(request)
    body: dict[str, Any] = {"status": host.state.value}
    if host.state is State.READY:
        return JSONResponse(body)
    if host.error:
        body["error"] = host.error
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _model_info(encoder: OnnxSentenceEncoder | OnnxColbertEncoder) -> dict[str, Any]:
    """What ``/info`` says of the model: sentence embeddings (pooling, normalize) or ColBERT settings."""
    if isinstance(encoder, OnnxColbertEncoder):
        layout = encoder.layout
        return {
            "kind": "colbert",
            "dimension": encoder.get_embedding_dimension(),
            "max_seq_length": layout.document_length,
            "colbert": encoder.onnx_config(),
        }
    return {
        "kind": "dense",
        "dimension": encoder.get_sentence_embedding_dimension(),
        "max_seq_length": encoder.max_seq_length,
        "pooling": [mode.value for mode in encoder.layout.pooling.modes],
        "normalize": encoder.layout.normalize,
    }


async def info(request: Request) -> Response:
    """``GET /info``: the model, its dimension and limits, the quantization and library versions."""
    host = _host(request)
    encoder = host.ready_encoder()
    manifest = encoder.layout.manifest
    int8 = "int8" in encoder.file_name
    settings = host.settings
    return JSONResponse(
        {
            "model": settings.served_name,
            "model_path": str(encoder.model_path),
            "file": encoder.file_name,
            **_model_info(encoder),
            "quantization": {
                "dtype": "int8" if int8 else "float32",
                "target": manifest.target if manifest is not None and int8 else None,
                "recipe": manifest.recipe if manifest is not None and int8 else None,
            },
            "prompts": sorted(name for name, text in encoder.prompts.items() if text),
            "default_prompt_name": encoder.default_prompt_name,
            "threads": encoder.session.threads,
            "limits": {
                "max_inputs": settings.max_inputs,
                "max_body_bytes": settings.max_body_bytes,
                "max_batch_texts": settings.max_batch_texts,
                "max_batch_tokens": settings.max_batch_tokens,
                "max_batch_wait_ms": settings.max_batch_wait_ms,
                "max_queue": settings.max_queue,
                "auto_truncate": settings.auto_truncate,
            },
            "versions": versions(_VERSIONED),
        }
    )


async def models(request: Request) -> Response:
    """``GET /v1/models``: the one model this replica serves, in OpenAI's list shape."""
    name = _host(request).settings.served_name
    card = {"id": name, "object": "model", "created": 0, "owned_by": "local"}
    return JSONResponse({"object": "list", "data": [card]})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format (service and encoder collectors)."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


async def error_response(request: Request, exc: Exception) -> Response:
    """Exception handler: the error → status table applied to ``exc``, as JSON."""
    request_id = getattr(request.state, "request_id", None)
    status, body, headers = error_body(exc, request_id)
    if status == 405:  # a 405 must name the allowed methods: all the path's routes', not the first one's
        allowed = {method for route in ROUTES if route.path == request.url.path for method in route.methods or ()}
        headers["Allow"] = ", ".join(sorted(allowed))
    request.state.error = type(exc).__name__
    return JSONResponse(body, status_code=status, headers=headers)


def _post(path: str, *apis: Api[Any, Any]) -> Route:
    """``POST path`` served by :func:`serve_api` with ``apis``."""
    name = path.strip("/").replace("/", "_") or "root"
    return Route(path, functools.partial(serve_api, apis=apis), methods=["POST"], name=f"post_{name}")


ROUTES = [
    _post("/v1/embeddings", OPENAI),
    _post("/embeddings", OPENAI),
    _post("/embed", TEI_EMBED),
    _post("/embed_all", TEI_EMBED_ALL),
    _post("/similarity", TEI_SIMILARITY),
    _post("/tokenize", TEI_TOKENIZE),
    _post("/embed_multi", EMBED_MULTI),
    _post("/rerank", TEI_RERANK),
    _post("/", TEI_SIMILARITY, TEI_EMBED),
    _post("/invocations", TEI_SIMILARITY, TEI_EMBED),
    Route("/health", health, methods=["GET"]),
    Route("/", health, methods=["GET"]),
    Route("/ping", health, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_schema, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]
# The metrics' ``endpoint`` label takes these values (anything else is ``other``).
API_PATHS = frozenset(route.path for route in ROUTES)
# GET (and HEAD) of these need no API key: the health checks and the API docs.
PUBLIC_PATHS = frozenset({"/health", "/", "/ping", "/openapi.json", "/docs"})
