"""Request bodies of the endpoints, parsed and checked into one ``EmbedJob`` or ``TokenizeJob``.

``POST /v1/embeddings`` follows OpenAI's embeddings API (``input``, ``model``, ``encoding_format``,
``dimensions``, ``user``). The text-embeddings-inference (TEI) routes follow TEI's request types
(``router/src/http/types.rs``): ``/embed`` (``inputs``, ``normalize``, ``truncate``,
``truncation_direction``, ``prompt_name``, ``dimensions``), ``/embed_all`` (the same without
``normalize`` and ``dimensions``), ``/similarity`` (``inputs: {source_sentence, sentences}`` and
optional ``parameters: {truncate, truncation_direction, prompt_name}``) and ``/tokenize``
(``inputs``, ``add_special_tokens``, ``prompt_name``). As in TEI, ``truncate`` left out means the
server's ``auto_truncate``. Unknown fields are ignored, as both services do; wrong types and
empty inputs raise ``RequestValidationError`` (422) naming the field, too many inputs raise
``PayloadTooLargeError`` (413).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import PayloadTooLargeError, RequestValidationError
from .settings import ServerSettings

__all__ = [
    "ENCODING_FORMATS",
    "EmbedJob",
    "Output",
    "RerankJob",
    "TokenizeJob",
    "is_similarity",
    "parse_embed_multi",
    "parse_json",
    "parse_openai",
    "parse_rerank",
    "parse_similarity",
    "parse_tei",
    "parse_tei_all",
    "parse_tokenize",
]

ENCODING_FORMATS = ("float", "base64")
MAX_JSON_DEPTH = 32  # nesting levels of a request body; the deepest valid body (/similarity) has 3


class Output(str, Enum):
    """What an embedding job computes per text."""

    SENTENCE = "sentence"  # what encode() returns: the sentence embedding after every module
    UNNORMALIZED = "unnormalized"  # the sentence embedding without a final Normalize module
    TOKENS = "tokens"  # the transformer's vector of every token (no pooling)
    QUERY_TOKENS = "query_tokens"  # a ColBERT model's query token vectors (OnnxColbertEncoder, is_query=True)
    DOCUMENT_TOKENS = "document_tokens"  # a ColBERT model's document token vectors (is_query=False)

    @property
    def multi_vector(self) -> bool:
        """Whether a ColBERT model computes this output (and only a ColBERT model)."""
        return self in (Output.QUERY_TOKENS, Output.DOCUMENT_TOKENS)


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
        output: sentence embeddings as ``encode()`` returns them, before the final Normalize, or per token.
    """

    texts: list[str]
    singular: bool = False
    prompt_name: str | None = None
    truncate: bool = False
    normalize: bool = False
    dimensions: int | None = None
    encoding_format: str = "float"
    output: Output = Output.SENTENCE


@dataclass(frozen=True)
class TokenizeJob:
    """One ``/tokenize`` request.

    Attributes:
        texts: the inputs, in order (at least one, none empty).
        prompt_name: a prompt of the model config to prepend (None: the model's default prompt).
        add_special_tokens: add the model's special tokens (CLS/SEP, BOS/EOS), as encoding does.
    """

    texts: list[str]
    prompt_name: str | None = None
    add_special_tokens: bool = True


