"""The one exception tree of fastembed-adapter.

Every error the library raises on purpose is a ``FastembedAdapterError``; each
class also subclasses the built-in exception callers already catch::

    FastembedAdapterError(Exception)
    ├── InvalidInputError(ValueError, TypeError)    bad argument to encode()/the constructor
    │   └── CorpusError                             `embed`: an unreadable corpus, a missing column, a bad row
    ├── ModelFolderError(OSError)                   the model folder cannot be used
    │   ├── ModelNotFoundError(FileNotFoundError)   missing folder/file, unknown hub id
    │   ├── CorruptModelError                       sha256 mismatch, unreadable .onnx/tokenizer
    │   ├── ModelAccessError(PermissionError)       a model file or folder this process may not read
    │   └── UnsupportedModelError                   unknown module, pooling mode or architecture
    ├── InferenceError(RuntimeError)                ONNX Runtime failed while running a batch
    ├── MissingExtraError(ImportError)              an optional extra is not installed
    ├── OutputExistsError(FileExistsError)          `prepare` would overwrite a folder without --force
    ├── OutputWriteError(OSError)                   `prepare` cannot write its output (read-only parent, full disk)
    ├── ValidationFailedError                       `prepare` quality gate failed; nothing published
    │
    │   the service's own classes (fastembed_adapter.server.errors, with their HTTP status):
    ├── InvalidInputError
    │   ├── RequestValidationError                  422  bad JSON, wrong types, empty input
    │   ├── PayloadTooLargeError                    413  too many inputs, body or text too long
    │   └── ModelKindError                          400  a dense route on a ColBERT model, or the reverse
    ├── UnauthorizedError(PermissionError)          401  missing or wrong API key
    └── RetryAfterError(RuntimeError)               answered with a Retry-After header
        ├── OverloadedError                         429  queue full
        └── NotReadyError                           503  loading, failed or draining

The benchmark's ``UnavailableError`` (a backend that cannot run here) stays inside ``benchmark/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "CorpusError",
    "CorruptModelError",
    "FastembedAdapterError",
    "InferenceError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelAccessError",
    "ModelFolderError",
    "ModelNotFoundError",
    "OutputExistsError",
    "OutputWriteError",
    "UnsupportedModelError",
    "ValidationFailedError",
]


class FastembedAdapterError(Exception):
    """Base class of every error fastembed-adapter raises on purpose."""


class InvalidInputError(FastembedAdapterError, ValueError, TypeError):
    """An argument has the wrong type or value (None, an int, a list holding a non-str, ...)."""


class CorpusError(InvalidInputError):
    """``embed`` cannot use its input: a missing or unreadable file, an unknown format or column, or a bad row."""


class ModelFolderError(FastembedAdapterError, OSError):
    """The model folder (or hub repo) cannot be used as it is."""


class ModelNotFoundError(ModelFolderError, FileNotFoundError):
    """A model folder, a file inside it, or a hub repo does not exist."""


class CorruptModelError(ModelFolderError):
    """A file exists but is damaged: sha256 mismatch, truncated or unreadable ONNX/tokenizer."""


class ModelAccessError(ModelFolderError, PermissionError):
    """A file or folder of the model exists, but this process has no permission to read it."""


def access_error(exc: PermissionError) -> ModelAccessError:
    """Our error for a ``PermissionError`` met while reading a model: the path and who we run as."""
    who = f"user id {os.getuid()}" if hasattr(os, "getuid") else "this user"
    return ModelAccessError(
        f"Cannot read {str(exc.filename)!r}: permission denied for this process ({who}). Make the model "
        "folder readable to it (e.g. chmod -R a+rX FOLDER) or run as the folder's owner."
    )


@contextmanager
def model_access() -> Iterator[None]:
    """Turn a raw ``PermissionError`` raised while loading a model into ``ModelAccessError``."""
    try:
        yield
    except PermissionError as exc:
        if isinstance(exc, FastembedAdapterError):
            raise
        raise access_error(exc) from exc


class UnsupportedModelError(ModelFolderError):
    """The model uses a module, pooling mode or architecture this library does not support."""


class InferenceError(FastembedAdapterError, RuntimeError):
    """ONNX Runtime failed while running a batch."""


class MissingExtraError(FastembedAdapterError, ImportError):
    """An optional dependency group (extra) is needed but not installed."""

    def __init__(self, extra: str, missing: str, install: str | None = None) -> None:
        super().__init__(
            f"This feature needs the '{extra}' extra; not installed: {missing}. "
            f"Install it with: {install or f'pip install {chr(39)}fastembed-adapter[{extra}]{chr(39)}'}"
        )
        self.extra = extra
        self.missing = missing


class ValidationFailedError(FastembedAdapterError):
    """`prepare` measured a model below its quality gate; the output folder was not published."""


class OutputExistsError(FastembedAdapterError, FileExistsError):
    """``prepare`` was asked to write over an existing folder without ``--force``."""


class OutputWriteError(FastembedAdapterError, OSError):
    """``prepare`` cannot write its output folder: a parent it may not write, a full disk; nothing was published."""
