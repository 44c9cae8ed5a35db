"""Find a model folder and the model file to run: a local folder, or a hub repo (only the needed files).

The file depends on the runtime: an ``onnx/*.onnx`` file for ONNX Runtime; for OpenVINO the IR
(``openvino/openvino_model.xml`` + ``.bin``, sentence-transformers' layout), else the FP32 ONNX file.
From the hub only that file and its weights are fetched, beside the configs and the manifest.

Every hub failure is translated here, at the one place we call ``huggingface_hub``, into a
``ModelFolderError`` that names its cause (offline and not cached, no such repo, gated or refused,
unknown revision, hub unreachable) and the fix; callers never see a ``huggingface_hub`` exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .cpu import detect_target
from .errors import ModelFolderError, ModelNotFoundError
from .layout import FP32_FILE, OPENVINO_FILE, int8_file_name, read_manifest, weights_path

__all__ = [
    "HubOptions",
    "check_model_source",
    "check_repo_id",
    "choose_onnx_file",
    "download_snapshot",
    "hub_error",
    "resolve_model",
]

# Everything but the weights: configs, tokenizer files, module folders' configs, the manifest.
# Configs, tokenizer files and module weights (``1_Dense/model.safetensors``); not the root weights.
_META_PATTERNS = ["*.json", "*.txt", "*.model", "*/*.json", "*/*.txt", "*/*.safetensors"]
# The model files a snapshot may already hold (the listing offline): ONNX files, OpenVINO IRs and weights.
_MODEL_PATTERNS = ["onnx/*.onnx", "openvino/*.xml", "openvino/*.bin"]
_REPO_ID = re.compile(r"\w[\w.-]*/[\w.-]+")
_EXAMPLE_ID = "sentence-transformers/all-MiniLM-L6-v2"


def choose_onnx_file(
    available: Iterable[str], file_name: str | None, where: str, fastest: Mapping[str, str] | None = None
) -> str:
    """Pick the ONNX file: ``file_name`` if given, else the one measured fastest on this CPU, else its INT8 file.

    ``fastest`` is the manifest's ``fastest_file`` (``{ISA: file}``, what ``prepare``'s benchmark measured:
    the FP32 file where it beat the INT8 one at batch 1 and batch 32 both); without an entry for this
    CPU's ISA the choice is this CPU's INT8 file, else ``onnx/model.onnx``.
    """
    files = sorted(set(available))
    if file_name is not None:
        if file_name not in files:
            raise ModelNotFoundError(f"{where} has no ONNX file {file_name!r}. Available: {files or 'none'}.")
        return file_name
    target = detect_target()
    measured = (fastest or {}).get(target.value) if target is not None else None
    preferred = [measured] if measured is not None else []
    preferred += [int8_file_name(target)] if target is not None else []
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


@dataclass(frozen=True)
class HubOptions:
    """Where and how hub downloads happen: sentence-transformers' ``cache_folder``, ``local_files_only``, ``token``."""

    cache_folder: str | Path | None = None
    local_files_only: bool = False
    token: bool | str | None = None


