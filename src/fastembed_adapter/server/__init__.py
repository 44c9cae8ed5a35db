"""``serve``: an HTTP embedding service around one ``OnnxSentenceEncoder`` (extra ``serve``).

OpenAI-compatible ``POST /v1/embeddings`` (also ``/embeddings``), text-embeddings-inference's
``/embed``, ``/embed_all``, ``/similarity``, ``/tokenize`` (``POST /`` and ``/invocations`` too, so
TEI clients such as ``huggingface_hub.InferenceClient`` work), ``/health``, ``/info``,
``/v1/models`` and Prometheus ``/metrics``; concurrent requests are merged into micro-batches
that one worker thread encodes. Importing this subpackage checks the extra is installed and
raises ``MissingExtraError`` naming the install command otherwise.
"""

from __future__ import annotations

from ..extras import require_extra

require_extra("serve")

from .app import create_app  # noqa: E402
from .runner import run  # noqa: E402
from .settings import ServerSettings  # noqa: E402

__all__ = ["ServerSettings", "create_app", "run"]
