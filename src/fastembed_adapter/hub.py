"""Find a model folder and the ONNX file to run: a local folder, or a hub repo (only the needed files)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .cpu import detect_target, int8_file_name
from .errors import ModelNotFoundError

__all__ = ["check_repo_id", "choose_onnx_file", "resolve_model"]

FP32_FILE = "onnx/model.onnx"
# Everything but the weights: configs, tokenizer files, module folders' configs, the manifest.
_META_PATTERNS = ["*.json", "*.txt", "*.model", "*/*.json", "*/*.txt"]


def choose_onnx_file(available: Iterable[str], file_name: str | None, where: str) -> str:
    """Pick the ONNX file: ``file_name`` if given, else this CPU's INT8 file, else ``onnx/model.onnx``."""
    files = sorted(set(available))
    if file_name is not None:
        if file_name not in files:
            raise ModelNotFoundError(f"{where} has no ONNX file {file_name!r}. Available: {files or 'none'}.")
        return file_name
    target = detect_target()
    preferred = [int8_file_name(target)] if target is not None else []
    for candidate in [*preferred, FP32_FILE]:
        if candidate in files:
            return candidate
    if len(files) == 1:
        return files[0]
    if not files:
        raise ModelNotFoundError(
            f"{where} has no onnx/*.onnx file. Convert it first: prepare --model {where} --output DIR"
        )
    raise ModelNotFoundError(f"{where} has several ONNX files and none suits this CPU; pass file_name= one of {files}.")


def resolve_model(name_or_path: str | Path, file_name: str | None, revision: str | None = None) -> tuple[Path, str]:
    """Return (local folder, ONNX file relative to it), downloading from the hub only what is needed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        onnx_dir = path / "onnx"
        files = [f"onnx/{p.name}" for p in onnx_dir.glob("*.onnx")] if onnx_dir.is_dir() else []
        return path, choose_onnx_file(files, file_name, str(path))
    return _download(check_repo_id(name_or_path), file_name, revision)


def check_repo_id(name_or_path: str | Path) -> str:
    """Return ``name_or_path`` as a hub repo id (``owner/name``), or raise: it is not a folder either."""
    name = str(name_or_path)
    if Path(name).expanduser().exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"Model {name!r} is neither a local folder nor a hub repo id ('owner/name').")
    return name


def _download(repo_id: str, file_name: str | None, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import HfApi, snapshot_download

    try:
        root = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_META_PATTERNS))
        try:
            listed = HfApi().list_repo_files(repo_id, revision=revision)
        except Exception:  # offline: fall back to what the cache already has
            listed = [f"onnx/{p.name}" for p in (root / "onnx").glob("*.onnx")]
        files = [f for f in listed if f.startswith("onnx/") and f.endswith(".onnx")]
        chosen = choose_onnx_file(files, file_name, repo_id)
        snapshot_download(repo_id, revision=revision, allow_patterns=[chosen, f"{chosen}_data", f"{chosen}.data"])
    except ModelNotFoundError:
        raise
    except Exception as exc:  # huggingface_hub raises many classes: offline, 404, auth, HTTP
        raise ModelNotFoundError(
            f"Could not fetch {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the repo id and your network, or pass a local folder."
        ) from exc
    return root, chosen
