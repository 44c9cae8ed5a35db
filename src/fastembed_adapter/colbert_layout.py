"""A PyLate ColBERT folder on disk: its late-interaction settings and projection, read into frozen dataclasses.

PyLate saves ``modules.json`` with a ``Transformer`` and one or more ``pylate.models.Dense.Dense``
projections, and its settings in ``config_sentence_transformers.json`` (``model_type: "ColBERT"``,
``query_prefix``, ``document_prefix``, ``query_length``, ``document_length``,
``do_query_expansion``, ``attend_to_expansion_tokens``, ``skiplist_words``). Missing settings take
PyLate's defaults (``pylate/models/colbert.py``); nothing else is assumed.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CorruptModelError, UnsupportedModelError
from .layout import (
    Manifest,
    onnx_files_of,
    prompts_of,
    read_json,
    read_manifest,
    read_modules,
    st_model_config,
    transformer_settings,
)
from .modules import DenseModule

__all__ = ["ONNX_CONFIG_NAME", "ColbertLayout", "is_colbert_folder", "read_colbert_layout"]

# next-plaid's settings file beside tokenizer.json (its Rust reader loads the model from it).
ONNX_CONFIG_NAME = "onnx_config.json"
_DEFAULTS: dict[str, Any] = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 32,
    "document_length": 180,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": list(string.punctuation),
}
_TYPES: dict[str, Any] = {
    "query_prefix": str,
    "document_prefix": str,
    "query_length": int,
    "document_length": int,
    "do_query_expansion": bool,
    "attend_to_expansion_tokens": bool,
    "skiplist_words": list,
}
SETTINGS = tuple(_DEFAULTS)


def is_colbert_folder(root: Path) -> bool:
    """A PyLate ColBERT folder: ``model_type: "ColBERT"`` or a PyLate ``Dense`` in ``modules.json``."""
    if st_model_config(root).get("model_type") == "ColBERT":
        return True
    if not (root / "modules.json").is_file():
        return False
    try:
        modules = read_modules(root)
    except (CorruptModelError, OSError):
        return False
    return any(str(module.get("type", "")).startswith("pylate.") for module in modules)


@dataclass(frozen=True)
class ColbertLayout:
    """What the ColBERT runtime needs to know about a model folder, read once."""

    root: Path
    transformer_dir: Path
    projection: tuple[DenseModule, ...] = field(repr=False)
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: tuple[str, ...]
    do_lower_case: bool
    max_seq_length: int | None
    prompts: Mapping[str, str]
    default_prompt_name: str | None
    onnx_files: tuple[str, ...]
    manifest: Manifest | None

    @property
    def dimension(self) -> int:
        """Width of each token vector: the last projection's output."""
        return self.projection[-1].dimension

    def with_overrides(self, **overrides: Any) -> ColbertLayout:
        """A copy with the given settings replaced (``ColBERT(query_length=..., ...)`` arguments); None keeps."""
        values = {name: value for name, value in overrides.items() if value is not None}
        checked = _checked({**{name: getattr(self, name) for name in SETTINGS}, **values}, "the constructor")
        if not checked["do_query_expansion"]:
            checked["attend_to_expansion_tokens"] = False  # as PyLate
        return ColbertLayout(**{**self.__dict__, **checked})


def _checked(settings: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SETTINGS:
        value: Any = settings[name]
        if isinstance(value, tuple):
            value = list(value)
        expected = _TYPES[name]
        if not isinstance(value, expected) or (expected is int and (isinstance(value, bool) or value < 1)):
            raise UnsupportedModelError(
                f"ColBERT setting {name}={value!r} in {where} must be "
                + ("a positive int" if expected is int else f"a {getattr(expected, '__name__', expected)}")
                + "."
            )
        if name == "skiplist_words":
            if not all(isinstance(word, str) for word in value):
                raise UnsupportedModelError(f"ColBERT skiplist_words in {where} must be strings, got {value!r:.80}.")
            value = tuple(value)
        out[name] = value
    return out


def read_colbert_layout(root: Path) -> ColbertLayout:
    """Read a PyLate ColBERT folder; raise ``ModelFolderError`` subclasses naming what is wrong."""
    modules = read_modules(root)
    transformer_dir: Path | None = None
    projection: list[DenseModule] = []
    for module in modules:
        kind = str(module.get("type", ""))
        path = root / str(module.get("path", ""))
        if kind.endswith("Pooling"):
            raise UnsupportedModelError(
                f"{str(root / 'modules.json')!r} has a Pooling module: it is a sentence-embedding model, not a "
                "ColBERT one. Load it with OnnxSentenceEncoder."
            )
        if kind.endswith("Transformer"):
            transformer_dir = path
        elif kind.endswith("Dense") and transformer_dir is not None:
            dense = DenseModule.load(path, read_json(path / "config.json"))
            width = projection[-1].dimension if projection else None
            if width is not None and dense.weight.shape[1] != width:
                raise CorruptModelError(
                    f"{str(path)!r}: the projection takes {dense.weight.shape[1]}-d input but the one before it "
                    f"gives {width}-d vectors: its weights belong to another model."
                )
            projection.append(dense)
        else:
            raise UnsupportedModelError(
                f"Module {kind!r} (modules.json entry {module.get('idx')}) is not supported in a ColBERT model. "
                "Supported: a Transformer, then PyLate Dense projection(s)."
            )
    if transformer_dir is None or not projection:
        raise UnsupportedModelError(
            f"{str(root / 'modules.json')!r} must list a Transformer and at least one Dense projection "
            "(a PyLate ColBERT folder); build one with pylate.models.ColBERT(...).save(...)."
        )
    st_config = st_model_config(root)
    settings = _checked({name: st_config.get(name, default) for name, default in _DEFAULTS.items()}, str(root))
    if not settings["do_query_expansion"]:
        settings["attend_to_expansion_tokens"] = False  # as PyLate
    max_len, lower = transformer_settings(root, transformer_dir)
    return ColbertLayout(
        root=root,
        transformer_dir=transformer_dir,
        projection=tuple(projection),
        **settings,
        do_lower_case=lower,
        max_seq_length=max_len,
        prompts=prompts_of(st_config),
        default_prompt_name=st_config.get("default_prompt_name"),
        onnx_files=onnx_files_of(root),
        manifest=read_manifest(root),
    )
