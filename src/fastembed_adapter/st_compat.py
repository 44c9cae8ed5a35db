"""What ``SentenceTransformer`` users pass, checked for an ONNX Runtime encoder.

Its constructor keywords (``backend``, ``model_kwargs``, ``processor_kwargs``, hub options, remote code),
its renamed keywords (``sentences`` -> ``inputs``), devices, and the texts ``encode()`` takes. Each keyword
that cannot mean anything without torch raises ``InvalidInputError`` naming it.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from .errors import InvalidInputError
from .layout import read_json

if TYPE_CHECKING:

    pass

__all__ = [
    "LoadOverrides",
    "auth_token",
    "check_device",
    "check_texts",
    "check_unicode",
    "hub_options",
    "is_singular",
    "positive_int",
    "remote_code",
    "renamed_kwargs",
    "warn_once",
]

logger = logging.getLogger("fastembed_adapter.encoder")
_CPU_DEVICES = ("cpu", "cpu:0")
_DTYPES = (None, "auto", "float32", "torch.float32")
_MODEL_KWARGS = ("file_name", "provider", "export", "dtype", "torch_dtype", "attn_implementation", "device_map")
_PROCESSOR_KWARGS = ("model_max_length", "padding_side", "truncation_side")
_WARNED: set[str] = set()

F = TypeVar("F", bound=Callable[..., Any])


def warn_once(message: str) -> None:
    """Log a warning the first time this process meets it, like transformers' ``logger.warning_once``."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def renamed_kwargs(**renames: str) -> Callable[[F], F]:
    """ST 6's ``deprecated_kwargs``: accept an old keyword name, warn once, and pass it on under the new one.

    When both names are given the old one is dropped, as sentence-transformers drops it.
    """

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    warn_once(f"The `{old}` argument was renamed and is now deprecated. Please use `{new}` instead.")
                    value = kwargs.pop(old)
                    kwargs.setdefault(new, value)
            return func(*args, **kwargs)

        return cast("F", wrapper)

    return decorator


def is_singular(inputs: object) -> bool:
    """Same test as ST 6's ``is_singular_input``: lists, tuples, ``datasets.Column`` and str/object arrays are batches.

    (ST 5 counted anything with a ``__len__`` but a str as a batch.)
    """
    if isinstance(inputs, (list, tuple)):
        return False
    if type(inputs).__name__ == "Column" and type(inputs).__module__.startswith("datasets"):
        return False
    return not (isinstance(inputs, np.ndarray) and inputs.ndim >= 1 and inputs.dtype.kind in ("U", "O"))


def check_texts(inputs: object) -> tuple[list[str], bool]:
    """Return the texts as a list and whether the input was a single text; reject non-strings clearly."""
    if is_singular(inputs):
        if not isinstance(inputs, str):
            raise InvalidInputError(
                f"inputs must be a str or a list of str, got {type(inputs).__name__}: {inputs!r:.80}."
            )
        check_unicode("inputs[0]", inputs)
        return [inputs], True
    items: Any = inputs
    texts = items.tolist() if isinstance(items, np.ndarray) else list(items)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"inputs[{index}] is {type(text).__name__} ({text!r:.80}); every item must be a str."
            )
        check_unicode(f"inputs[{index}]", text)
    return texts, False


