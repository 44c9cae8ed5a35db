"""Tiny random test models: the tokenizer trained on tests/data/corpus.txt, one transformers
config per architecture, the sentence-transformers modules around it (``TinySpec``), and
``prepare`` run on them. Plain functions; the fixtures in conftest.py cache what they build.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks import TINY_INT8_MIN_COSINE, TINY_INT8_MIN_MEAN_COSINE, TINY_INT8_MIN_TOPK

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
    from fastembed_adapter.cpu import detect_target
    from fastembed_adapter.layout import int8_file_name

    target = detect_target()
    assert target is not None, "these tests need an x86-64 AVX2+ or arm64 CPU"
    return int8_file_name(target)


def _wordpiece_vocab(normalizer: Any, pre_tokenizer: Any) -> dict[str, int]:
    """A WordPiece vocabulary of ``VOCAB_SIZE`` built from corpus.txt's counts, the same in every process.

    (``tokenizers``' trainer breaks ties in hash-map order, which differs from process to process, so
    a trained vocabulary, and every tiny model's inputs with it, changed between test runs.) Special
    tokens, then every character alone and as a ``##`` continuation, then the most frequent words.
    """
    from collections import Counter

    counts: Counter[str] = Counter()
    for line in (DATA / "corpus.txt").read_text(encoding="utf-8").splitlines():
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({char for word in counts for char in word})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{char}" for char in chars)]
    words = [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if len(word) > 1]
    tokens += words[: max(0, VOCAB_SIZE - len(tokens))]
    return {token: index for index, token in enumerate(tokens)}


def train_tokenizer(out: Path) -> Path:
    """A WordPiece tokenizer over corpus.txt (deterministic vocabulary), saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    tok = Tokenizer(models.WordPiece(_wordpiece_vocab(normalizer, pre_tokenizer), unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
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
    fast.save_pretrained(str(out))
    return out


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
            digest = hashlib.sha256(json.dumps(self.prompts, sort_keys=True).encode()).hexdigest()[:6]
            parts.append(f"prompts-{digest}" + ("" if self.include_prompt else "-excl"))
        if self.default_prompt_name:
            parts.append(f"default-{self.default_prompt_name}")
        return "-".join(parts)


def decoder_tokenizer(tokenizer_dir: Path) -> Any:
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


def build_hf_dir(tokenizer_dir: Path, arch: str, out: Path) -> Path:
    """Random transformers weights (seed 0) plus the tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    # Like their real tokenizers, only BERT produces token_type_ids.
    names = ["input_ids", "token_type_ids", "attention_mask"] if arch == "bert" else ["input_ids", "attention_mask"]
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), model_input_names=names)
    if arch in DECODERS:
        tokenizer = decoder_tokenizer(tokenizer_dir)
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


def save_st(hf_dir: Path, spec: TinySpec, out: Path) -> Path:
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


def run_prepare(source: Path, output: Path, min_cosine_int8: float = TINY_INT8_MIN_COSINE, **kwargs: Any) -> dict:
    """``prepare`` a tiny model quietly: no benchmark, one thread, the tiny gates.

    No OpenVINO IR unless ``openvino=True``: converting and gating it adds 2-4 s to every tiny
    ``prepare``; the fixtures the OpenVINO tests read (``prepared_base``, the real MiniLM, one
    folder per architecture) ask for it.
    """
    from fastembed_adapter.prepare import PrepareOptions, prepare_model

    kwargs.setdefault("openvino", False)
    kwargs.setdefault("min_mean_cosine_int8", TINY_INT8_MIN_MEAN_COSINE)
    kwargs.setdefault("min_topk_agreement_int8", TINY_INT8_MIN_TOPK)
    options = PrepareOptions(
        model=str(source), output=output, min_cosine_int8=min_cosine_int8, benchmark=False, threads=1, **kwargs
    )
    return prepare_model(options)
