"""The service's OpenAPI 3.1 document, :data:`OPENAPI`, served at ``GET /openapi.json``.

Plain data, built once at import: every route of :data:`.routes.ROUTES` with the request body
:mod:`.schemas` accepts and the responses the server sends, every error body one ``Error``
component (:mod:`.errors`). It follows the parsers, not the other way round: a field the server
treats as absent when ``null`` is nullable, unknown fields are ignored (objects stay open), and
what the schema cannot say (``--max-inputs``, a model's token limit, its prompt names) is a
documented 413 or 422. ``tests/test_server_openapi.py`` fuzzes a live server against it with
schemathesis. When ``FEA_API_KEY`` is set, every operation but the public ones needs the
``bearerAuth`` scheme.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import __version__

__all__ = ["OPENAPI", "openapi_schema"]

Schema = dict[str, Any]


def _schema(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _nullable(kind: str, description: str, **keywords: Any) -> Schema:
    """A field the server treats as left out when it is ``null``."""
    return {"type": [kind, "null"], "description": description, **keywords}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), description: str = "") -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def _record(properties: dict[str, Schema], *optional: str, description: str = "") -> Schema:
    """A response object: every property is always there, but the ``optional`` ones."""
    return _object(properties, tuple(name for name in properties if name not in optional), description)


def _array(items: Schema, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items:
        schema["minItems"] = min_items
    return schema


def _body(description: str, schema: Schema, media_type: str = "application/json", *headers: str) -> Schema:
    """A response of ``media_type`` carrying ``X-Request-ID`` and ``headers`` (names of header components)."""
    return {
        "description": description,
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *headers)},
        "content": {media_type: {"schema": schema}},
    }


def _error(description: str, *headers: str) -> Schema:
    return _body(description, _schema("Error"), "application/json", *headers)


TEXT: Schema = {"type": "string", "minLength": 1}
INT: Schema = {"type": "integer", "minimum": 0}
EMBEDDING: Schema = _array({"type": "number"}, 1)
BASE64: Schema = {
    "type": "string",
    "contentEncoding": "base64",
    "description": "The float32 values as little-endian bytes, base64-encoded.",
}

# -- request fields shared by several bodies ------------------------------------------------------
PROMPT_NAME = _nullable(
    "string", "A prompt of the model's config to prepend (default: its default prompt); an unknown name is 422."
)
TRUNCATE = _nullable(
    "boolean",
    "Truncate texts over the model's token limit instead of answering 413 (default: the server's "
    "`--auto-truncate`, on).",
)
TRUNCATION_DIRECTION = _nullable(
    "string", "Only `Right` (in any case) is supported; anything else is 422.", pattern="^[Rr][Ii][Gg][Hh][Tt]$"
)
DIMENSIONS = _nullable(
    "integer",
    "Keep the first N values (Matryoshka), re-normalised when the model normalises; more than the "
    "model's dimension is 422 (a whole number written `1.0` counts as 1).",
    minimum=1,
)
ENCODING_FORMAT: Schema = {
    "type": ["string", "null"],
    "enum": ["float", "base64", None],
    "description": "`float` (JSON numbers, the default) or `base64` (little-endian float32 bytes).",
}

REQUESTS: dict[str, Schema] = {
    "Texts": {
        "description": (
            "One text or a list of texts, none empty; more than `--max-inputs` texts is 413. Token-id "
            "arrays are refused (422): they are ids of another tokenizer."
        ),
        "oneOf": [TEXT, _array(TEXT, 1)],
    },
    "EmbeddingsRequest": _object(
        {
            "input": _schema("Texts"),
            "model": _nullable("string", "Any name: a replica serves one model."),
            "encoding_format": ENCODING_FORMAT,
            "dimensions": DIMENSIONS,
            "user": _nullable("string", "Accepted and ignored."),
        },
        ("input",),
        "OpenAI's embeddings request. Texts are truncated as the server's `--auto-truncate` says.",
    ),
    "EmbedRequest": _object(
        {
            "inputs": _schema("Texts"),
            "normalize": _nullable(
                "boolean",
                "L2-normalise (default true); false returns the vector before the model's final Normalize, as TEI.",
            ),
            "truncate": TRUNCATE,
            "truncation_direction": TRUNCATION_DIRECTION,
            "prompt_name": PROMPT_NAME,
            "dimensions": DIMENSIONS,
        },
        ("inputs",),
        "text-embeddings-inference's `/embed` request.",
    ),
    "EmbedAllRequest": _object(
        {
            "inputs": _schema("Texts"),
            "truncate": TRUNCATE,
            "truncation_direction": TRUNCATION_DIRECTION,
            "prompt_name": PROMPT_NAME,
        },
        ("inputs",),
        "text-embeddings-inference's `/embed_all` request.",
    ),
    "SimilarityRequest": _object(
        {
            "inputs": _object(
                {"source_sentence": TEXT, "sentences": _array(TEXT, 1)},
                ("source_sentence", "sentences"),
                "The sentence to compare and the sentences to compare it with.",
            ),
            "parameters": {
                **_object(
                    {"truncate": TRUNCATE, "truncation_direction": TRUNCATION_DIRECTION, "prompt_name": PROMPT_NAME}
                ),
                "type": ["object", "null"],
            },
        },
        ("inputs",),
        "text-embeddings-inference's `/similarity` request.",
    ),
    "TokenizeRequest": _object(
        {
            "inputs": _schema("Texts"),
            "add_special_tokens": _nullable(
                "boolean", "Add the model's special tokens (default true), as encoding does."
            ),
            "prompt_name": PROMPT_NAME,
        },
        ("inputs",),
        "text-embeddings-inference's `/tokenize` request.",
    ),
    "EmbedMultiRequest": _object(
        {
            "inputs": _schema("Texts"),
            "is_query": _nullable("boolean", "Encode as queries (default false: documents)."),
            "prompt_name": PROMPT_NAME,
            "truncate": TRUNCATE,
            "truncation_direction": TRUNCATION_DIRECTION,
            "encoding_format": ENCODING_FORMAT,
        },
        ("inputs",),
        "A ColBERT model's token vectors of each text.",
    ),
    "RerankRequest": _object(
        {
            "query": TEXT,
            "texts": _schema("Texts"),
            "raw_scores": _nullable("boolean", "Return the MaxSim sum (default false: divided by the query's tokens)."),
            "return_text": _nullable("boolean", "Echo each text in its result (default false)."),
            "truncate": _nullable("boolean", "Truncate texts over the model's lengths (default true) instead of 413."),
            "truncation_direction": TRUNCATION_DIRECTION,
        },
        ("query", "texts"),
        "text-embeddings-inference's `/rerank` request, scored by a ColBERT model's MaxSim.",
    ),
}

RESPONSES: dict[str, Schema] = {
    "Error": _record(
        {
            "error": _record(
                {
                    "message": {"type": "string", "description": "What was wrong and how to fix it."},
                    "type": {"type": "string", "description": "The error kind, e.g. `invalid_request`."},
                    "code": {"type": "integer", "description": "The HTTP status."},
                }
            ),
            "request_id": {
                "type": "string",
                "description": "The request's `X-Request-ID` (absent when the connection was refused or timed out).",
            },
        },
        "request_id",
        description="Every error body: OpenAI's shape, so OpenAI clients raise their usual exceptions.",
    ),
    "EmbeddingsResponse": _record(
        {
            "object": {"const": "list"},
            "data": _array(
                _record({"object": {"const": "embedding"}, "index": INT, "embedding": {"oneOf": [EMBEDDING, BASE64]}}),
                1,
            ),
            "model": {"type": "string", "description": "The served model's id."},
            "usage": _record({"prompt_tokens": INT, "total_tokens": INT}, description="Tokens read."),
        }
    ),
    "Vectors": {**_array(EMBEDDING, 1), "description": "One vector per input, also for a single string."},
    "TokenVectors": {
        **_array(_array(EMBEDDING), 1),
        "description": "Per input, one vector per token (special and prompt tokens included, no padding).",
    },
    "Similarities": {**_array({"type": "number"}, 1), "description": "The cosine of the source with each sentence."},
    "Tokens": {
        **_array(
            _array(
                _record(
                    {
                        "id": INT,
                        "text": {"type": "string"},
                        "special": {"type": "boolean"},
                        "start": {"type": ["integer", "null"], "minimum": 0},
                        "stop": {"type": ["integer", "null"], "minimum": 0},
                    }
                )
            ),
            1,
        ),
        "description": "Per input its tokens; `start`/`stop` are UTF-8 byte offsets (null for special tokens).",
    },
    "MultiVectors": _array(
        _record(
            {
                "index": INT,
                "shape": {**_array(INT), "minItems": 2, "maxItems": 2, "description": "(tokens, dimension)"},
                "embedding": {"oneOf": [_array(EMBEDDING), BASE64]},
            }
        ),
        1,
    ),
    "Ranked": {
        **_array(_record({"index": INT, "score": {"type": "number"}, "text": {"type": "string"}}, "text"), 1),
        "description": "Each text's index and score, best first (`text` when `return_text` is true).",
    },
    "Health": _record(
        {
            "status": {"enum": ["ready", "loading", "draining", "failed"]},
            "error": {"type": "string", "description": "Why loading failed."},
        },
        "error",
    ),
    "Info": _record(
        {
            "model": {"type": "string"},
            "model_path": {"type": "string"},
            "file": {"type": "string", "description": "The ONNX file in use."},
            "kind": {"enum": ["dense", "colbert"]},
            "dimension": INT,
            "max_seq_length": {"type": ["integer", "null"]},
            "pooling": _array({"type": "string"}),
            "normalize": {"type": "boolean"},
            "colbert": {"type": "object", "description": "The ColBERT settings (next-plaid's `onnx_config.json`)."},
            "quantization": _record(
                {
                    "dtype": {"enum": ["int8", "float32"]},
                    "target": {"type": ["string", "null"]},
                    "recipe": {"type": ["string", "null"]},
                }
            ),
            "prompts": _array({"type": "string"}),
            "default_prompt_name": {"type": ["string", "null"]},
            "threads": INT,
            "limits": _record(
                {
                    "max_inputs": INT,
                    "max_body_bytes": INT,
                    "max_batch_texts": INT,
                    "max_batch_tokens": INT,
                    "max_batch_wait_ms": {"type": "number"},
                    "max_queue": INT,
                    "auto_truncate": {"type": "boolean"},
                }
            ),
            "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "pooling",
        "normalize",
        "colbert",
        description="`pooling` and `normalize` for a dense model, `colbert` for a ColBERT one.",
    ),
    "Models": _record(
        {
            "object": {"const": "list"},
            "data": _array(
                _record(
                    {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "created": INT,
                        "owned_by": {"type": "string"},
                    }
                ),
                1,
            ),
        }
    ),
}

ERRORS: dict[str, Schema] = {
    "WrongModelKind": _error(
        "`wrong_model_kind`: a dense route on a ColBERT model, or `/embed_multi`/`/rerank` on a dense one."
    ),
    "Unauthorized": _error(
        "`unauthorized`: `FEA_API_KEY` is set and `Authorization: Bearer <key>` is missing or wrong.",
        "WWW-Authenticate",
    ),
    "RequestTimeout": _error(
        "`request_timeout`: the headers took over `--header-timeout` or the body over `--body-timeout`."
    ),
    "PayloadTooLarge": _error(
        "`payload_too_large`: more than `--max-inputs` texts, a body over `--max-body-bytes`, or a text over "
        "the model's token limit with truncation off."
    ),
    "InvalidRequest": _error(
        "`invalid_request`: not JSON or not an object, nested deeper than 32 levels, wrong field types, empty "
        "input, a lone surrogate, an unknown `prompt_name`, `dimensions` over the model's."
    ),
    "Overloaded": _error("`overloaded`: `--max-queue` requests are already queued or running.", "Retry-After"),
    "Unavailable": _error(
        "`not_ready` / `model_unavailable`: the model is loading or failed to load; `overloaded`: a connection "
        "beyond `--max-connections`.",
        "Retry-After",
    ),
    "InternalError": _error(
        "`inference_error` / `internal_error`: ONNX Runtime failed on a batch, or a bug (see the service log)."
    ),
}

HEADERS: dict[str, Schema] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` when it is a sane token, else a new one.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
}

REQUEST_ID: Schema = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Echoed in the response and the access log when it is 1-128 of `[A-Za-z0-9._:-]`.",
    "schema": {"type": "string"},
}

# Any request may meet these: the slow-client deadlines, the connection cap (or a model not ready), a bug.
_ANY = {"408": _response("RequestTimeout"), "500": _response("InternalError"), "503": _response("Unavailable")}
# A model endpoint's refusals, besides those (429: only requests queued for the model).
_MODEL = {"400": _response("WrongModelKind"), "413": _response("PayloadTooLarge"), "422": _response("InvalidRequest")}


def _operation(method: str, path: str, tag: str, summary: str, ok: Schema, public: bool = False) -> Schema:
    """One operation answering ``ok`` (200) or an error; ``public`` ones need no API key."""
    slug = path.strip("/").replace("/", "_").replace(".", "_") or "root"
    operation: Schema = {
        "operationId": f"{method}_{slug}",
        "tags": [tag],
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/X-Request-ID"}],
        "responses": {"200": ok, **({} if public else {"401": _response("Unauthorized")}), **_ANY},
    }
    if public:
        operation["security"] = []
    return operation


def _post(path: str, tag: str, summary: str, body: Schema, ok: Schema, queued: bool = True) -> Schema:
    """A model endpoint: a JSON ``body`` in; ``ok``, or one of the errors of :mod:`.errors`, out."""
    operation = _operation("post", path, tag, summary, _body("The result.", ok))
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    refusals = {**_MODEL, **({"429": _response("Overloaded")} if queued else {})}
    operation["responses"] = dict(sorted({**operation["responses"], **refusals}.items()))
    return operation


def _get(path: str, summary: str, ok: Schema, tag: str = "Service", public: bool = False) -> Schema:
    return _operation("get", path, tag, summary, ok, public)


def _health(path: str) -> Schema:
    ready = _body("Ready.", _schema("Health"))
    operation = _get(path, "Readiness: 200 once the model is loaded and probed.", ready, public=True)
    operation["responses"]["503"] = _body(
        "Loading, draining or failed (`Retry-After: 5`); or the connection cap (an `Error` body).",
        {"oneOf": [_schema("Health"), _schema("Error")]},
        "application/json",
        "Retry-After",
    )
    return operation


def _root(path: str) -> Schema:
    """``POST /`` and ``/invocations`` (SageMaker): ``/similarity`` when ``inputs`` is an object, else ``/embed``."""
    return _post(
        path,
        "TEI",
        "As `/similarity` when `inputs` is an object, else as `/embed`.",
        {"oneOf": [_schema("SimilarityRequest"), _schema("EmbedRequest")]},
        {"oneOf": [_schema("Similarities"), _schema("Vectors")]},
    )


def _document(description: str, media_type: str) -> Schema:
    return _body(description, {"type": "object" if media_type == "application/json" else "string"}, media_type)


# (path, tag, summary, request body, answer) of the endpoints served by ``serve_api`` with one shape.
_MODEL_ROUTES = (
    ("/v1/embeddings", "OpenAI", "Embeddings, OpenAI's shape.", "EmbeddingsRequest", "EmbeddingsResponse"),
    ("/embeddings", "OpenAI", "Alias of `/v1/embeddings`.", "EmbeddingsRequest", "EmbeddingsResponse"),
    ("/embed", "TEI", "Sentence embeddings.", "EmbedRequest", "Vectors"),
    ("/embed_all", "TEI", "Per-token embeddings.", "EmbedAllRequest", "TokenVectors"),
    ("/similarity", "TEI", "Cosine similarities of one sentence with others.", "SimilarityRequest", "Similarities"),
    ("/tokenize", "TEI", "Tokens with byte offsets (never truncated, never queued).", "TokenizeRequest", "Tokens"),
    ("/embed_multi", "ColBERT", "Token vectors of a ColBERT model.", "EmbedMultiRequest", "MultiVectors"),
    ("/rerank", "ColBERT", "Texts ranked against a query (MaxSim).", "RerankRequest", "Ranked"),
)

OPENAPI: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "fastembed-adapter",
        "version": __version__,
        "summary": "Sentence embeddings from an ONNX model: OpenAI's and text-embeddings-inference's APIs.",
        "description": (
            "One prepared model per replica. OpenAI clients work against `/v1/embeddings`, "
            "text-embeddings-inference clients against `/embed`, `/embed_all`, `/similarity`, `/tokenize`; "
            "a ColBERT model answers `/embed_multi` and `/rerank`. Every error body is an `Error`. When the "
            "server runs with `FEA_API_KEY`, every operation but the health checks and these docs needs "
            "`Authorization: Bearer <key>`."
        ),
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "tags": [
        {"name": "OpenAI", "description": "OpenAI's embeddings API."},
        {"name": "TEI", "description": "text-embeddings-inference's embedding routes, with TEI's JSON."},
        {"name": "ColBERT", "description": "Multi-vector (late interaction) models only."},
        {"name": "Service", "description": "Health, model information, metrics and these docs."},
    ],
    "security": [{"bearerAuth": []}],
    "paths": {
        **{
            path: {"post": _post(path, tag, summary, _schema(body), _schema(answer), queued=path != "/tokenize")}
            for path, tag, summary, body, answer in _MODEL_ROUTES
        },
        "/": {"post": _root("/"), "get": _health("/")},
        "/invocations": {"post": _root("/invocations")},
        "/health": {"get": _health("/health")},
        "/ping": {"get": _health("/ping")},
        "/info": {
            "get": _get(
                "/info",
                "The model, its limits, quantization and library versions.",
                _body("Model information.", _schema("Info")),
            )
        },
        "/v1/models": {
            "get": _get(
                "/v1/models", "The served model, OpenAI's list shape.", _body("The list.", _schema("Models")), "OpenAI"
            )
        },
        "/metrics": {
            "get": _get("/metrics", "Prometheus metrics.", _body("Prometheus text.", {"type": "string"}, "text/plain"))
        },
        "/openapi.json": {
            "get": _get("/openapi.json", "This document.", _document("OpenAPI 3.1.", "application/json"), public=True)
        },
        "/docs": {"get": _get("/docs", "This document as a web page.", _document("HTML.", "text/html"), public=True)},
    },
    "components": {
        "schemas": {**REQUESTS, **RESPONSES},
        "responses": ERRORS,
        "headers": HEADERS,
        "parameters": {"X-Request-ID": REQUEST_ID},
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's `FEA_API_KEY`; needed only when it is set.",
            }
        },
    },
}

_BODY = json.dumps(OPENAPI, separators=(",", ":")).encode()


async def openapi_schema(request: Request) -> Response:
    """``GET /openapi.json``: :data:`OPENAPI`."""
    return Response(_BODY, media_type="application/json")
