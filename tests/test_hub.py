"""Hub resolution without the network: model ids vs folders, the HF cache offline, and each hub failure's message.

The cache is a temp folder laid out like the Hugging Face cache (``models--owner--name/refs``,
``snapshots/<commit>``); failures are huggingface_hub's own exception classes raised by a stand-in
``snapshot_download``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from huggingface_hub import constants
from huggingface_hub.utils import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from checks import name_winner, record_in_manifest
from fastembed_adapter import InvalidInputError, ModelFolderError, ModelNotFoundError, OnnxSentenceEncoder
from fastembed_adapter.cpu import detect_target
from fastembed_adapter.hub import check_model_source, check_repo_id, download_snapshot, resolve_model
from fastembed_adapter.layout import OPENVINO_FILE
from tiny import FP32_FILE, TEXTS, TinySpec, int8_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "owner/tiny"


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache that huggingface_hub uses, offline (its constants are read at import)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_repo(cache: Path, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",)) -> Path:
    """Put ``folder`` in ``cache`` as ``repo_id`` at ``COMMIT``, with ``refs`` pointing at it."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    shutil.copytree(folder, snapshot)
    for ref in refs:
        (root / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(COMMIT)
    return snapshot


# -- what the model argument is -----------------------------------------------------------------------


def test_folder_and_repo_ids(tmp_path):
    assert check_model_source(tmp_path) == tmp_path
    assert check_model_source(str(tmp_path)) == tmp_path
    assert check_model_source("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert check_model_source("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert check_repo_id("owner/name_2.x") == "owner/name_2.x"
    with pytest.raises(ModelNotFoundError, match="is a local folder"):
        check_repo_id(tmp_path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("all-MiniLM-L6-v2", "is neither a local folder (no such folder"),
        ("all-MiniLM-L6-v2", "hub ids are 'owner/name', e.g. 'sentence-transformers/all-MiniLM-L6-v2'"),
        ("a/b/c", "is neither a local folder"),
        ("/nonexistent/model", "Model folder '/nonexistent/model' does not exist"),
        ("./models/mine", "Model folder './models/mine' does not exist"),
        ("~/no-such-model-here", "does not exist"),
        ("owner/", "does not exist"),
    ],
)
def test_names_that_are_neither(name, message):
    with pytest.raises(ModelNotFoundError) as info:
        check_model_source(name)
    assert message in str(info.value) and repr(name) in str(info.value)


def test_a_file_is_reported_as_a_file(tmp_path):
    (tmp_path / "modules.json").write_text("[]")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelNotFoundError) as info:
        check_model_source(tmp_path / "modules.json")
    assert "is a file, not a model folder: pass its folder" in str(info.value)
    assert repr(str(tmp_path)) in str(info.value)
    lone = tmp_path / "sub" / "model.onnx"
    lone.parent.mkdir()
    lone.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file, not a model folder: pass the folder that holds"):
        check_model_source(str(lone))


# -- the HF cache, offline ----------------------------------------------------------------------------


def test_offline_snapshot_from_the_cache(hf_cache, make_st_model):
    snapshot = cache_repo(hf_cache, REPO, make_st_model(TinySpec("bert")), refs=("main", "v1"))
    assert download_snapshot(REPO) == snapshot
    assert download_snapshot(REPO, "v1") == snapshot
    assert download_snapshot(REPO, COMMIT) == snapshot


def test_offline_revision_not_in_the_cache(hf_cache, make_st_model):
    cache_repo(hf_cache, REPO, make_st_model(TinySpec("bert")), refs=("main", "v1"))
    with pytest.raises(ModelNotFoundError) as info:
        download_snapshot(REPO, "v2")
    message = str(info.value)
    assert f"Hub repo {REPO!r} at revision 'v2' is not in the Hugging Face cache ({hf_cache}" in message
    assert "it holds revisions main, v1" in message
    assert "HF_HUB_OFFLINE=1 forbids downloading it" in message


def test_offline_missing_repo_names_the_cache_and_the_fix(hf_cache):
    with pytest.raises(ModelNotFoundError) as info:
        download_snapshot("owner/missing")
    message = str(info.value)
    assert str(hf_cache) in message and "HF_HUB_OFFLINE=1" in message
    assert "local sentence-transformers folder" in message and "hf download owner/missing" in message
    assert "internet connection" not in message and "holds revisions" not in message


