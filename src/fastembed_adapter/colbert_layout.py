"""A ColBERT folder on disk: its late-interaction settings and projection, read into frozen dataclasses.

Two formats (:class:`ColbertFormat`):

- PyLate saves ``modules.json`` with a ``Transformer`` and one or more ``pylate.models.Dense.Dense``
  projections, and its settings in ``config_sentence_transformers.json`` (``model_type: "ColBERT"``,
  ``query_prefix``, ``document_prefix``, ``query_length``, ``document_length``,
  ``do_query_expansion``, ``attend_to_expansion_tokens``, ``skiplist_words``). Missing settings take
  PyLate's defaults (``pylate/models/colbert.py``).
- sentence-transformers 6's ``MultiVectorEncoder`` saves ``model_type: "MultiVectorEncoder"``, a
  ``Transformer`` whose ``sentence_bert_config.json`` holds ``query_length``, ``document_length`` and
  ``query_expansion``, token-level ``Dense`` projection(s), a ``MultiVectorMask`` (``skiplist_words``,
  ``skiplist_tasks``, ``keep_only_token_ids``) and a token-level ``Normalize``; its prefixes are the
  ``query`` / ``document`` prompts, prepended as text. Missing settings take that class's defaults.

Nothing else is assumed: a setting this runtime cannot reproduce raises ``UnsupportedModelError``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
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

__all__ = ["ONNX_CONFIG_NAME", "ColbertFormat", "ColbertLayout", "is_colbert_folder", "read_colbert_layout"]

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
_MVE_MODULES = "sentence_transformers.multi_vector_encoder."
_TOKENS = "token_embeddings"


class ColbertFormat(str, Enum):
    """Whose save format a ColBERT folder is in (and so whose tokenization and masking it follows)."""

    PYLATE = "pylate"
    MULTI_VECTOR_ENCODER = "sentence-transformers"


def colbert_format(root: Path) -> ColbertFormat | None:
    """The folder's ColBERT format, or None when it is not a ColBERT folder."""
    model_type = st_model_config(root).get("model_type")
    if model_type == "MultiVectorEncoder":
        return ColbertFormat.MULTI_VECTOR_ENCODER
    if model_type == "ColBERT":
        return ColbertFormat.PYLATE
    if not (root / "modules.json").is_file():
        return None
    try:
        types = [str(module.get("type", "")) for module in read_modules(root)]
    except (CorruptModelError, OSError):
        return None
    if any(kind.startswith(_MVE_MODULES) for kind in types):
        return ColbertFormat.MULTI_VECTOR_ENCODER
    if any(kind.startswith("pylate.") for kind in types):
        return ColbertFormat.PYLATE
    return None


def is_colbert_folder(root: Path) -> bool:
    """A ColBERT folder: PyLate's (``model_type: "ColBERT"`` or a PyLate ``Dense``) or a ``MultiVectorEncoder``'s."""
    return colbert_format(root) is not None


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
    format: ColbertFormat = ColbertFormat.PYLATE
    # MultiVectorEncoder only: the expansion token (None: mask, else EOS), the sides the skiplist drops
    # tokens on, and whether the pipeline ends with a token-level Normalize.
    expansion_token: str | None = None
    skiplist_tasks: tuple[str, ...] = ("document",)
    normalize: bool = False

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
    """Read a PyLate or ``MultiVectorEncoder`` ColBERT folder; raise ``ModelFolderError`` subclasses naming faults."""
    if colbert_format(root) is ColbertFormat.MULTI_VECTOR_ENCODER:
        return _read_multi_vector_layout(root)
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
    return ColbertLayout(**_folder_fields(root, transformer_dir, st_config), projection=tuple(projection), **settings)


def _folder_fields(root: Path, transformer_dir: Path, st_config: Mapping[str, Any]) -> dict[str, Any]:
    """The layout fields both formats read the same way: tokenizer settings, prompts, files, manifest."""
    max_len, lower = transformer_settings(root, transformer_dir)
    return {
        "root": root,
        "transformer_dir": transformer_dir,
        "do_lower_case": lower,
        "max_seq_length": max_len,
        "prompts": prompts_of(st_config),
        "default_prompt_name": st_config.get("default_prompt_name"),
        "onnx_files": onnx_files_of(root),
        "manifest": read_manifest(root),
    }


