"""Running the command line inside the test process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from fastembed_adapter.cli import main


def run_in_process(
    capsys: pytest.CaptureFixture[str], *args: str, entry: Callable[[Sequence[str] | None], int] = main
) -> tuple[int, str, str]:
    """``entry(args)`` in this process: (exit code, stdout, stderr); argparse's SystemExit becomes the code."""
    try:
        code = entry(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err
