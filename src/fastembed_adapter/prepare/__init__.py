"""``prepare``: export, optimize, quantize and validate a sentence-transformers model (extra ``prepare``).

Importing this subpackage checks the extra is installed and raises ``MissingExtraError``
naming the install command otherwise.
"""

from __future__ import annotations

import importlib.util

from ..errors import MissingExtraError

for _module in ("torch", "sentence_transformers", "transformers", "optimum.exporters.onnx", "onnx"):
    try:
        _found = importlib.util.find_spec(_module) is not None
    except ModuleNotFoundError:
        _found = False
    if not _found:
        raise MissingExtraError("prepare", _module)

from .pipeline import STAGES, PrepareOptions, prepare_model  # noqa: E402

__all__ = ["STAGES", "PrepareOptions", "prepare_model"]
