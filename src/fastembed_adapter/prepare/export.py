"""Export the transformer to FP32 ONNX with torch's own exporter, and fuse it with ORT's optimizer.

No optimum: optimum-onnx caps transformers below 5, while ``torch.onnx.export`` works on both
transformers 4.x and 5.x. The graph takes the inputs the model's tokenizer produces and its
``forward`` accepts (``input_ids``, ``attention_mask``, ``token_type_ids`` only when used), has
dynamic batch and sequence axes, and returns ``last_hidden_state``.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UnsupportedModelError
from ..layout import external_data_path
from .writer import disk_full_errno, save_onnx

__all__ = ["EXPORTED_TYPES", "export_fp32", "export_optimized", "optimize_fp32"]

# ORT transformer-optimizer fusion family per HF model_type (others are exported unfused).
_FUSION_TYPES = {
    "bert": "bert",
    "mpnet": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "distilbert": "bert",
    "camembert": "bert",
    "electra": "bert",
}
# Architectures the test matrix exports and checks for parity on every run; others are tried and
# any exporter failure is reported as unsupported.
EXPORTED_TYPES = (
    "bert",
    "camembert",
    "distilbert",
    "electra",
    "gemma3_text",
    "modernbert",
    "mpnet",
    "qwen3",
    "roberta",
    "xlm-roberta",
)
_OPSET = 17  # LayerNormalization is a single op from opset 17
_INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


def _check_known(model_type: str) -> None:
    """Refuse an architecture the installed transformers does not know, before loading anything."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise UnsupportedModelError(
            f"Architecture {model_type!r} is not known to the installed transformers, so it cannot be exported. "
            f"Supported (tested): {', '.join(EXPORTED_TYPES)}."
        )


def _input_names(model: Any, tokenizer_names: list[str]) -> list[str]:
    """The tokenizer's outputs that ``model.forward`` takes, in a fixed order."""
    accepted = set(inspect.signature(model.forward).parameters)
    names = [name for name in _INPUT_ORDER if name in tokenizer_names and name in accepted]
    if "input_ids" not in names or "attention_mask" not in names:
        raise UnsupportedModelError(
            f"The model's forward() or tokenizer lacks input_ids/attention_mask (tokenizer gives {tokenizer_names}, "
            f"forward takes {sorted(accepted)})."
        )
    return names


def export_fp32(transformer_dir: Path, output: Path, model_type: str, attention: str | None = None) -> Path:
    """Export ``transformer_dir`` (a HF model folder) to ``output/model.onnx`` and return its path.

    Architectures ORT can fuse are loaded with eager attention unless ``attention`` says otherwise
    (:func:`export_optimized` tries both). Others keep the attention sentence-transformers runs them
    with (SDPA by default): in transformers 5 the two differ on fully masked rows, which left-padded
    decoders return as token embeddings.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    _check_known(model_type)
    tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir))
    if attention is None:
        attention = "eager" if model_type in _FUSION_TYPES else None
    model = AutoModel.from_pretrained(
        str(transformer_dir), **({"attn_implementation": attention} if attention is not None else {})
    )
    model.eval()
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    names = _input_names(model, list(tokenizer.model_input_names))
    output.mkdir(parents=True, exist_ok=True)
    target = output / "model.onnx"
    sample = _sample(tokenizer, model.config, names)
    failures = []
    for name, exporter in (("torchscript", _export_torchscript), ("dynamo", _export_dynamo)):
        try:
            with warnings.catch_warnings(), torch.no_grad(), _index_based_masks():
                warnings.simplefilter("ignore")  # TracerWarnings about Python control flow on shapes
                exporter(_last_hidden_state_module(model), sample, names, target)
            return target
        except Exception as exc:  # the exporters' failures are many and deep; name the model instead
            if disk_full_errno(exc) is not None:  # not the model's fault, and the other exporter would hit it too
                raise
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
    raise UnsupportedModelError(
        f"Architecture {model_type!r} could not be exported to ONNX ({'; '.join(failures)}). "
        f"Tested architectures: {', '.join(EXPORTED_TYPES)}."
    )


@contextlib.contextmanager
def _index_based_masks() -> Iterator[None]:
    """Build attention masks by broadcasting, never ``torch.vmap``, while exporting.

    transformers switches to vmap when a model adds a mask function (Gemma3's bidirectional
    attention), and neither exporter traces vmap. Its own masks are index-based, which the
    broadcasting path computes alike (the architecture tests check the export token by token).
    """
    from transformers import masking_utils

    mapping = getattr(getattr(masking_utils, "ALL_MASK_ATTENTION_FUNCTIONS", None), "_global_mapping", None)
    if not isinstance(mapping, dict):  # transformers without masking_utils builds no vmap masks
        yield
        return
    saved = dict(mapping)
    for name, function in saved.items():
        if "use_vmap" in inspect.signature(function).parameters:
            mapping[name] = _without_vmap(function)
    try:
        yield
    finally:
        mapping.clear()
        mapping.update(saved)


def _without_vmap(function: Any) -> Any:
    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["use_vmap"] = False
        return function(*args, **kwargs)

    return build


def _sample(tokenizer: Any, config: Any, names: list[str]) -> dict[str, Any]:
    """The traced inputs: two rows of different lengths, the longer past any sliding attention window.

    Padding keeps the mask general, and the long row keeps the windowed branch in the traced graph.
    """
    window = getattr(config, "sliding_window", None) or getattr(config, "local_attention", None) or 0
    limit = int(getattr(config, "max_position_embeddings", 0) or 512)
    length = max(2, min(limit - 2, max(32, 2 * int(window) + 8)))
    batch = tokenizer(
        [" ".join(["a"] * length), "a"], padding=True, truncation=True, max_length=length, return_tensors="pt"
    )
    return {name: batch[name] for name in names}


def _last_hidden_state_module(model: Any) -> Any:
    """Wrap ``model`` so that its forward takes the named inputs and returns ``last_hidden_state``."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra, return_dict=True)
            hidden: torch.Tensor = outputs.last_hidden_state
            return hidden

    return LastHiddenState()


