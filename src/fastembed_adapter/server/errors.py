"""The service's errors and the one exception → HTTP status table.

Server-only classes extend the library tree in :mod:`fastembed_adapter.errors`::

    FastembedAdapterError
    ├── InvalidInputError                      422 invalid_request
    │   ├── RequestValidationError             422 invalid_request   bad JSON, wrong types, empty input
    │   └── PayloadTooLargeError               413 payload_too_large too many inputs, body or text too long
    ├── ModelFolderError                       503 model_unavailable
    ├── InferenceError                         500 inference_error
    ├── UnauthorizedError(PermissionError)     401 unauthorized      missing or wrong API key
    └── RetryAfterError(RuntimeError)                                 answered with a Retry-After header
        ├── OverloadedError                    429 overloaded        queue full
        └── NotReadyError                      503 not_ready         loading or draining

Every error body has the OpenAI shape ``{"error": {"message", "type", "code"}}`` (``code`` is
the HTTP status) so OpenAI clients raise their usual exceptions; ``request_id`` is added.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException

from ..errors import FastembedAdapterError, InferenceError, InvalidInputError, ModelFolderError

__all__ = [
    "ERROR_TABLE",
    "ErrorStatus",
    "ModelKindError",
    "NotReadyError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RequestValidationError",
    "RetryAfterError",
    "UnauthorizedError",
    "error_body",
    "status_of",
]


class RequestValidationError(InvalidInputError):
    """The request body is not valid JSON or does not match the endpoint's schema."""


class PayloadTooLargeError(InvalidInputError):
    """Too many inputs, a body over the byte limit, or a text over the model's token limit."""


class ModelKindError(InvalidInputError):
    """The route needs another kind of model (a dense route on a ColBERT model, or the reverse)."""


class UnauthorizedError(FastembedAdapterError, PermissionError):
    """An API key is configured and the request did not present it."""


class RetryAfterError(FastembedAdapterError, RuntimeError):
    """A refusal the client should retry after ``retry_after`` seconds (sent as ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverloadedError(RetryAfterError):
    """The request queue is full; retry later (HTTP 429)."""


class NotReadyError(RetryAfterError):
    """The model is still loading, failed to load, or the replica is draining (HTTP 503)."""


@dataclass(frozen=True)
class ErrorStatus:
    """HTTP status and ``error.type`` of one exception class."""

    status: int
    type: str


# Most specific first: the first class the exception is an instance of wins.
ERROR_TABLE: tuple[tuple[type[BaseException], ErrorStatus], ...] = (
    (PayloadTooLargeError, ErrorStatus(413, "payload_too_large")),
    (ModelKindError, ErrorStatus(400, "wrong_model_kind")),
    (InvalidInputError, ErrorStatus(422, "invalid_request")),
    (UnauthorizedError, ErrorStatus(401, "unauthorized")),
    (OverloadedError, ErrorStatus(429, "overloaded")),
    (NotReadyError, ErrorStatus(503, "not_ready")),
    (ModelFolderError, ErrorStatus(503, "model_unavailable")),
    (InferenceError, ErrorStatus(500, "inference_error")),
    (FastembedAdapterError, ErrorStatus(500, "internal_error")),
)
_INTERNAL = ErrorStatus(500, "internal_error")
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed"}


def status_of(exc: BaseException) -> ErrorStatus:
    """The status and error type for ``exc`` (500 ``internal_error`` for anything unexpected)."""
    if isinstance(exc, HTTPException):
        return ErrorStatus(exc.status_code, _HTTP_TYPES.get(exc.status_code, "http_error"))
    for cls, status in ERROR_TABLE:
        if isinstance(exc, cls):
            return status
    return _INTERNAL


def error_body(exc: BaseException, request_id: str | None = None) -> tuple[int, dict[str, object], dict[str, str]]:
    """``(status, JSON body, extra headers)`` of the error response for ``exc``.

    Unexpected exceptions are reported without their message (it may leak internals); the
    access log and the traceback in the service log carry the details.
    """
    found = status_of(exc)
    if isinstance(exc, HTTPException):
        message = str(exc.detail)
    elif found is _INTERNAL and not isinstance(exc, FastembedAdapterError):
        message = f"Internal error ({type(exc).__name__}); see the service log for request {request_id}."
    else:
        message = str(exc)
    body: dict[str, object] = {"error": {"message": message, "type": found.type, "code": found.status}}
    if request_id is not None:
        body["request_id"] = request_id
    headers: dict[str, str] = {}
    if isinstance(exc, RetryAfterError):
        headers["Retry-After"] = str(exc.retry_after)
    if found.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return found.status, body, headers