def test_encoder_loads_a_hub_id_from_the_cache(hf_cache, prepared_base):
    folder = prepared_base("bert")
    cache_repo(hf_cache, "owner/tiny-onnx", folder)
    root, chosen = resolve_model("owner/tiny-onnx", None)
    assert root.name == COMMIT and chosen == int8_file()
    hub = OnnxSentenceEncoder("owner/tiny-onnx", threads=1)
    local = OnnxSentenceEncoder(folder, threads=1)
    np.testing.assert_array_equal(hub.encode(TEXTS), local.encode(TEXTS))


def test_prepare_loads_a_hub_id_from_the_cache(hf_cache, make_st_model, tmp_path):
    from fastembed_adapter.prepare import PrepareOptions
    from fastembed_adapter.prepare.pipeline import _load_source

    snapshot = cache_repo(hf_cache, REPO, make_st_model(TinySpec("bert")))
    assert _load_source(PrepareOptions(model=REPO, output=tmp_path / "out")) == (snapshot, COMMIT)
    with pytest.raises(ModelNotFoundError, match="at revision 'v9' is not in the Hugging Face cache"):
        _load_source(PrepareOptions(model=REPO, output=tmp_path / "out", revision="v9"))


def test_cli_prepare_offline_missing_repo(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEA_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "fastembed_adapter.cli", "prepare", "--model", "owner/missing"]
    result = subprocess.run(
        [*command, "--output", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "'owner/missing' is not in the Hugging Face cache" in line and str(tmp_path / "cache") in line
    assert "HF_HUB_OFFLINE=1" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# -- each hub failure, told apart ---------------------------------------------------------------------


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", f"https://huggingface.co/api/models/{REPO}"))


def _unreachable() -> Exception:
    try:
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")
    except httpx.ConnectError as cause:
        error = LocalEntryNotFoundError("An error happened ... Please check your internet connection and try again.")
        error.__cause__ = cause
        return error


FAILURES: dict[str, tuple[Callable[[], Exception], type[Exception], str]] = {
    "missing repo": (
        lambda: RepositoryNotFoundError("404 Client Error. Repository Not Found", response=_response(404)),
        ModelNotFoundError,
        f"Hub repo {REPO!r} does not exist, or it is private and this machine is not logged in",
    ),
    "gated": (
        lambda: GatedRepoError("403 Client Error. Cannot access gated repo", response=_response(403)),
        ModelFolderError,
        f"is gated: request access at https://huggingface.co/{REPO}, then log in",
    ),
    "auth": (
        lambda: HfHubHTTPError("401 Client Error: Unauthorized", response=_response(401)),
        ModelFolderError,
        "refused access to 'owner/tiny' (HTTP 401): log in with a token that may read it",
    ),
    "revision": (
        lambda: RevisionNotFoundError("404 Client Error. Revision Not Found", response=_response(404)),
        ModelNotFoundError,
        f"Hub repo {REPO!r} has no revision 'v9': pass an existing branch, tag or commit hash",
    ),
    "hub down": (
        lambda: HfHubHTTPError("503 Server Error", response=_response(503)),
        ModelFolderError,
        "answered HTTP 503 for 'owner/tiny': try again later",
    ),
    "unreachable": (
        _unreachable,
        ModelNotFoundError,
        "Could not reach the Hugging Face hub for 'owner/tiny' at revision 'v9' (ConnectError: [Errno -3]",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_hub_failures_are_told_apart(case, hf_cache, monkeypatch):
    import huggingface_hub

    make, kind, expected = FAILURES[case]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online; the stand-in never touches the network

    def failing(*args, **kwargs):
        raise make()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(kind) as info:
        download_snapshot(REPO, "v9")
    message = str(info.value)
    assert expected in message
    assert "HF_HUB_OFFLINE=1 forbids" not in message  # none of these is reported as offline
    assert isinstance(info.value.__cause__, huggingface_hub.errors.HfHubHTTPError | LocalEntryNotFoundError)
    others = {other for name, (_, _, other) in FAILURES.items() if name != case}
    assert not any(other in message for other in others)


def test_st_hub_keywords_reach_the_hub(prepared_base, tmp_path, monkeypatch):
    """``cache_folder``, ``local_files_only`` and ``token`` (sentence-transformers' constructor keywords)."""
    folder = prepared_base("bert")
    own_cache = tmp_path / "own-cache"
    own_cache.mkdir()
    cache_repo(own_cache, "owner/elsewhere", folder)  # only in this cache, not the default one
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-default-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # local_files_only alone must keep it offline
    import huggingface_hub

    calls = []
    real = huggingface_hub.snapshot_download

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda *a, **k: pytest.fail("went online"))
    hub = OnnxSentenceEncoder(
        "owner/elsewhere", cache_folder=str(own_cache), local_files_only=True, token="hf_secret", threads=1
    )
    np.testing.assert_array_equal(hub.encode(TEXTS), OnnxSentenceEncoder(folder, threads=1).encode(TEXTS))
    assert calls and all(
        c["cache_dir"] == str(own_cache) and c["local_files_only"] and c["token"] == "hf_secret" for c in calls
    )
    with pytest.raises(ModelNotFoundError, match=r"owner/elsewhere"):
        OnnxSentenceEncoder("owner/elsewhere", local_files_only=True, threads=1)  # not in the default cache


def test_colbert_models_are_recognised_on_the_hub(hf_cache, make_st_model, tmp_path):
    from fastembed_adapter.hub import is_colbert_model

    colbert = tmp_path / "colbert"
    colbert.mkdir()
    (colbert / "config_sentence_transformers.json").write_text('{"model_type": "ColBERT", "query_length": 32}')
    (colbert / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]'
    )
    cache_repo(hf_cache, "owner/colbert", colbert)
    cache_repo(hf_cache, REPO, make_st_model(TinySpec("bert")))
    assert is_colbert_model("owner/colbert") and is_colbert_model(colbert)
    assert not is_colbert_model(REPO)
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache"):
        is_colbert_model("owner/absent")


# -- the OpenVINO IR: fetched only for a runtime that runs it ------------------------------------------

OPENVINO_BIN = OPENVINO_FILE.removesuffix(".xml") + ".bin"


@pytest.fixture
def fetched(hf_cache, monkeypatch) -> list[list[str] | None]:
    """The ``allow_patterns`` of each ``snapshot_download`` call, answered from the offline cache."""
    import huggingface_hub

    calls: list[list[str] | None] = []
    real = huggingface_hub.snapshot_download

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_patterns"))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    return calls


def test_the_ir_is_fetched_for_openvino_only(hf_cache, fetched, prepared_base):
    folder = prepared_base("bert")
    cache_repo(hf_cache, "owner/tiny-ov", folder)
    for runtime in (None, "onnxruntime", "auto"):  # no benchmark winner recorded: auto is ONNX Runtime
        assert resolve_model("owner/tiny-ov", None, runtime=runtime)[1] == int8_file()
        assert fetched[-1] == [int8_file(), f"{int8_file()}_data", f"{int8_file()}.data"]
    assert resolve_model("owner/tiny-ov", None, runtime="openvino")[1] == OPENVINO_FILE
    assert fetched[-1] == [OPENVINO_FILE, OPENVINO_BIN]
    assert not any("openvino/" in pattern for call in fetched[:-1] for pattern in call or [])
    assert resolve_model("owner/tiny-ov", FP32_FILE, runtime="openvino")[1] == FP32_FILE  # FP32 ONNX on OpenVINO
    assert fetched[-1] == [FP32_FILE, f"{FP32_FILE}_data", f"{FP32_FILE}.data"]
    hub = OnnxSentenceEncoder("owner/tiny-ov", runtime="openvino", threads=1, cache_size=0)
    assert (hub.runtime, hub.file_name) == ("openvino", OPENVINO_FILE)
    local = OnnxSentenceEncoder(folder, runtime="openvino", threads=1, cache_size=0)
    np.testing.assert_array_equal(hub.encode(TEXTS), local.encode(TEXTS))
    with pytest.raises(InvalidInputError, match="ONNX Runtime INT8 file"):
        resolve_model("owner/tiny-ov", int8_file(), runtime="openvino")


def test_only_the_ir_used_is_fetched(hf_cache, fetched, prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    quantized = "openvino/openvino_model_qint8_quantized.xml"  # sentence-transformers' name for an INT8 IR
    shutil.copy(folder / OPENVINO_FILE, folder / quantized)
    shutil.copy(folder / OPENVINO_BIN, folder / quantized.replace(".xml", ".bin"))
    cache_repo(hf_cache, "owner/tiny-ov-q", folder)
    for name in (quantized, quantized.removeprefix("openvino/")):  # ST passes the bare name
        assert resolve_model("owner/tiny-ov-q", name, runtime="openvino")[1] == quantized
        assert fetched[-1] == [quantized, quantized.replace(".xml", ".bin")]
    assert resolve_model("owner/tiny-ov-q", "openvino_model.xml", runtime="openvino")[1] == OPENVINO_FILE
    assert fetched[-1] == [OPENVINO_FILE, OPENVINO_BIN]


def test_auto_fetches_the_ir_where_the_manifest_says_openvino_wins(hf_cache, fetched, prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    name_winner(folder, "openvino")
    cache_repo(hf_cache, "owner/tiny-ov-wins", folder)
    assert resolve_model("owner/tiny-ov-wins", None, runtime="auto")[1] == OPENVINO_FILE
    assert fetched[-1] == [OPENVINO_FILE, OPENVINO_BIN]
    auto = OnnxSentenceEncoder("owner/tiny-ov-wins", runtime="auto", threads=1, cache_size=0)
    assert (auto.runtime, auto.file_name) == ("openvino", OPENVINO_FILE)
    assert resolve_model("owner/tiny-ov-wins", FP32_FILE, runtime="auto")[1] == FP32_FILE  # a file pins ORT
    assert fetched[-1] == [FP32_FILE, f"{FP32_FILE}_data", f"{FP32_FILE}.data"]


def test_a_repo_without_the_ir_says_so(hf_cache, fetched, prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    shutil.rmtree(folder / "openvino")
    cache_repo(hf_cache, "owner/no-ir", folder)
    for name in (OPENVINO_FILE, "openvino_model.xml"):
        with pytest.raises(ModelFolderError) as info:
            OnnxSentenceEncoder("owner/no-ir", runtime="openvino", file_name=name, threads=1)
        message = str(info.value)
        assert f"Hub repo 'owner/no-ir' has no {name!r} for runtime='openvino' (OpenVINO files there: none)" in message
        assert f"`prepare` writes {OPENVINO_FILE}" in message and "runtime='onnxruntime'" in message
    # Without a file name the FP32 ONNX file runs on OpenVINO, as from a local folder without the IR.
    assert resolve_model("owner/no-ir", None, runtime="openvino")[1] == FP32_FILE
    name_winner(folder, "openvino")
    cache_repo(hf_cache, "owner/no-ir-wins", folder)
    with pytest.raises(ModelNotFoundError, match=r"has no openvino/openvino_model.xml, yet its manifest records"):
        resolve_model("owner/no-ir-wins", None, runtime="auto")
    assert all("openvino/" not in pattern for call in fetched for pattern in call or [])


def test_an_ir_without_its_weights_says_so(hf_cache, prepared_base, copy_folder, monkeypatch):
    import huggingface_hub

    folder = copy_folder(prepared_base("bert"))
    listing = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online listing, stood in for
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(folder))
    monkeypatch.setattr(
        huggingface_hub.HfApi, "list_repo_files", lambda *a, **k: [n for n in listing if n != OPENVINO_BIN]
    )
    with pytest.raises(ModelNotFoundError, match=rf"has {OPENVINO_FILE} but not its weights {OPENVINO_BIN}"):
        resolve_model("owner/no-bin", None, runtime="openvino")


def test_the_default_file_follows_the_measured_fastest_file(hf_cache, fetched, prepared_base, copy_folder):
    folder = copy_folder(prepared_base("bert"))
    target = detect_target()
    assert target is not None
    assert resolve_model(folder, None)[1] == int8_file()  # prepare in the tests records no benchmark
    record_in_manifest(folder, "fastest_file", {target.value: FP32_FILE})
    assert resolve_model(folder, None)[1] == FP32_FILE
    assert resolve_model(folder, int8_file())[1] == int8_file()  # an explicit file_name wins
    encoder = OnnxSentenceEncoder(folder, threads=1, cache_size=0)
    assert encoder.file_name == FP32_FILE
    other = "arm64" if target.value != "arm64" else "avx2"
    record_in_manifest(folder, "fastest_file", {other: FP32_FILE})  # another kind of CPU: not followed
    assert resolve_model(folder, None)[1] == int8_file()
    record_in_manifest(folder, "fastest_file", {target.value: "onnx/gone.onnx"})  # a file not there: not chosen
    assert resolve_model(folder, None)[1] == int8_file()
    record_in_manifest(folder, "fastest_file", {target.value: FP32_FILE})
    cache_repo(hf_cache, "owner/tiny-fastest", folder)
    assert resolve_model("owner/tiny-fastest", None)[1] == FP32_FILE  # the hub reads the fetched manifest
    assert fetched[-1] == [FP32_FILE, f"{FP32_FILE}_data", f"{FP32_FILE}.data"]
