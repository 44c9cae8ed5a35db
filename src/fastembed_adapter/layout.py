"""The model folder on disk, read into frozen dataclasses.

A folder is a sentence-transformers folder (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``, ``tokenizer.json``)
plus ``onnx/*.onnx`` files (and ``openvino/openvino_model.xml``/``.bin``, the layout of sentence-transformers'
``backend="openvino"``) and, when ``prepare`` wrote it, the manifest ``fastembed_adapter.json``.
Unknown modules or pooling modes are rejected here rather than guessed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .cpu import QuantTarget
from .errors import CorruptModelError, ModelNotFoundError, UnsupportedModelError, access_error
from .modules import DenseModule, LayerNormModule, NormalizeModule, PostModule

__all__ = [
    "EXTERNAL_DATA_SUFFIX",
    "FP32_FILE",
    "MANIFEST_NAME",
    "OPENVINO_FILE",
    "REPORT_JSON",
    "REPORT_MD",
    "FileEntry",
    "Manifest",
    "ModelLayout",
    "PoolingConfig",
    "PoolingMode",
    "external_data_path",
    "file_sha256",
    "int8_file_name",
    "onnx_size",
    "read_json",
    "read_layout",
    "read_modules",
    "transformer_settings",
    "weights_path",
]

MANIFEST_NAME = "fastembed_adapter.json"
REPORT_JSON = "report.json"
REPORT_MD = "REPORT.md"
FP32_FILE = "onnx/model.onnx"
# The OpenVINO IR ``prepare`` converts from FP32_FILE (FP32 weights in ``openvino_model.bin`` beside it).
OPENVINO_FILE = "openvino/openvino_model.xml"
# ``prepare`` stores an ONNX file's weights beside it as ``<file>.onnx_data`` (optimum's and the hub's
# convention): ONNX Runtime then maps them from disk instead of parsing and copying them.
EXTERNAL_DATA_SUFFIX = "_data"


class PoolingMode(str, Enum):
    """Pooling modes of sentence-transformers' ``Pooling`` module, in its concatenation order."""

    CLS = "cls"
    MAX = "max"
    MEAN = "mean"
    MEAN_SQRT_LEN = "mean_sqrt_len_tokens"
    WEIGHTED_MEAN = "weightedmean"
    LAST_TOKEN = "lasttoken"


# config.json key of each mode, as ``Pooling.save`` writes it.
_POOLING_KEYS = {
    PoolingMode.CLS: "pooling_mode_cls_token",
    PoolingMode.MAX: "pooling_mode_max_tokens",
    PoolingMode.MEAN: "pooling_mode_mean_tokens",
    PoolingMode.MEAN_SQRT_LEN: "pooling_mode_mean_sqrt_len_tokens",
    PoolingMode.WEIGHTED_MEAN: "pooling_mode_weightedmean_tokens",
    PoolingMode.LAST_TOKEN: "pooling_mode_lasttoken",
}
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "LayerNorm", "Normalize")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from ``path``, raising our errors for a missing or broken file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"Missing file {str(path)!r} in the model folder.") from exc
    except PermissionError as exc:
        raise access_error(exc) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"Cannot read {str(path)!r} as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptModelError(f"{str(path)!r} must hold a JSON object, found {type(data).__name__}.")
    return data


def int8_file_name(target: QuantTarget) -> str:
    """Relative path of the INT8 file for ``target``, as sentence-transformers' ``quantize.py`` names it.

    AVX2 gets unsigned weights (``quint8``), like optimum's ``avx2`` config: u8 x u8 products
    cannot saturate the 16-bit intermediate sums of AVX2's ``vpmaddubsw``.
    """
    kind = "quint8" if target is QuantTarget.AVX2 else "qint8"
    return f"onnx/model_{kind}_{target.value}.onnx"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def external_data_path(path: Path) -> Path:
    """Where ``path``'s weights live when stored outside the protobuf: ``<file>.onnx_data`` beside it."""
    return path.with_name(path.name + EXTERNAL_DATA_SUFFIX)


def weights_path(path: Path) -> Path:
    """The weights file of a model file: ``<stem>.bin`` beside an OpenVINO ``.xml``, else ``<file>.onnx_data``."""
    return path.with_suffix(".bin") if path.suffix == ".xml" else external_data_path(path)


def onnx_size(path: Path) -> int:
    """Bytes of a model on disk: the ONNX file (or OpenVINO ``.xml``) plus its weights file, if any."""
    data = weights_path(path)
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