@dataclass(frozen=True)
class RerankJob:
    """One TEI ``/rerank`` request on a ColBERT model: ``texts`` scored by MaxSim against ``query``.

    Attributes:
        query: the query text.
        texts: the candidate documents, in order (at least one, none empty).
        raw_scores: the MaxSim sum itself; otherwise divided by the query's token count (in [-1, 1]).
        return_text: echo each document's text in its result.
        truncate: truncate texts over the model's lengths instead of rejecting them.
    """

    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = True


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` levels (an iterative walk, no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; anything else is a ``RequestValidationError``.

    Besides invalid JSON, this refuses what ``json`` itself cannot or should not build: nesting
    deeper than ``MAX_JSON_DEPTH`` (far deeper makes the parser raise ``RecursionError``) and an
    integer longer than Python's int string limit (``ValueError``). Both are client errors, never
    a 500, and the rest of the service only ever sees shallow bodies.
    """
    too_deep = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels; send a flatter body."
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestValidationError(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise RequestValidationError(too_deep) from exc
    except ValueError as exc:  # the only other ValueError of json.loads: int(...) over the digit limit
        raise RequestValidationError(
            f"The JSON body holds an integer with more than {sys.get_int_max_str_digits()} digits; "
            "no field accepts one that long."
        ) from exc
    if not isinstance(data, dict):
        raise RequestValidationError(f"The request body must be a JSON object, got {type(data).__name__}.")
    # Each level needs a bracket: bodies with few of them (nearly all) skip the walk.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _too_deep(data, MAX_JSON_DEPTH):
        raise RequestValidationError(too_deep)
    return data


def _check_count(where: str, count: int, settings: ServerSettings) -> None:
    if count > settings.max_inputs:
        raise PayloadTooLargeError(
            f"{where} has {count} texts; this server accepts at most {settings.max_inputs} per request "
            "(--max-inputs). Split the request."
        )


def _string_list(value: list[Any], name: str) -> list[str]:
    """``value`` checked to hold only non-empty strings (``name`` is the field, for the errors)."""
    for index, text in enumerate(value):
        where = f"'{name}[{index}]'"
        if isinstance(text, str):
            if not text:
                raise RequestValidationError(f"{where} is an empty string; every input must hold some text.")
            continue
        hint = ""
        if isinstance(text, (int, list)):
            hint = (
                " Token-id arrays are not supported (they belong to another tokenizer): send the text itself, "
                "e.g. LangChain's OpenAIEmbeddings(check_embedding_ctx_length=False)."
            )
        raise RequestValidationError(f"{where} is {type(text).__name__}; every input must be a string.{hint}")
    return list(value)


def _texts(data: dict[str, Any], field_name: str, settings: ServerSettings) -> tuple[list[str], bool]:
    if field_name not in data:
        raise RequestValidationError(f"'{field_name}' is required: a string or a list of strings.")
    value = data[field_name]
    where = f"'{field_name}'"
    if isinstance(value, str):
        if not value:
            raise RequestValidationError(f"{where} is an empty string; every input must hold some text.")
        return [value], True
    if not isinstance(value, list):
        raise RequestValidationError(f"{where} must be a string or a list of strings, got {type(value).__name__}.")
    if not value:
        raise RequestValidationError(f"{where} is an empty list; send at least one text.")
    _check_count(where, len(value), settings)
    return _string_list(value, field_name), False


def _optional(data: dict[str, Any], name: str, kind: type, default: Any = None, prefix: str = "") -> Any:
    value = data.get(name)
    if value is None:
        return default
    if kind is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # JSON Schema's integer: 1.0 is one (generated clients send it)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise RequestValidationError(
            f"'{prefix}{name}' must be {article} {kind.__name__}, got {type(value).__name__} ({value!r:.40})."
        )
    return value


def _dimensions(data: dict[str, Any]) -> int | None:
    value: int | None = _optional(data, "dimensions", int)
    if value is not None and value < 1:
        raise RequestValidationError(f"'dimensions' must be a positive integer, got {value}.")
    return value


def _truncate(data: dict[str, Any], settings: ServerSettings, prefix: str = "") -> bool:
    """TEI's ``truncate`` (left out: the server's ``auto_truncate``) after checking ``truncation_direction``."""
    direction = _optional(data, "truncation_direction", str, "Right", prefix)
    if direction.lower() != "right":
        raise RequestValidationError(
            f"'{prefix}truncation_direction' {direction!r} is not supported; only 'Right' is (sentence-transformers' "
            "truncation)."
        )
    truncate: bool = _optional(data, "truncate", bool, settings.auto_truncate, prefix)
    return truncate


def _encoding_format(data: dict[str, Any]) -> str:
    value: str = _optional(data, "encoding_format", str, "float")
    if value not in ENCODING_FORMATS:
        raise RequestValidationError(f"'encoding_format' must be one of {list(ENCODING_FORMATS)}, got {value!r}.")
    return value


def parse_openai(data: dict[str, Any], settings: ServerSettings) -> EmbedJob:
    """An OpenAI ``/v1/embeddings`` body. ``model`` is accepted whatever it names (one model per replica)."""
    texts, singular = _texts(data, "input", settings)
    _optional(data, "model", str)
    _optional(data, "user", str)
    encoding_format = _encoding_format(data)
    return EmbedJob(
        texts=texts,
        singular=singular,
        truncate=settings.auto_truncate,
        dimensions=_dimensions(data),
        encoding_format=encoding_format,
    )


def parse_tei(data: dict[str, Any], settings: ServerSettings) -> EmbedJob:
    """A TEI ``/embed`` body. ``normalize`` defaults to true; false asks for the vector before normalisation.

    As TEI, ``normalize: false`` returns the pooled vector (after Dense/LayerNorm modules) without
    the model's final ``Normalize`` module, and ``normalize: true`` L2-normalises it (after
    ``dimensions`` truncation either way).
    """
    texts, singular = _texts(data, "inputs", settings)
    normalize: bool = _optional(data, "normalize", bool, True)
    return EmbedJob(
        texts=texts,
        singular=singular,
        prompt_name=_optional(data, "prompt_name", str),
        truncate=_truncate(data, settings),
        normalize=normalize,
        dimensions=_dimensions(data),
        output=Output.SENTENCE if normalize else Output.UNNORMALIZED,
    )


def parse_tei_all(data: dict[str, Any], settings: ServerSettings) -> EmbedJob:
    """A TEI ``/embed_all`` body: per-token vectors, so no ``normalize`` or ``dimensions``."""
    texts, singular = _texts(data, "inputs", settings)
    return EmbedJob(
        texts=texts,
        singular=singular,
        prompt_name=_optional(data, "prompt_name", str),
        truncate=_truncate(data, settings),
        output=Output.TOKENS,
    )


def is_similarity(data: dict[str, Any]) -> bool:
    """Whether a body sent to ``POST /`` is TEI's sentence-similarity shape (``inputs`` is an object)."""
    return isinstance(data.get("inputs"), dict)


def parse_similarity(data: dict[str, Any], settings: ServerSettings) -> EmbedJob:
    """A TEI ``/similarity`` body; the job's texts are the source sentence, then the others."""
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        got = "nothing" if inputs is None else type(inputs).__name__
        raise RequestValidationError(
            f'\'inputs\' must be an object {{"source_sentence": str, "sentences": [str, ...]}}, got {got}.'
        )
    source = inputs.get("source_sentence")
    if not isinstance(source, str) or not source:
        got = "an empty string" if source == "" else type(source).__name__ if source is not None else "nothing"
        raise RequestValidationError(f"'inputs.source_sentence' must be a non-empty string, got {got}.")
    sentences = inputs.get("sentences")
    if not isinstance(sentences, list):
        got = "nothing" if sentences is None else type(sentences).__name__
        raise RequestValidationError(f"'inputs.sentences' must be a list of strings, got {got}.")
    if not sentences:
        raise RequestValidationError("'inputs.sentences' is an empty list; send at least one sentence to compare.")
    _check_count("'inputs.sentences' with 'inputs.source_sentence'", len(sentences) + 1, settings)
    others = _string_list(sentences, "inputs.sentences")
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise RequestValidationError(f"'parameters' must be an object, got {type(parameters).__name__}.")
    return EmbedJob(
        texts=[source, *others],
        prompt_name=_optional(parameters, "prompt_name", str, prefix="parameters."),
        truncate=_truncate(parameters, settings, "parameters."),
    )


def parse_tokenize(data: dict[str, Any], settings: ServerSettings) -> TokenizeJob:
    """A TEI ``/tokenize`` body (``add_special_tokens`` defaults to true, as in TEI)."""
    texts, _ = _texts(data, "inputs", settings)
    return TokenizeJob(
        texts=texts,
        prompt_name=_optional(data, "prompt_name", str),
        add_special_tokens=_optional(data, "add_special_tokens", bool, True),
    )


def parse_embed_multi(data: dict[str, Any], settings: ServerSettings) -> EmbedJob:
    """An ``/embed_multi`` body: ``inputs``, ``is_query`` (default false), ``prompt_name``, ``encoding_format``."""
    texts, singular = _texts(data, "inputs", settings)
    is_query: bool = _optional(data, "is_query", bool, False)
    encoding_format = _encoding_format(data)
    return EmbedJob(
        texts=texts,
        singular=singular,
        prompt_name=_optional(data, "prompt_name", str),
        truncate=_truncate(data, settings),
        encoding_format=encoding_format,
        output=Output.QUERY_TOKENS if is_query else Output.DOCUMENT_TOKENS,
    )


def parse_rerank(data: dict[str, Any], settings: ServerSettings) -> RerankJob:
    """A TEI ``/rerank`` body: ``query``, ``texts``, ``raw_scores``, ``return_text``, ``truncate``."""
    query = data.get("query")
    if not isinstance(query, str) or not query:
        raise RequestValidationError(f"'query' must be a non-empty string, got {query!r:.40}.")
    texts, _ = _texts(data, "texts", settings)
    return RerankJob(
        query=query,
        texts=texts,
        raw_scores=_optional(data, "raw_scores", bool, False),
        return_text=_optional(data, "return_text", bool, False),
        truncate=_truncate(data, settings),
    )
