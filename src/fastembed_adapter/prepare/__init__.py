"""``prepare``: export, optimize, quantize and validate a sentence-transformers model (extra ``prepare``).

Importing this subpackage checks the extra is installed and raises ``MissingExtraError``
naming the install command otherwise.
"""

from __future__ import annotations

from ..extras import require_extra

require_extra("prepare")

from .pipeline import STAGES, PrepareOptions, prepare_model  # noqa: E402

__all__ = ["STAGES", "PrepareOptions", "prepare_model"]