@dataclass(frozen=True)
class PoolingConfig:
    """What ``1_Pooling/config.json`` says: the modes (concatenated in this order) and ``include_prompt``."""

    dimension: int
    modes: tuple[PoolingMode, ...]
    include_prompt: bool = True

    def __post_init__(self) -> None:
        if not self.modes:
            raise UnsupportedModelError("The pooling config names no pooling mode.")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PoolingConfig:
        """Build from the config dict: ``pooling_mode`` (str or list, ST >= 5) or the legacy boolean keys."""
        named = data.get("pooling_mode")
        if named is not None:
            names = [named] if isinstance(named, str) else list(named)
            try:
                modes = [PoolingMode(name) for name in names]
            except ValueError:
                valid = ", ".join(mode.value for mode in PoolingMode)
                raise UnsupportedModelError(f"Unknown pooling mode {named!r}. Valid modes: {valid}.") from None
        else:
            modes = [mode for mode, key in _POOLING_KEYS.items() if data.get(key, False)]
            unknown = [
                key
                for key, value in data.items()
                if key.startswith("pooling_mode_") and value and key not in _POOLING_KEYS.values()
            ]
            if unknown:
                valid = ", ".join(_POOLING_KEYS.values())
                raise UnsupportedModelError(f"Unknown pooling option(s) {unknown}. Valid options: {valid}.")
            modes = modes or [PoolingMode.MEAN]  # ST's Pooling default when no mode is set
        dimension = data.get("embedding_dimension", data.get("word_embedding_dimension"))
        if not isinstance(dimension, int) or dimension < 1:
            raise UnsupportedModelError(f"The pooling config has no valid embedding dimension: {dimension!r}.")
        return cls(dimension=dimension, modes=tuple(modes), include_prompt=bool(data.get("include_prompt", True)))

    @property
    def output_dimension(self) -> int:
        """Size of the pooled vector: one ``dimension`` per enabled mode."""
        return self.dimension * len(self.modes)


@dataclass(frozen=True)
class FileEntry:
    """One file listed in the manifest."""

    sha256: str
    size: int


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# Files ``prepare`` writes that no vector depends on (besides ONNX files other than the one loaded).
_DESCRIPTIVE = frozenset({REPORT_JSON, REPORT_MD, "README.md"})
_EXTRA_LAYOUTS = ("transformers.js/",)
_TORCH_WEIGHTS = (".safetensors", ".bin")
_MODEL_FOLDERS = ("onnx/", "openvino/")  # one model file (and its weights) of these is loaded; the rest is not read


def _changes_vectors(relative: str, chosen: set[str]) -> bool:
    if relative.startswith(_MODEL_FOLDERS):
        return relative in chosen
    if "/" not in relative and relative.endswith(_TORCH_WEIGHTS):  # the transformer's PyTorch weights
        return False  # (--torch-weights): the ONNX file holds its own, so they never reach a vector here
    return relative not in _DESCRIPTIVE and not relative.startswith(_EXTRA_LAYOUTS)


