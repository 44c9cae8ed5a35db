"""``ServerSettings``: every knob of ``serve`` in one frozen, validated dataclass.

The CLI builds it from flags with ``FEA_*`` environment fallbacks (read when the command runs);
tests build it directly. Nothing here reads the environment.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError

__all__ = ["LOG_FORMATS", "ServerSettings"]

LOG_FORMATS = ("json", "text")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidInputError(f"{name} must be a number {bound}, got {value!r}.")


def _check_api_key(key: object) -> None:
    """Refuse a key no request could present (the messages never show the key itself).

    Clients send the key as UTF-8 bytes in an HTTP header, which cannot hold control characters
    (CR/LF would end it) and whose surrounding whitespace clients and proxies drop; a lone
    surrogate (from an ``FEA_API_KEY`` that is not UTF-8) has no UTF-8 bytes at all.
    """
    if not isinstance(key, str):
        raise InvalidInputError(f"api_key must be a string, got {type(key).__name__}.")
    if not key.strip():
        raise InvalidInputError("api_key is empty; set a key or unset FEA_API_KEY to disable authentication.")
    if key != key.strip():
        raise InvalidInputError(
            "api_key starts or ends with whitespace, which HTTP clients and proxies strip from the "
            "Authorization header, so no request could match it. Remove the surrounding whitespace."
        )
    for position, char in enumerate(key):
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidInputError(
                f"api_key holds the control character U+{ord(char):04X} at position {position}; an HTTP "
                "header cannot carry it, so no request could match the key. Use printable characters only."
            )
        if category == "Cs":
            raise InvalidInputError(
                f"api_key holds a lone surrogate U+{ord(char):04X} at position {position} (FEA_API_KEY "
                "is not valid UTF-8); clients send the key as UTF-8, so no request could match it."
            )


@dataclass(frozen=True)
class ServerSettings:
    """Configuration of one ``serve`` replica.

    Attributes:
        model: prepared model folder or hub id given to ``OnnxSentenceEncoder``.
        model_name: the id reported in responses and ``/v1/models`` (default: the folder name).
        file_name: ONNX file inside the folder (default: the encoder's choice for this CPU).
        host: address to bind.
        port: TCP port to bind.
        threads: ONNX Runtime intra-op threads (default: the CPUs this process may use).
        runtime: ``onnxruntime``, ``openvino`` or ``auto`` for a dense model (default: the encoder's, ONNX Runtime).
        max_batch_texts: texts merged into one ONNX call at most (a larger request runs alone).
        max_batch_tokens: tokens (after truncation) merged into one micro-batch at most.
        max_batch_wait_ms: how long the first queued request may wait for others to join its batch.
        max_queue: requests queued or running at once; more get 429 with ``Retry-After``.
        max_inputs: texts per request; more get 413.
        max_body_bytes: request body size; larger bodies get 413.
        auto_truncate: truncate texts over ``max_seq_length`` unless a request sends ``truncate: false``
            (on by default, as sentence-transformers and TEI do); off, they get 413 unless the
            request sends ``truncate: true`` (the CLI's ``--no-auto-truncate``).
        cache_size: LRU embedding cache entries of this replica (0 disables it).
        api_key: when set, every route but ``/health`` needs ``Authorization: Bearer <key>``; it must
            be non-empty, without control characters or surrounding whitespace (any other
            Unicode is fine: clients send its UTF-8 bytes).
        drain_timeout: seconds in-flight requests get to finish after SIGTERM (after ``drain_grace``).
        drain_grace: seconds after SIGTERM during which ``/health`` answers 503 while the replica
            still accepts and serves, so load balancers deregister it before connections are refused.
        header_timeout: seconds a connection gets to send a request's line and headers (from
            connecting, or from the first byte of its next request); then 408 and close.
        body_timeout: seconds a request gets to send its whole body after its headers; then 408
            and close.
        max_connections: connections open at once; one more is answered 503 with ``Retry-After``
            and closed.
        log_format: ``json`` (one object per line) or ``text``.
        log_level: logging level name for the service's loggers.
    """

    model: str
    model_name: str | None = None
    file_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int | None = None
    runtime: str | None = None
    max_batch_texts: int = 32
    max_batch_tokens: int = 16384
    max_batch_wait_ms: float = 2.0
    max_queue: int = 256
    max_inputs: int = 512
    max_body_bytes: int = 2 * 1024 * 1024
    auto_truncate: bool = True
    cache_size: int = 1024
    api_key: str | None = field(default=None, repr=False)
    drain_timeout: float = 30.0
    drain_grace: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512
    log_format: str = "json"
    log_level: str = "info"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise InvalidInputError(f"model must be a folder path or hub id, got {self.model!r}.")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise InvalidInputError(f"port must be an integer 0..65535, got {self.port!r}.")
        for name in (
            "max_batch_texts",
            "max_batch_tokens",
            "max_queue",
            "max_inputs",
            "max_body_bytes",
            "max_connections",
        ):
            value = getattr(self, name)
            if not isinstance(value, int):
                raise InvalidInputError(f"{name} must be an integer, got {value!r}.")
            _check_positive(name, value)
        if self.threads is not None:
            _check_positive("threads", self.threads)
        if self.runtime not in (None, "onnxruntime", "openvino", "auto"):
            raise InvalidInputError(f"runtime must be onnxruntime, openvino or auto, got {self.runtime!r}.")
        _check_positive("max_batch_wait_ms", self.max_batch_wait_ms, allow_zero=True)
        _check_positive("cache_size", self.cache_size, allow_zero=True)
        _check_positive("drain_timeout", self.drain_timeout, allow_zero=True)
        _check_positive("drain_grace", self.drain_grace, allow_zero=True)
        _check_positive("header_timeout", self.header_timeout)
        _check_positive("body_timeout", self.body_timeout)
        if self.log_format not in LOG_FORMATS:
            raise InvalidInputError(f"log_format must be one of {list(LOG_FORMATS)}, got {self.log_format!r}.")
        if self.api_key is not None:
            _check_api_key(self.api_key)

    @property
    def served_name(self) -> str:
        """The model id clients see: ``model_name`` or the last part of ``model``."""
        return self.model_name or Path(self.model.rstrip("/")).name or self.model