def resolve_model(
    name_or_path: str | Path,
    file_name: str | None,
    revision: str | None = None,
    *,
    runtime: str | None = None,
    cache_folder: str | Path | None = None,
    local_files_only: bool = False,
    token: bool | str | None = None,
) -> tuple[Path, str]:
    """Return (local folder, model file relative to it), downloading from the hub only what is needed.

    ``runtime`` (a ``session.Runtime`` value; None: ``"onnxruntime"``) decides the file: for
    ``"openvino"`` the OpenVINO IR, else the FP32 ONNX file (``openvino_session.choose_openvino_file``);
    for ``"auto"`` the same where the manifest records OpenVINO fastest on this CPU
    (``session.resolve_runtime``), else ``choose_onnx_file``'s. ``cache_folder``, ``local_files_only``
    and ``token`` mean what they mean to sentence-transformers (and huggingface_hub); a local folder
    ignores them.

    Raises:
        ModelNotFoundError: no such folder, repo or file; a hub repo without the OpenVINO IR (or its
            ``.bin``) that ``file_name`` names, or that ``"auto"`` chose from its manifest.
    """
    source = check_model_source(name_or_path)
    if isinstance(source, Path):
        if _runs_openvino(runtime, source, file_name):
            from .openvino_session import choose_openvino_file  # imports session and onnxruntime: only when used

            manifest = read_manifest(source)
            return source, choose_openvino_file(source, file_name, manifest.files if manifest is not None else ())
        onnx_dir = source / "onnx"
        files = [f"onnx/{p.name}" for p in onnx_dir.glob("*.onnx")] if onnx_dir.is_dir() else []
        manifest = read_manifest(source)
        if manifest is not None:  # a listed file that is gone is chosen as before, and the check reports it
            files += [name for name in manifest.files if name.startswith("onnx/") and name.endswith(".onnx")]
        fastest = manifest.fastest_file if manifest is not None else None
        return source, choose_onnx_file(files, file_name, str(source), fastest)
    return _download(source, file_name, revision, HubOptions(cache_folder, local_files_only, token), runtime)


def check_model_source(name_or_path: str | Path) -> Path | str:
    """Classify a model argument without touching the network: a local folder (``Path``) or a hub id (``str``).

    Raises:
        ModelNotFoundError: a file instead of a folder, a path that does not exist, or a name that is
            neither (a bare ``all-MiniLM-L6-v2`` is not a hub id: ids are ``owner/name``).
    """
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        parent = path.parent if (path.parent / "modules.json").is_file() else None
        hint = f"pass its folder {str(parent)!r}" if parent is not None else "pass the folder that holds modules.json"
        raise ModelNotFoundError(
            f"Model {name!r} is a file, not a model folder: {hint}, or a hub repo id (owner/name)."
        )
    if isinstance(name_or_path, Path) or name.startswith((".", "/", "~")) or name.endswith("/"):
        raise ModelNotFoundError(
            f"Model folder {name!r} does not exist. Pass an existing sentence-transformers folder, "
            f"or a hub repo id such as {_EXAMPLE_ID!r}."
        )
    if not _REPO_ID.fullmatch(name):
        guess = f"'sentence-transformers/{name}'" if "/" not in name and name else repr(_EXAMPLE_ID)
        raise ModelNotFoundError(
            f"Model {name!r} is neither a local folder (no such folder {str(path.absolute())!r}) nor a hub "
            f"repo id: hub ids are 'owner/name', e.g. {guess}."
        )
    return name


def check_repo_id(name_or_path: str | Path) -> str:
    """Return ``name_or_path`` as a hub repo id (``owner/name``), or raise: it is not a folder either."""
    source = check_model_source(name_or_path)
    if isinstance(source, Path):
        raise ModelNotFoundError(f"Model {str(source)!r} is a local folder, not a hub repo id ('owner/name').")
    return source


def download_snapshot(
    repo_id: str,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    options: HubOptions = HubOptions(),
) -> Path:
    """``huggingface_hub.snapshot_download`` (honours ``HF_HUB_OFFLINE`` and the HF cache), errors translated."""
    from huggingface_hub import constants, snapshot_download

    # Offline, say so: huggingface_hub otherwise tries the network for a commit-hash revision even when cached.
    offline = options.local_files_only or bool(getattr(constants, "HF_HUB_OFFLINE", False))
    cache = str(options.cache_folder) if options.cache_folder is not None else None
    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=allow_patterns,
                local_files_only=offline,
                cache_dir=cache,
                token=options.token,
            )
        )
    except Exception as exc:  # huggingface_hub raises many classes: offline, 404, gated, auth, HTTP
        raise hub_error(repo_id, revision, exc) from exc