@dataclass(frozen=True)
class Manifest:
    """``fastembed_adapter.json``: what ``prepare`` wrote and how to check it."""

    files: Mapping[str, FileEntry]
    default_file: str | None
    target: str | None
    data: Mapping[str, Any] = field(repr=False)  # the whole JSON, as written (``info --json``)
    recipe: str | None = None
    source_id: str | None = None
    source_revision: str | None = None
    quality_target: Mapping[str, float] = field(default_factory=dict)
    fp32_fallback: str | None = None
    validation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per model file
    # {CPU ISA (QuantTarget value): runtime} where a side-by-side benchmark measured that runtime fastest on
    # that ISA (prepare's quick benchmark: batch-1 p50 and batch-32 throughput both): what ``runtime="auto"`` follows.
    fastest_runtime: Mapping[str, str] = field(default_factory=dict)
    # {CPU ISA: ONNX file} the same benchmark measured fastest on that ISA (the FP32 file where it beat the
    # INT8 one at batch 1 and batch 32 both): what the encoders load there when no file_name is given.
    fastest_file: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Parse the manifest at ``path``."""
        data = read_json(path)
        try:
            files = {name: FileEntry(str(e["sha256"]), int(e["size"])) for name, e in data["files"].items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CorruptModelError(f"Manifest {str(path)!r} has no valid 'files' table: {exc!r}") from exc
        source, validation, goal = (_object(data, key) for key in ("source", "validation", "quality_target"))
        return cls(
            files=MappingProxyType(files),
            default_file=data.get("default_file"),
            target=data.get("target"),
            data=MappingProxyType(data),
            recipe=data.get("recipe"),
            source_id=source.get("id"),
            source_revision=source.get("revision"),
            quality_target=MappingProxyType(goal),
            fp32_fallback=data.get("fp32_fallback"),
            validation=MappingProxyType({str(k): v for k, v in validation.items() if isinstance(v, dict)}),
            fastest_runtime=MappingProxyType({str(k): str(v) for k, v in _object(data, "fastest_runtime").items()}),
            fastest_file=MappingProxyType({str(k): str(v) for k, v in _object(data, "fastest_file").items()}),
        )

    def verify(self, root: Path, name: str) -> None:
        """Check size and sha256 of every listed file that changes a vector, against the manifest.

        That is the model file ``name`` and its weights (``.onnx_data``, or an OpenVINO ``.xml``'s
        ``.bin``), the tokenizer files, every config and module weight file; the other ONNX and
        OpenVINO files, the reports and the extra layouts are not read. Files the manifest does not
        list pass; a listed file that is missing fails.
        """
        chosen = {name, weights_path(root / name).relative_to(root).as_posix()}
        for relative in sorted(self.files):
            if not _changes_vectors(relative, chosen):
                continue
            path = root / relative
            entry = self.files[relative]
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{str(path)!r} is missing: the manifest lists it ({entry.size} bytes). "
                    "Copy the whole model folder, or re-run `prepare`."
                )
            size = path.stat().st_size
            if size != entry.size or file_sha256(path) != entry.sha256:
                raise CorruptModelError(
                    f"{str(path)!r} does not match the manifest ({size} bytes vs {entry.size} expected, "
                    "or a different sha256): the file is truncated or was changed. Re-run `prepare` "
                    "or re-download the model folder."
                )


@dataclass(frozen=True)
class ModelLayout:
    """Everything the runtime needs to know about a model folder, read once."""

    root: Path
    pooling: PoolingConfig
    post_modules: tuple[PostModule, ...]
    max_seq_length: int | None
    do_lower_case: bool
    prompts: Mapping[str, str]
    default_prompt_name: str | None
    similarity_fn_name: str | None
    truncate_dim: int | None
    modules: tuple[str, ...]
    onnx_files: tuple[str, ...]
    manifest: Manifest | None

    @property
    def normalize(self) -> bool:
        """Whether the model ends with a ``Normalize`` module."""
        return any(isinstance(module, NormalizeModule) for module in self.post_modules)

    @property
    def ends_in_normalize(self) -> bool:
        """Whether the last module is a ``Normalize`` (TEI's ``normalize: false`` leaves it out)."""
        return bool(self.post_modules) and isinstance(self.post_modules[-1], NormalizeModule)

    @property
    def before_final_normalize(self) -> tuple[PostModule, ...]:
        """The post-pooling modules without the trailing ``Normalize`` ones."""
        modules = list(self.post_modules)
        while modules and isinstance(modules[-1], NormalizeModule):
            modules.pop()
        return tuple(modules)

    @property
    def dimension(self) -> int:
        """Size of the sentence embedding: the last Dense/LayerNorm's, else the pooled size."""
        sized = [module for module in self.post_modules if not isinstance(module, NormalizeModule)]
        return sized[-1].dimension if sized else self.pooling.output_dimension


def read_modules(root: Path) -> list[dict[str, Any]]:
    """``modules.json`` as a list of module entries sorted by ``idx``; errors name the file."""
    path = root / "modules.json"
    if not path.exists():
        raise ModelNotFoundError(
            f"{str(root)!r} has no modules.json, so it is not a sentence-transformers model folder. "
            "Point at a folder written by `prepare` or by SentenceTransformer.save()."
        )
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise access_error(exc) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"Cannot read {str(path)!r} as JSON: {exc}") from exc
    if not isinstance(modules, list):
        raise CorruptModelError(f"{str(path)!r} must hold a list of modules, found {type(modules).__name__}.")
    for index, module in enumerate(modules):
        if not isinstance(module, dict) or not isinstance(module.get("idx", 0), int):
            raise CorruptModelError(
                f"{str(path)!r} entry {index} must be an object with an integer 'idx', found {module!r:.80}."
            )
    return sorted(modules, key=lambda module: int(module.get("idx", 0)))


def _check_width(module: DenseModule | LayerNormModule, width: int, folder: Path) -> int:
    """The module's output width, after checking it takes ``width`` inputs (else its weights are foreign)."""
    found = int(module.weight.shape[1] if isinstance(module, DenseModule) else module.weight.shape[0])
    if found != width:
        raise CorruptModelError(
            f"{str(folder)!r}: the module takes {found}-d input but the module before it gives {width}-d "
            "vectors: its weights belong to another model. Re-run `prepare` or restore the folder."
        )
    return module.dimension


