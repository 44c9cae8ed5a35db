"""Check that an optional dependency group (extra) is installed, at a subpackage's ``__init__``."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .errors import MissingExtraError

__all__ = ["require_extra"]


def require_extra(extra: str, modules: Iterable[str]) -> None:
    """Raise ``MissingExtraError`` naming ``pip install 'fastembed-adapter[extra]'`` if a module is missing."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise MissingExtraError(extra, module)