def _download(
    repo_id: str, file_name: str | None, revision: str | None, options: HubOptions, runtime: str | None = None
) -> tuple[Path, str]:
    from huggingface_hub import HfApi

    root = download_snapshot(repo_id, revision, _META_PATTERNS, options)  # the manifest too: "auto" reads it
    cached = [p.relative_to(root).as_posix() for pattern in _MODEL_PATTERNS for p in root.glob(pattern)]
    if options.local_files_only:
        listed = cached
    else:
        try:
            listed = HfApi(token=options.token).list_repo_files(repo_id, revision=revision)
        except Exception:  # offline: fall back to what the cache already has
            listed = cached
    if _runs_openvino(runtime, root, file_name):
        chosen = _choose_openvino(root, listed, file_name, f"Hub repo {repo_id!r}", runtime == "auto")
    else:
        files = [f for f in listed if f.startswith("onnx/") and f.endswith(".onnx")]
        manifest = read_manifest(root)  # fetched with the configs
        chosen = choose_onnx_file(files, file_name, repo_id, manifest.fastest_file if manifest is not None else None)
    download_snapshot(repo_id, revision, _with_weights(chosen), options)
    return root, chosen


def _with_weights(name: str) -> list[str]:
    """A model file and its weights: an IR's ``.bin``, or the external data an ONNX file may have."""
    if name.endswith(".xml"):
        return [name, weights_path(Path(name)).as_posix()]
    return [name, f"{name}_data", f"{name}.data"]


def _runs_openvino(runtime: str | None, root: Path, file_name: str | None) -> bool:
    """Whether ``runtime`` runs OpenVINO for the folder ``root``: ``"openvino"``, or ``"auto"`` and its manifest."""
    if runtime is None or runtime == "onnxruntime":
        return False  # decided without importing session (and onnxruntime)
    from .session import Runtime, resolve_runtime  # imports onnxruntime: only when asked for

    return resolve_runtime(Runtime.parse(runtime), read_manifest(root), file_name) is Runtime.OPENVINO


def _choose_openvino(root: Path, listed: Iterable[str], file_name: str | None, where: str, auto: bool) -> str:
    """The file OpenVINO runs from a hub repo listing ``listed``: the IR, else FP32 ONNX; a missing one named."""
    from .openvino_session import choose_openvino_file  # imports session and onnxruntime: only when used

    files = set(listed)
    ours = sorted(name for name in files if name.startswith("openvino/"))
    fix = (
        f"`prepare` writes {OPENVINO_FILE} and its .bin (with the openvino extra installed): upload its whole "
        "output folder, or pass runtime='onnxruntime' to run the ONNX files."
    )
    if auto and OPENVINO_FILE not in files:
        raise ModelNotFoundError(
            f"{where} has no {OPENVINO_FILE}, yet its manifest records OpenVINO as the fastest runtime on this "
            f"CPU, so runtime='auto' chose it (OpenVINO files there: {ours or 'none'}). {fix}"
        )
    try:
        chosen = choose_openvino_file(root, file_name, files)  # refuses INT8 ONNX files and other suffixes
    except ModelNotFoundError as exc:
        missing = repr(file_name) if file_name is not None else f"{OPENVINO_FILE} (nor {FP32_FILE})"
        raise ModelNotFoundError(
            f"{where} has no {missing} for runtime='openvino' (OpenVINO files there: {ours or 'none'}). {fix}"
        ) from exc
    weights = _with_weights(chosen)[1]
    if chosen.endswith(".xml") and weights not in files:
        raise ModelNotFoundError(
            f"{where} has {chosen} but not its weights {weights}, which OpenVINO needs beside it. {fix}"
        )
    return chosen


def is_colbert_model(name_or_path: str | Path, revision: str | None = None, options: HubOptions = HubOptions()) -> bool:
    """Whether a folder or hub repo is a ColBERT model, PyLate's or sentence-transformers 6's ``MultiVectorEncoder``.

    Only its two small configs are fetched: ``model_type`` (``"ColBERT"`` / ``"MultiVectorEncoder"``) in
    ``config_sentence_transformers.json``, or PyLate / ``multi_vector_encoder`` module types in ``modules.json``.
    """
    from .colbert_layout import is_colbert_folder

    source = check_model_source(name_or_path)
    if isinstance(source, Path):
        return is_colbert_folder(source)
    root = download_snapshot(source, revision, ["config_sentence_transformers.json", "modules.json"], options)
    return is_colbert_folder(root)