# sentence_bert_config.json keys of a MultiVectorEncoder's Transformer this reader knows.
_TRANSFORMER_KEYS = frozenset(
    {"transformer_task", "modality_config", "module_output_name", "processing_kwargs", "unpad_inputs",
     "query_length", "document_length", "query_expansion", "max_seq_length", "do_lower_case"}
)  # fmt: skip
_TEXT_FORWARD = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
_MASK_KEYS = frozenset({"skiplist_words", "skiplist_tasks", "keep_only_token_ids"})
_TASKS = ("query", "document")


def _unsupported(where: Path | str, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{str(where)!r}: {what} cannot be reproduced by OnnxColbertEncoder.")


def _length(value: Any, name: str, where: Path) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UnsupportedModelError(f"{str(where)!r}: {name}={value!r} must be a positive int or null.")
    return value


def _expansion(value: Any, where: Path) -> dict[str, Any] | None:
    """The Transformer's ``query_expansion`` (``{"strategy", "attend", "token", "length"}``), checked."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"strategy", "attend", "token", "length"}:
        raise UnsupportedModelError(
            f"{str(where)!r}: query_expansion={value!r:.120} must be null or a dict with keys "
            "strategy, attend, token, length."
        )
    if value.get("strategy") != "fixed":
        raise _unsupported(
            where, f"query_expansion strategy {value.get('strategy')!r} (only 'fixed', classic ColBERT, is supported)"
        )
    attend, token = value.get("attend", False), value.get("token")
    if not isinstance(attend, bool) or not (token is None or isinstance(token, str)):
        raise UnsupportedModelError(
            f"{str(where)!r}: query_expansion attend={attend!r} must be a bool and token={token!r} a str or null."
        )
    length = _length(value.get("length"), "query_expansion['length']", where)
    if length is None:
        raise UnsupportedModelError(f"{str(where)!r}: query_expansion needs a positive int 'length'.")
    return {"attend": attend, "token": token, "length": length}


def _transformer_config(root: Path, transformer_dir: Path) -> dict[str, Any]:
    path = transformer_dir / "sentence_bert_config.json"
    config = read_json(path) if path.is_file() else {}
    unknown = sorted(set(config) - _TRANSFORMER_KEYS)
    if unknown:
        raise _unsupported(path, f"Transformer settings {unknown}")
    if config.get("transformer_task", "feature-extraction") != "feature-extraction":
        raise _unsupported(path, f"transformer_task {config['transformer_task']!r} (only 'feature-extraction')")
    if config.get("modality_config") not in (None, _TEXT_FORWARD):
        raise _unsupported(path, f"modality_config {config['modality_config']!r:.120} (only text via forward)")
    if config.get("module_output_name") not in (None, _TOKENS):
        raise _unsupported(path, f"module_output_name {config['module_output_name']!r}")
    if config.get("processing_kwargs"):
        raise _unsupported(path, f"processing_kwargs {config['processing_kwargs']!r:.120}")
    return config


def _mask_config(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``MultiVectorMask``'s skiplist words and tasks."""
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    unknown = sorted(set(config) - _MASK_KEYS)
    if unknown:
        raise _unsupported(path, f"MultiVectorMask settings {unknown}")
    if config.get("keep_only_token_ids"):
        raise _unsupported(path, f"MultiVectorMask keep_only_token_ids={config['keep_only_token_ids']!r:.80}")
    words = config.get("skiplist_words") or []
    tasks = config.get("skiplist_tasks")
    tasks = [tasks] if isinstance(tasks, str) else (["document"] if tasks is None else tasks)
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise UnsupportedModelError(f"{str(path)!r}: skiplist_words must be a list of strings, got {words!r:.80}.")
    if not isinstance(tasks, list) or not set(tasks) <= set(_TASKS):
        raise _unsupported(path, f"skiplist_tasks {tasks!r} (valid: subsets of {list(_TASKS)})")
    return tuple(words), tuple(str(task) for task in tasks)


def _token_dense(path: Path) -> DenseModule:
    """A sentence-transformers 6 ``Dense`` that reads and writes ``token_embeddings``."""
    config = dict(read_json(path / "config.json"))
    for key in ("module_input_name", "module_output_name"):
        value = config.pop(key, None)
        if value not in (None, _TOKENS):
            raise _unsupported(path, f"Dense {key}={value!r} (a ColBERT projection maps token_embeddings)")
    return DenseModule.load(path, config)


def _read_multi_vector_layout(root: Path) -> ColbertLayout:
    """A ``MultiVectorEncoder.save()`` folder: Transformer, Dense(s), MultiVectorMask, optional Normalize."""
    transformer_dir: Path | None = None
    projection: list[DenseModule] = []
    mask: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    normalize = False
    for module in read_modules(root):
        kind = str(module.get("type", ""))
        path = root / str(module.get("path", ""))
        name = kind.rsplit(".", 1)[-1]
        if normalize:
            raise _unsupported(root / "modules.json", f"module {kind!r} after the token-level Normalize")
        if name == "Transformer" and transformer_dir is None:
            transformer_dir = path
        elif name == "Dense" and transformer_dir is not None and mask is None:
            dense = _token_dense(path)
            if projection and dense.weight.shape[1] != projection[-1].dimension:
                raise CorruptModelError(
                    f"{str(path)!r}: the projection takes {dense.weight.shape[1]}-d input but the one before it "
                    f"gives {projection[-1].dimension}-d vectors: its weights belong to another model."
                )
            projection.append(dense)
        elif name == "MultiVectorMask" and mask is None and projection:
            mask = _mask_config(path)
        elif name == "Normalize" and transformer_dir is not None:
            config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
            if config.get("module_input_name") != _TOKENS or config.get("module_output_name", _TOKENS) != _TOKENS:
                raise _unsupported(path, f"a Normalize of {config.get('module_input_name')!r} (not token_embeddings)")
            normalize = True
        else:
            raise UnsupportedModelError(
                f"Module {kind!r} (modules.json entry {module.get('idx')}) is not supported here. Supported in a "
                "MultiVectorEncoder folder: a Transformer, token-level Dense projection(s), one MultiVectorMask, "
                "then an optional token-level Normalize."
            )
    if transformer_dir is None or not projection or mask is None:
        raise UnsupportedModelError(
            f"{str(root / 'modules.json')!r} must list a Transformer, at least one Dense projection and a "
            "MultiVectorMask (MultiVectorEncoder(modules=[...]).save(...) writes them)."
        )
    st_config = st_model_config(root)
    if st_config.get("similarity_fn_name") not in (None, "maxsim"):
        raise _unsupported(root, f"similarity_fn_name {st_config['similarity_fn_name']!r} (only maxsim)")
    config = _transformer_config(root, transformer_dir)
    fields = _folder_fields(root, transformer_dir, st_config)
    max_len = fields["max_seq_length"]
    expansion = _expansion(config.get("query_expansion"), transformer_dir)
    query_cap = _length(config.get("query_length"), "query_length", transformer_dir)
    document_cap = _length(config.get("document_length"), "document_length", transformer_dir)
    if expansion is not None and query_cap is not None and query_cap < expansion["length"]:
        raise UnsupportedModelError(
            f"{str(transformer_dir)!r}: query_length={query_cap} is smaller than the expansion length "
            f"{expansion['length']} (sentence-transformers refuses this too)."
        )
    query_length = expansion["length"] if expansion is not None else (query_cap or max_len)
    document_length = document_cap or max_len
    if query_length is None or document_length is None:
        raise UnsupportedModelError(
            f"{str(transformer_dir)!r}: no query_length/document_length and no max sequence length to fall back on."
        )
    words, tasks = mask
    settings = _checked(
        {
            "query_prefix": "",  # the prefixes are the "query"/"document" prompts, prepended as text
            "document_prefix": "",
            "query_length": query_length,
            "document_length": document_length,
            "do_query_expansion": expansion is not None,
            "attend_to_expansion_tokens": bool(expansion and expansion["attend"]),
            "skiplist_words": list(words),
        },
        str(root),
    )
    return ColbertLayout(
        **fields,
        projection=tuple(projection),
        **settings,
        format=ColbertFormat.MULTI_VECTOR_ENCODER,
        expansion_token=expansion["token"] if expansion is not None else None,
        skiplist_tasks=tasks,
        normalize=normalize,
    )
