"""The routes of one replica.

Both embedding endpoints share one helper (read → parse → embed → render). Errors are raised,
never rendered in a route: the app's exception handlers apply the table in :mod:`.errors`.
"""

from __future__ import annotations

import base64
import platform
from collections.abc import Callable
from importlib import metadata
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .engine import EmbedResult, ModelHost, State
from .errors import PayloadTooLargeError, error_body
from .schemas import EmbedJob, parse_openai, parse_tei
from .settings import ServerSettings

__all__ = ["ROUTES", "error_response"]

_VERSIONED = ("fastembed-adapter", "onnxruntime", "tokenizers", "numpy", "starlette", "uvicorn")
Parser = Callable[[bytes, ServerSettings], EmbedJob]
Renderer = Callable[[EmbedJob, EmbedResult, ModelHost], Any]


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


async def _embed_route(request: Request, parse: Parser, render: Renderer) -> Response:
    host = _host(request)
    host.ready_encoder()  # 503 before reading a body we could not serve
    with host.batcher.arriving() as arrival:  # batches being formed wait for this request
        job = parse(await read_body(request, host.settings.max_body_bytes), host.settings)
        request.state.texts = len(job.texts)
        result = await host.embed(job, arrival)
    request.state.tokens = result.tokens
    return JSONResponse(render(job, result, host))


def _render_openai(job: EmbedJob, result: EmbedResult, host: ModelHost) -> dict[str, Any]:
    rows: list[Any]
    if job.encoding_format == "base64":
        little = result.vectors.astype("<f4", copy=False)
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        rows = result.vectors.tolist()
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": row} for index, row in enumerate(rows)],
        "model": host.settings.served_name,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }


def _render_tei(job: EmbedJob, result: EmbedResult, host: ModelHost) -> list[list[float]]:
    rows: list[list[float]] = result.vectors.tolist()
    return rows


async def openai_embeddings(request: Request) -> Response:
    """``POST /v1/embeddings``: OpenAI's embeddings API."""
    return await _embed_route(request, parse_openai, _render_openai)


async def tei_embed(request: Request) -> Response:
    """``POST /embed``: text-embeddings-inference's embed API (a list of vectors)."""
    return await _embed_route(request, parse_tei, _render_tei)


async def health(request: Request) -> Response:
    """``GET /health``: 200 once the model is loaded and a probe encode succeeded; 503 while loading or draining."""
    host = _host(request)
    body: dict[str, Any] = {"status": host.state.value}
    if host.state is State.READY:
        return JSONResponse(body)
    if host.error:
        body["error"] = host.error
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


async def info(request: Request) -> Response:
    """``GET /info``: the model, its dimension and limits, the quantization and library versions."""
    host = _host(request)
    encoder = host.ready_encoder()
    manifest = encoder.layout.manifest.data if encoder.layout.manifest is not None else {}
    int8 = "int8" in encoder.file_name
    settings = host.settings
    return JSONResponse(
        {
            "model": settings.served_name,
            "model_path": str(encoder.model_path),
            "file": encoder.file_name,
            "dimension": encoder.get_sentence_embedding_dimension(),
            "max_seq_length": encoder.max_seq_length,
            "quantization": {
                "dtype": "int8" if int8 else "float32",
                "target": manifest.get("target") if int8 else None,
                "recipe": manifest.get("recipe") if int8 else None,
            },
            "pooling": [mode.value for mode in encoder.layout.pooling.modes],
            "normalize": encoder.layout.normalize,
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
            "versions": _versions(),
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
    request.state.error = type(exc).__name__
    return JSONResponse(body, status_code=status, headers=headers)


ROUTES = [
    Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
    Route("/embed", tei_embed, methods=["POST"]),
    Route("/health", health, methods=["GET"]),
    Route("/info", info, methods=["GET"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
