"""Export the transformer to FP32 ONNX with optimum's exporter, and fuse it with ORT's optimizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UnsupportedModelError
from .writer import save_onnx

__all__ = ["export_fp32", "optimize_fp32"]

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


def _supported_types() -> list[str]:
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs, lazily loaded)
    from optimum.exporters.tasks import TasksManager

    return sorted(TasksManager.get_supported_model_type_for_task("feature-extraction", exporter="onnx"))


def export_fp32(transformer_dir: Path, output: Path, model_type: str) -> Path:
    """Export ``transformer_dir`` (a HF model folder) to ``output/model.onnx``.

    Inputs are those the model's forward takes (``input_ids``, ``attention_mask`` and
    ``token_type_ids`` only when used), batch and sequence axes dynamic, output ``last_hidden_state``.
    """
    from optimum.exporters.onnx import main_export

    supported = _supported_types()
    if model_type not in supported:
        raise UnsupportedModelError(
            f"Architecture {model_type!r} cannot be exported to ONNX for feature extraction. "
            f"Supported: {', '.join(supported)}."
        )
    output.mkdir(parents=True, exist_ok=True)
    # library_name="transformers": otherwise optimum detects the sentence-transformers folder and
    # exports pooled outputs; we want per-token ``last_hidden_state`` and pool in our own code.
    main_export(
        str(transformer_dir),
        output=str(output),
        task="feature-extraction",
        library_name="transformers",
        device="cpu",
        do_validation=False,
    )
    target = output / "model.onnx"
    return target


def optimize_fp32(source: Path, target: Path, model_type: str) -> dict[str, Any]:
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

    options = FusionOptions(family)
    # Keep the embedding lookups plain Gathers (not EmbedLayerNormalization), so the INT8 file can
    # store the vocabulary table in int8 (prepare/embeddings.py); the fused op only saves ~1 %.
    options.enable_embed_layer_norm = False
    # Keep residual Add + LayerNormalization apart: ORT 1.32's CPU SkipLayerNormalization kernel is
    # 5-7x slower than the two ops (32 x 256 x 384: 8.2 vs 1.7 ms; 32 x 20: 0.61 vs 0.09 ms), ~13 %
    # of MiniLM's encode time. The runtime session disables ORT's own re-fusion (session.py).
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    optimized = optimize_model(
        str(source), model_type=family, num_heads=0, hidden_size=0, opt_level=0, optimization_options=options
    )
    save_onnx(optimized.model, target)
    stats: dict[str, Any] = optimized.get_fused_operator_statistics()
    return {name: count for name, count in stats.items() if count}
