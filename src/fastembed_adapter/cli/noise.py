"""Third-party output that asks nothing of the user, silenced for the ``prepare`` command only."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

__all__ = ["quiet_third_party"]

_NOISE = (
    # onnxruntime.quantization, on the root logger, once per quantize_static/quantize_dynamic call
    ("root", "Please consider to run pre-processing before quantization"),
    # transformers, when anything reads config.torch_dtype (optimum's exporter and older libraries did)
    ("transformers", "`torch_dtype` is deprecated"),
    # optimum's exporter, on every export without accelerate installed
    ("optimum", "Weight deduplication check in the ONNX export requires accelerate"),
)
_NOISY_PACKAGES = r"(torch|transformers|sentence_transformers|optimum|onnx|onnxscript|onnxruntime|huggingface_hub)"


class _DropNoise(logging.Filter):
    """Drops the records listed in ``_NOISE``; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(
            (record.name == name or record.name.startswith(f"{name}.")) and message.startswith(start)
            for name, start in _NOISE
        )


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """While ``prepare`` runs: hide third-party lines no user can act on, keep everything else.

    Library warnings addressed to developers (DeprecationWarning/FutureWarning raised inside torch,
    transformers, ...; torch's TracerWarning) are ignored; transformers' own progress bars (weights
    loaded, shards written) are off; the ``_NOISE`` log records are dropped. Our warnings, hub
    download bars and third-party warnings about the model itself (missing weights) still show,
    as ``warning: ...`` lines. Everything is restored on exit: the library never configures logging.
    """
    drop = _DropNoise()
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    handler.setLevel(logging.WARNING)
    # a handler of our own keeps ORT's logging.warning from calling logging.basicConfig()
    installed = not root.handlers
    if installed:
        root.addHandler(handler)
    loggers = [root, *(logging.getLogger(name) for name, _ in _NOISE if name != "root")]
    handlers = [h for logger in loggers for h in logger.handlers]
    if logging.lastResort is not None:  # prints WARNING records when no handler is configured
        handlers.append(logging.lastResort)
    for target in [*loggers, *handlers]:
        target.addFilter(drop)
    hook_restore = _silence_transformers_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=_NOISY_PACKAGES + r"(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, module=_NOISY_PACKAGES + r"(\.|$)")
            with contextlib.suppress(ImportError):
                from torch.jit import TracerWarning  # type: ignore[attr-defined]

                warnings.filterwarnings("ignore", category=TracerWarning)
            yield
    finally:
        hook_restore()
        for target in [*loggers, *handlers]:
            target.removeFilter(drop)
        if installed:
            root.removeHandler(handler)


def _silence_transformers_bars() -> Callable[[], None]:
    """Turn transformers' own tqdm bars off (not huggingface_hub's); return the undo."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return lambda: None
    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)  # transformers >= 5; 4.x has no such bars
    if set_hook is None:
        return lambda: None
    previous = set_hook(lambda factory, args, kwargs: factory(*args, **{**kwargs, "disable": True}))
    return lambda: set_hook(previous)
