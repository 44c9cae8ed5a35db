"""Let the installed sentence-transformers 5.x load a folder saved by sentence-transformers 6.

sentence-transformers 6 names its modules ``sentence_transformers.base.modules.*`` and
``sentence_transformers.sentence_transformer.modules.*`` in ``modules.json`` and writes config keys
5.x does not know (``transformer_task``, ``modality_config``, ``embedding_dimension`` ...), which
5.x passes to its constructors. ``loadable`` gives 5.x a view of such a folder: the same files
(symlinked), ``modules.json`` naming ``sentence_transformers.models.<Class>``, and each module
config reduced to the keys its 5.x class declares. The folder itself is never changed; with
sentence-transformers 6 installed (which reads both layouts) the folder is used as it is.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import UnsupportedModelError
from ..layout import read_json

__all__ = ["loadable"]

_ST6_NAMESPACES = ("sentence_transformers.base.modules.", "sentence_transformers.sentence_transformer.modules.")
# Keys sentence-transformers 6 renamed, as 5.x spells them.
_RENAMED = {"embedding_dimension": "word_embedding_dimension"}
# 6.x keys that change nothing for a text model when they hold these values (None: any value).
_IGNORABLE: dict[str, Any] = {
    "transformer_task": "feature-extraction",
    "modality_config": None,
    "module_output_name": None,
    "module_input_name": None,
    "use_residual": False,
}
_POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def loadable(source: Path, work: Path) -> Path:
    """``source``, or a view of it under ``work`` that the installed sentence-transformers 5.x loads."""
    import sentence_transformers

    modules: list[dict[str, Any]] = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    saved_by_6 = any(str(module.get("type", "")).startswith(_ST6_NAMESPACES) for module in modules)
    if _major(sentence_transformers.__version__) >= 6 or not saved_by_6:
        return source
    models = importlib.import_module("sentence_transformers.models")  # 5.x's module namespace
    view = work / "st5-view"
    shutil.copytree(source, view, copy_function=os.symlink)
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        cls = getattr(models, kind, None)
        if cls is None:
            continue  # left as it is: sentence-transformers reports the unknown module itself
        module["type"] = f"sentence_transformers.models.{kind}"
        config_name = getattr(cls, "config_file_name", "config.json")
        path = view / str(module.get("path", "")) / config_name
        if path.is_file():
            _replace(path, _for_5x(cls, read_json(path)))
    _replace(view / "modules.json", modules)
    return view


def _for_5x(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with 6.x's names spelled as 5.x's, reduced to what ``cls.__init__`` takes.

    Filtered by the constructor, not ``cls.config_keys``: 5.x's Pooling keys omit ``pooling_mode``,
    which would silently turn a CLS-pooled model into a mean-pooled one.
    """
    config = {_RENAMED.get(key, key): value for key, value in config.items()}
    modes = config.get("pooling_mode")
    if isinstance(modes, list):  # several modes: 5.x takes them as one boolean per mode
        config.pop("pooling_mode")
        config.update({_POOLING_FLAGS[mode]: True for mode in modes if mode in _POOLING_FLAGS})
    accepted = set(inspect.signature(cls).parameters)
    dropped = {key: value for key, value in config.items() if key not in accepted}
    meaningful = {
        key: value for key, value in dropped.items() if key not in _IGNORABLE or _IGNORABLE[key] not in (None, value)
    }
    if meaningful:
        raise UnsupportedModelError(
            f"This {cls.__name__} module was saved by sentence-transformers 6 with {meaningful}, which the "
            "installed sentence-transformers 5 cannot load. Install sentence-transformers>=6 to prepare it."
        )
    return {key: value for key, value in config.items() if key in accepted}


def _replace(path: Path, data: Any) -> None:
    path.unlink()  # a symlink into the source folder: never write through it
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