def transformer_settings(root: Path, transformer_dir: Path) -> tuple[int | None, bool]:
    """``max_seq_length`` and ``do_lower_case`` the way sentence-transformers' Transformer resolves them."""
    config: dict[str, Any] = {}
    for candidate in (transformer_dir / "sentence_bert_config.json", root / "sentence_bert_config.json"):
        if candidate.exists():
            config = read_json(candidate)
            break
    max_len = config.get("max_seq_length")
    if max_len is None:
        # Same fallback as ST: min(model max positions, tokenizer model_max_length) when both are known.
        limits = []
        for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
            path = transformer_dir / name
            value = read_json(path).get(key) if path.exists() else None
            if isinstance(value, int) and 0 < value < 1_000_000:
                limits.append(value)
        max_len = min(limits) if limits else None
    return (int(max_len) if max_len is not None else None), bool(config.get("do_lower_case", False))


def st_model_config(root: Path) -> dict[str, Any]:
    """``config_sentence_transformers.json`` (prompts, similarity, ColBERT settings), or ``{}``."""
    path = root / "config_sentence_transformers.json"
    return read_json(path) if path.is_file() else {}


def prompts_of(st_config: Mapping[str, Any]) -> Mapping[str, str]:
    """The config's prompts by name (a ``None`` prompt left out), read-only."""
    prompts = st_config.get("prompts") or {}
    return MappingProxyType({str(k): str(v) for k, v in prompts.items() if v is not None})


def onnx_files_of(root: Path) -> tuple[str, ...]:
    """The folder's ``onnx/*.onnx`` files, relative, sorted."""
    onnx_dir = root / "onnx"
    return tuple(sorted(f"onnx/{p.name}" for p in onnx_dir.glob("*.onnx"))) if onnx_dir.is_dir() else ()


def read_manifest(root: Path) -> Manifest | None:
    """The manifest ``prepare`` wrote, or None for a folder without one."""
    path = root / MANIFEST_NAME
    return Manifest.read(path) if path.exists() else None


def read_layout(root: Path) -> ModelLayout:
    """Read a model folder; raise ``ModelFolderError`` subclasses naming what is wrong."""
    if not root.is_dir():
        raise ModelNotFoundError(f"Model folder {str(root)!r} does not exist or is not a directory.")
    pooling: PoolingConfig | None = None
    post: list[PostModule] = []
    width = 0
    transformer_dir = root
    modules = read_modules(root)
    if not any(str(module.get("type", "")).endswith("Pooling") for module in modules):
        raise UnsupportedModelError(
            f"{str(root / 'modules.json')!r} has no Pooling module, so it is not a sentence-embedding model. "
            "A PyLate ColBERT model runs with OnnxColbertEncoder (prepare it with --kind colbert)."
        )
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_MODULES:
            raise UnsupportedModelError(
                f"Module {module.get('type')!r} (modules.json entry {module.get('idx')}) is not supported. "
                f"Supported modules: {', '.join(_SUPPORTED_MODULES)}."
            )
        path = root / str(module.get("path", ""))
        if kind == "Transformer":
            transformer_dir = path
        elif kind == "Pooling":
            pooling = PoolingConfig.from_json(read_json(path / "config.json"))
            width = pooling.output_dimension
        elif pooling is None:
            raise UnsupportedModelError(f"Module {module.get('type')!r} comes before the Pooling module.")
        elif kind == "Normalize":
            post.append(NormalizeModule())
        else:
            sized: DenseModule | LayerNormModule
            if kind == "Dense":
                sized = DenseModule.load(path, read_json(path / "config.json"))
            else:
                sized = LayerNormModule.load(path)
            width = _check_width(sized, width, path)
            post.append(sized)
    assert pooling is not None  # guaranteed by the check above; for the type checker
    max_len, lower = transformer_settings(root, transformer_dir)
    st_config = st_model_config(root)
    return ModelLayout(
        root=root,
        pooling=pooling,
        post_modules=tuple(post),
        max_seq_length=max_len,
        do_lower_case=lower,
        prompts=prompts_of(st_config),
        default_prompt_name=st_config.get("default_prompt_name"),
        similarity_fn_name=st_config.get("similarity_fn_name"),
        truncate_dim=st_config.get("truncate_dim"),
        modules=tuple(str(module.get("type", "")) for module in modules),
        onnx_files=onnx_files_of(root),
        manifest=read_manifest(root),
    )