def check_unicode(name: str, text: str) -> None:
    """Refuse a lone surrogate (not Unicode text; the tokenizer would raise a bare TypeError), naming where."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{name} holds a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}: it is not "
            "valid Unicode text, so it cannot be tokenized. Remove it, or decode the source with errors='replace'."
        ) from None


def positive_int(name: str, value: object, allow_none: bool = False) -> None:
    """Raise ``InvalidInputError`` naming ``name`` unless ``value`` is a positive int (or None if allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")


def check_device(name: str, device: object) -> None:
    """``None``, ``"cpu"`` or a CPU ``torch.device`` (compared by name, without importing torch)."""
    if device is not None and str(device) not in _CPU_DEVICES:
        raise InvalidInputError(
            f"{name}={device!r}: OnnxSentenceEncoder runs on the CPU with ONNX Runtime; valid: None, 'cpu'."
        )


def _unsupported(keyword: str, keys: Sequence[str], valid: Sequence[str], why: str) -> InvalidInputError:
    return InvalidInputError(
        f"{keyword} {sorted(keys)} cannot be honoured by OnnxSentenceEncoder ({why}). "
        f"Supported {keyword}: {', '.join(valid) or 'none'}."
    )


@dataclass(frozen=True)
class LoadOverrides:
    """What the ST constructor keywords change here: the ONNX file, ``max_seq_length``, the tokenizer sides."""

    file_name: str | None
    model_max_length: int | None
    padding_side: str | None
    truncation_side: str | None

    @classmethod
    def check(
        cls,
        file_name: str | None,
        backend: str,
        model_kwargs: Mapping[str, Any] | None,
        processor_kwargs: Mapping[str, Any] | None,
        config_kwargs: Mapping[str, Any] | None,
    ) -> LoadOverrides:
        """Validate ``backend`` and the ``*_kwargs`` dicts; raise ``InvalidInputError`` naming what cannot apply."""
        if backend != "onnx":
            raise InvalidInputError(
                f"backend={backend!r}: OnnxSentenceEncoder is the 'onnx' backend (ONNX Runtime, no torch); for "
                "'torch' or 'openvino' use sentence_transformers.SentenceTransformer."
            )
        model_kwargs, processor_kwargs = dict(model_kwargs or {}), dict(processor_kwargs or {})
        if config_kwargs:
            raise _unsupported("config_kwargs", list(config_kwargs), [], "the ONNX graph is already built; re-run "
                               "`prepare` on a model saved with that config")  # fmt: skip
        if unknown := set(model_kwargs) - set(_MODEL_KWARGS):
            raise _unsupported("model_kwargs", list(unknown), _MODEL_KWARGS, "they configure the torch model")
        if unknown := set(processor_kwargs) - set(_PROCESSOR_KWARGS):
            raise _unsupported("processor_kwargs", list(unknown), _PROCESSOR_KWARGS, "the tokenizer is tokenizer.json")
        chosen = model_kwargs.get("file_name", file_name)
        if file_name is not None and chosen != file_name:
            raise InvalidInputError(f"file_name={file_name!r} and model_kwargs['file_name']={chosen!r} disagree.")
        for key, value, valid in (
            ("provider", model_kwargs.get("provider"), (None, "CPUExecutionProvider")),
            ("export", model_kwargs.get("export"), (None, False)),
            ("device_map", model_kwargs.get("device_map"), (None, *_CPU_DEVICES)),
        ):
            if value not in valid:
                raise InvalidInputError(
                    f"model_kwargs[{key!r}]={value!r} cannot be honoured: valid {list(valid)} (ONNX Runtime on "
                    "the CPU; `prepare` exports and quantizes the model)."
                )
        for key in ("dtype", "torch_dtype"):
            value = model_kwargs.get(key)
            if (str(value) if value is not None else None) not in _DTYPES:
                raise InvalidInputError(
                    f"model_kwargs[{key!r}]={value!r}: the ONNX file fixes the precision (valid: 'auto', float32); "
                    "pick file_name='onnx/model.onnx' for float32 or an INT8 file."
                )
        max_length = processor_kwargs.get("model_max_length")
        positive_int("processor_kwargs['model_max_length']", max_length, allow_none=True)
        return cls(chosen, max_length, processor_kwargs.get("padding_side"), processor_kwargs.get("truncation_side"))


def auth_token(token: bool | str | None, use_auth_token: bool | str | None) -> bool | str | None:
    """ST's deprecated ``use_auth_token``: a FutureWarning, and an error when ``token`` is given too."""
    if use_auth_token is None:
        return token
    warnings.warn(
        "The `use_auth_token` argument is deprecated and will be removed in a future release of SentenceTransformers.",
        FutureWarning,
        stacklevel=4,
    )
    if token is not None:
        raise InvalidInputError(
            "Both `token` and `use_auth_token` are specified. Please only specify the `token` argument."
        )
    return use_auth_token


def hub_options(
    name_or_path: str | Path, cache_folder: str | Path | None, local_files_only: bool, token: bool | str | None
) -> dict[str, Any]:
    """The hub keywords for ``resolve_model``, only those set (a local folder needs none).

    ``cache_folder`` defaults to ``$SENTENCE_TRANSFORMERS_HOME`` as in sentence-transformers.
    """
    if not isinstance(local_files_only, bool):
        raise InvalidInputError(f"local_files_only must be a bool, got {local_files_only!r}.")
    if Path(name_or_path).expanduser().is_dir():
        return {}
    cache_folder = cache_folder if cache_folder is not None else os.environ.get("SENTENCE_TRANSFORMERS_HOME")
    given = {"cache_folder": cache_folder, "local_files_only": local_files_only or None, "token": token}
    return {key: value for key, value in given.items() if value is not None}


def remote_code(root: Path) -> str | None:
    """Where a model folder declares custom code (``auto_map`` in its config or tokenizer config), if it does."""
    for name in ("config.json", "tokenizer_config.json"):
        path = root / name
        auto_map = read_json(path).get("auto_map") if path.is_file() else None
        if auto_map:
            return f"{name} auto_map {auto_map!r:.120}"
    return None