def hub_error(repo_id: str, revision: str | None, exc: BaseException) -> ModelFolderError:
    """The ``ModelFolderError`` for a failed hub call on ``repo_id``: its cause in our words, and the fix."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (  # type: ignore[attr-defined]  # also where hub 0.23 keeps them
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = str(constants.HF_HUB_CACHE)
    at = f" at revision {revision!r}" if revision else ""
    login = "log in with a token that may read it (`hf auth login`, or set HF_TOKEN)"
    use_cache = (
        f"Or pass a local sentence-transformers folder, or put the model in the Hugging Face cache ({cache}; "
        f"`hf download {repo_id}` on a machine with access; HF_HUB_CACHE or HF_HOME move it) and set "
        "HF_HUB_OFFLINE=1."
    )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFoundError(
            f"Hub repo {repo_id!r} has no revision {revision!r}: pass an existing branch, tag or commit hash "
            "(--revision / revision=), or leave it out for 'main'."
        )
    if isinstance(exc, GatedRepoError):
        return ModelFolderError(
            f"Hub repo {repo_id!r} is gated: request access at https://huggingface.co/{repo_id}, then {login}."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFoundError(
            f"Hub repo {repo_id!r} does not exist, or it is private and this machine is not logged in: check the "
            f"id (owner/name, e.g. {_EXAMPLE_ID!r}), or for a private repo {login}."
        )
    if isinstance(exc, HFValidationError):
        return ModelNotFoundError(f"{repo_id!r} is not a valid hub repo id ({exc}); ids look like {_EXAMPLE_ID!r}.")
    offline = bool(getattr(constants, "HF_HUB_OFFLINE", False)) or _caused_by(exc, OfflineModeIsEnabled)
    if isinstance(exc, LocalEntryNotFoundError) and hasattr(exc, "snapshot_path"):  # IncompleteSnapshotError
        return ModelNotFoundError(
            f"Hub repo {repo_id!r}{at} is only partly in the Hugging Face cache ({cache}): a download was "
            f"interrupted. Download it again with network access (HF_HUB_OFFLINE unset). {use_cache}"
        )
    if offline and isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return ModelNotFoundError(
            f"Hub repo {repo_id!r}{at} is not in the Hugging Face cache ({cache}{_cached_revisions(cache, repo_id)}) "
            "and HF_HUB_OFFLINE=1 forbids downloading it. Unset HF_HUB_OFFLINE on a machine with access to "
            f"download it once. {use_cache}"
        )
    if isinstance(exc, LocalEntryNotFoundError) or _is_connection_error(exc):
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        return ModelNotFoundError(
            f"Could not reach the Hugging Face hub for {repo_id!r}{at} ({type(cause).__name__}: "
            f"{_first_line(cause)}) and it is not complete in the cache ({cache}). Check the network or proxy "
            f"(HF_ENDPOINT). {use_cache}"
        )
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return ModelFolderError(f"The Hugging Face hub refused access to {repo_id!r} (HTTP {status}): {login}.")
    if isinstance(exc, HfHubHTTPError):
        return ModelFolderError(
            f"The Hugging Face hub answered HTTP {status} for {repo_id!r}: try again later. {use_cache}"
        )
    return ModelFolderError(
        f"Could not fetch {repo_id!r} from the Hugging Face hub ({type(exc).__name__}: {_first_line(exc)}). {use_cache}"
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_connection_error(exc: BaseException) -> bool:
    """Network failures: the built-ins, and httpx's/requests' classes (not imported: either may be absent)."""
    if _caused_by(exc, ConnectionError) or _caused_by(exc, TimeoutError):
        return True
    names = {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "ProxyError", "NetworkError"}
    return type(exc).__name__ in names


def _cached_revisions(cache: str, repo_id: str) -> str:
    """``"; cached: main, v1"`` when the cache holds other revisions of ``repo_id``, else ``""``."""
    refs = Path(cache) / f"models--{repo_id.replace('/', '--')}" / "refs"
    names = sorted(p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file()) if refs.is_dir() else []
    return f"; it holds revisions {', '.join(names)}" if names else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