def _export_torchscript(module: Any, sample: dict[str, Any], names: list[str], target: Path) -> None:
    """The TorchScript exporter: exact on padded rows, and the graph ORT's attention fusion knows."""
    import torch

    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in [*names, "last_hidden_state"]}
    torch.onnx.export(
        module,
        tuple(sample[name] for name in names),
        str(target),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes=axes,
        opset_version=_OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def _export_dynamo(module: Any, sample: dict[str, Any], names: list[str], target: Path) -> None:
    """torch.export-based exporter, for graphs TorchScript cannot trace (e.g. Gemma3's masks)."""
    import torch

    batch, sequence = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
    torch.onnx.export(
        module,
        (),
        str(target),
        kwargs=sample,
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
        opset_version=max(_OPSET, 18),
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def _attention_shape(transformer_dir: Path) -> tuple[int, int]:
    """``(num_heads, hidden_size)`` from the model config: the optimizer's attention fusion needs both."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(transformer_dir))
    return int(config.num_attention_heads), int(config.hidden_size)


def export_optimized(transformer_dir: Path, work: Path, target: Path, model_type: str) -> dict[str, Any]:
    """Export and optimize into ``target``; return the fused-operator counts.

    For the BERT family the graph ORT's attention fusion recognises depends on the transformers
    release (eager attention's on 5.x, SDPA's on 4.x); both give the same ``last_hidden_state`` there
    (no query row is fully masked), so when one graph fuses no ``Attention`` the other is tried.
    """
    first, *others = ["eager", "sdpa"] if model_type in _FUSION_TYPES else [None]
    raw = export_fp32(transformer_dir, work / "export-0", model_type, first)
    fusions = optimize_fp32(raw, target, model_type, transformer_dir)
    for attempt, attention in enumerate(others, start=1):
        if fusions.get("Attention"):
            break
        candidate = work / f"optimized-{attempt}.onnx"
        try:
            raw = export_fp32(transformer_dir, work / f"export-{attempt}", model_type, attention)
            found = optimize_fp32(raw, candidate, model_type, transformer_dir)
        except Exception as exc:  # only an alternative (e.g. MPNet has no SDPA): the first graph stands
            if disk_full_errno(exc) is not None:
                raise
            break
        if found.get("Attention", 0) > fusions.get("Attention", 0):
            for path in (target, external_data_path(target)):
                path.unlink(missing_ok=True)
            save_onnx(_load(candidate), target)  # re-saved: its weights file is named after the file
            fusions = found
    return fusions


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def optimize_fp32(source: Path, target: Path, model_type: str, transformer_dir: Path) -> dict[str, Any]:
    """Apply ORT's transformer fusions (attention, GELU; not skip-layer-norm) where the architecture allows.

    Returns the fused-operator counts. Architectures without a fusion family are copied unchanged.
    """
    import onnx

    family = _FUSION_TYPES.get(model_type)
    if family is None:
        save_onnx(onnx.load(str(source)), target)
        return {}
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    num_heads, hidden_size = _attention_shape(transformer_dir)
    options = FusionOptions(family)
    # Keep the embedding lookups plain Gathers (not EmbedLayerNormalization), so the INT8 file can
    # store the vocabulary table in int8 (prepare/embeddings.py); the fused op only saves ~1 %.
    options.enable_embed_layer_norm = False
    # Keep residual Add + LayerNormalization apart: ORT's CPU SkipLayerNormalization kernel is slower
    # than the two ops (CHANGELOG 0.1.0 has the figures). The session disables ORT's own re-fusion.
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    optimized = optimize_model(
        str(source),
        model_type=family,
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        optimization_options=options,
    )
    save_onnx(optimized.model, target)
    stats: dict[str, Any] = optimized.get_fused_operator_statistics()
    return {name: count for name, count in stats.items() if count}
