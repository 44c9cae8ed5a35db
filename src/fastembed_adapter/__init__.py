"""fastembed-adapter: sentence-transformers embeddings on ONNX Runtime INT8, without torch.

``from fastembed_adapter import OnnxSentenceEncoder`` is a drop-in for
``sentence_transformers.SentenceTransformer`` for ``encode()``; ``OnnxColbertEncoder`` one for
``pylate.models.ColBERT``. Importing this package never
imports torch, transformers, optimum or sentence-transformers.
"""

from __future__ import annotations

from .cache import CacheInfo
from .colbert import OnnxColbertEncoder
from .encoder import OnnxSentenceEncoder
from .errors import (
    CorpusError,
    CorruptModelError,
    FastembedAdapterError,
    InferenceError,
    InvalidInputError,
    MissingExtraError,
    ModelAccessError,
    ModelFolderError,
    ModelNotFoundError,
    OutputExistsError,
    OutputWriteError,
    UnsupportedModelError,
    ValidationFailedError,
)
from .metrics import start_metrics_server

__version__ = "0.1.0"

__all__ = [
    "CacheInfo",
    "CorpusError",
    "CorruptModelError",
    "FastembedAdapterError",
    "InferenceError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelAccessError",
    "ModelFolderError",
    "ModelNotFoundError",
    "OnnxColbertEncoder",
    "OnnxSentenceEncoder",
    "OutputExistsError",
    "OutputWriteError",
    "UnsupportedModelError",
    "ValidationFailedError",
    "__version__",
    "start_metrics_server",
]
