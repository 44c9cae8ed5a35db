"""``embed``: whole corpora into Parquet, ``.npy`` or JSONL, a part at a time, resumable (extra ``batch``).

``embed_corpus(Source.open(path), Output.of(out), EmbedSettings(model))`` is what
``fastembed-adapter embed`` runs; ``fastembed_adapter.ray`` runs the same job on Ray Data.
Importing this subpackage checks the extra is installed and raises ``MissingExtraError`` naming
the install command otherwise.
"""

from __future__ import annotations

from ..extras import require_extra

require_extra("batch")

from .embedding import EmbedSettings  # noqa: E402
from .job import JobOptions, Summary, embed_corpus  # noqa: E402
from .output import Output, OutputFormat  # noqa: E402
from .sources import BadRow, InputFormat, Row, Source  # noqa: E402

__all__ = [
    "BadRow",
    "EmbedSettings",
    "InputFormat",
    "JobOptions",
    "Output",
    "OutputFormat",
    "Row",
    "Source",
    "Summary",
    "embed_corpus",
]
