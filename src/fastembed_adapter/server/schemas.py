"""Request bodies of the two embedding endpoints, parsed and checked into one ``EmbedJob``.

``POST /v1/embeddings`` follows OpenAI's embeddings API (``input``, ``model``, ``encoding_format``,
``dimensions``, ``user``); ``POST /embed`` follows text-embeddings-inference (``inputs``,
``normalize``, ``truncate``, ``truncation_direction``, ``prompt_name``, ``dimensions``). Unknown
fields are ignored, as both services do; wrong types raise ``RequestValidationError`` (422)
naming the field, too many inputs raise ``PayloadTooLargeError`` (413).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import PayloadTooLargeError, RequestValidationError
from .settings import ServerSettings

__all__ = ["ENCODING_FORMATS", "EmbedJob", "parse_json", "parse_openai", "parse_tei"]

ENCODING_FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbedJob:
    """One embedding request, endpoint-independent.

    Attributes:
        texts: the inputs, in order (at least one, none empty).
        singular: the request sent one string rather than a list.
        prompt_name: a prompt of the model config to prepend (None: the model's default prompt).
        truncate: truncate texts over ``max_seq_length`` tokens instead of rejecting them.
        normalize: L2-normalise the returned vectors.
        dimensions: keep only the first ``dimensions`` values (Matryoshka truncation).
        encoding_format: ``float`` (JSON numbers) or ``base64`` (little-endian float32 bytes).
    """

    texts: list[str]
    singular: bool = False
    prompt_name: str | None = None
    truncate: bool = False
    normalize: bool = False
    dimensions: int | None = None
    encoding_format: str = "float"


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; anything else is a ``RequestValidationError``."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestValidationError(f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise RequestValidationError(f"The request body must be a JSON object, got {type(data).__name__}.")
    return data


def _texts(data: dict[str, Any], field_name: str, settings: ServerSettings) -> tuple[list[str], bool]:
    if field_name not in data:
        raise RequestValidationError(f"'{field_name}' is required: a string or a list of strings.")
    value = data[field_name]
    if isinstance(value, str):
        texts, singular = [value], True
    elif isinstance(value, list):
        texts, singular = value, False
    else:
        raise RequestValidationError(
            f"'{field_name}' must be a string or a list of strings, got {type(value).__name__}."
        )
    if not texts:
        raise RequestValidationError(f"'{field_name}' is an empty list; send at least one text.")
    if len(texts) > settings.max_inputs:
        raise PayloadTooLargeError(
            f"'{field_name}' has {len(texts)} texts; this server accepts at most {settings.max_inputs} per request "
            "(--max-inputs). Split the request."
        )
    for index, text in enumerate(texts):
        if isinstance(text, str):
            if not text:
                where = f"'{field_name}'" if singular else f"'{field_name}[{index}]'"
                raise RequestValidationError(f"{where} is an empty string; every input must hold some text.")
            continue
        hint = ""
        if isinstance(text, (int, list)):
            hint = (
                " Token-id arrays are not supported (they belong to another tokenizer): send the text itself, "
                "e.g. LangChain's OpenAIEmbeddings(check_embedding_ctx_length=False)."
            )
        raise RequestValidationError(
            f"'{field_name}[{index}]' is {type(text).__name__}; every input must be a string.{hint}"
        )
    return list(texts), singular


def _optional(data: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestValidationError(f"'{name}' must be a {kind.__name__}, got {type(value).__name__} ({value!r:.40}).")
    return value


def _dimensions(data: dict[str, Any]) -> int | None:
    value: int | None = _optional(data, "dimensions", int)
    if value is not None and value < 1:
        raise RequestValidationError(f"'dimensions' must be a positive integer, got {value}.")
    return value


def parse_openai(body: bytes, settings: ServerSettings) -> EmbedJob:
    """An OpenAI ``/v1/embeddings`` body. ``model`` is accepted whatever it names (one model per replica)."""
    data = parse_json(body)
    texts, singular = _texts(data, "input", settings)
    _optional(data, "model", str)
    _optional(data, "user", str)
    encoding_format = _optional(data, "encoding_format", str, "float")
    if encoding_format not in ENCODING_FORMATS:
        raise RequestValidationError(
            f"'encoding_format' must be one of {list(ENCODING_FORMATS)}, got {encoding_format!r}."
        )
    return EmbedJob(
        texts=texts,
        singular=singular,
        truncate=settings.auto_truncate,
        dimensions=_dimensions(data),
        encoding_format=encoding_format,
    )


def parse_tei(body: bytes, settings: ServerSettings) -> EmbedJob:
    """A text-embeddings-inference ``/embed`` body (``normalize`` defaults to true, as in TEI)."""
    data = parse_json(body)
    texts, singular = _texts(data, "inputs", settings)
    direction = _optional(data, "truncation_direction", str, "Right")
    if direction.lower() != "right":
        raise RequestValidationError(
            f"'truncation_direction' {direction!r} is not supported; only 'Right' is (sentence-transformers' "
            "truncation)."
        )
    return EmbedJob(
        texts=texts,
        singular=singular,
        prompt_name=_optional(data, "prompt_name", str),
        truncate=_optional(data, "truncate", bool, settings.auto_truncate),
        normalize=_optional(data, "normalize", bool, True),
        dimensions=_dimensions(data),
    )
