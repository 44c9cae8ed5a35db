"""``bench``: the side-by-side benchmark (extra ``bench``).

Every backend runs in its own fresh process (:mod:`.worker`), interleaved and repeated by
:mod:`.runner`; the results are a JSON file, a Markdown table and PNG plots. The PyTorch
baseline needs the ``prepare`` dependencies (torch, sentence-transformers), which the ``bench``
extra pulls in; ``fastembed`` is optional at run time and recorded as unavailable when missing.

Importing this subpackage checks the extra is installed and raises ``MissingExtraError``
naming the install command otherwise.
"""

from __future__ import annotations

from ..extras import require_extra

require_extra("bench")

from .backends import BACKENDS  # noqa: E402
from .runner import BenchOptions, run_bench  # noqa: E402

__all__ = ["BACKENDS", "BenchOptions", "run_bench"]
