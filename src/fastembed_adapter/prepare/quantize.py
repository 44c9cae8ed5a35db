"""INT8 quantization recipes for a CPU target, applied to the optimized FP32 graph.

A recipe is a frozen description; ``RECIPES`` lists them fastest first, and ``prepare``
keeps the first one whose INT8 file passes the validation gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

from ..cpu import QuantTarget
from .writer import save_onnx

__all__ = ["RECIPES", "Recipe", "quantize_int8"]


@dataclass(frozen=True)
class Recipe:
    """How to quantize: weight granularity and which MatMuls stay FP32."""

    name: str
    _: KW_ONLY
    description: str = ""
    per_channel: bool = True
    keep_fp32: str = "none"  # "none" | "ffn_down" | "ffn"
    per_token: bool = False
    smooth_alpha: float | None = None  # SmoothQuant migration strength; needs calibration texts
    smooth_norm_outputs_only: bool = False  # smooth only what a LayerNorm/RMSNorm produces
    split_attention: bool = False  # fused Attention → MatMul + MultiHeadAttention, so Q/K/V are quantized too
    outlier_factor: float | None = None  # FP32 side path for channels above factor x median; needs calibration
    keep_sensitive: float | None = None  # share of MatMuls kept FP32, the most sensitive measured; needs calibration
    nbits_block: int | None = None  # MatMulNBits 8-bit weights, activations quantized per block of K inside the kernel

    def __post_init__(self) -> None:
        """Refuse combinations one of whose parts would be silently ignored."""
        if self.nbits_block is not None and (self.per_token or self.calibrated):
            raise ValueError(f"Recipe {self.name!r}: MatMulNBits (nbits_block) takes no per-token or calibrated step.")
        if self.smooth_norm_outputs_only and self.smooth_alpha is None:
            raise ValueError(f"Recipe {self.name!r}: smooth_norm_outputs_only needs smooth_alpha.")
        if not self.per_token and self.nbits_block is None and (self.calibrated or self.split_attention):
            raise ValueError(f"Recipe {self.name!r}: calibration and split_attention need per_token or nbits_block.")

    @property
    def calibrated(self) -> bool:
        """Whether the recipe needs calibration texts."""
        return self.smooth_alpha is not None or self.outlier_factor is not None or self.keep_sensitive is not None


@dataclass(frozen=True)
class Calibration:
    """What calibrated recipes need: the staging folder (tokenizer, configs) and the texts."""

    folder: Path
    texts: tuple[str, ...]
    threads: int | None = None


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("dynamic", description="dynamic INT8, per-channel weights, every MatMul"),
        Recipe(
            "smooth-norm-per-token",
            per_token=True,
            smooth_alpha=0.65,
            smooth_norm_outputs_only=True,
            split_attention=True,
            description="per-token INT8 on every projection (Q/K/V too); SmoothQuant (alpha 0.65, calibrated)"
            " on the LayerNorm/RMSNorm outputs only (the inputs of Q/K/V and FFN-up)",
        ),
        Recipe(
            "per-token",
            per_token=True,
            description="INT8 with one activation scale per token (MatMulIntegerToFloat), per-channel weights",
        ),
        Recipe(
            "smooth-per-token",
            per_token=True,
            smooth_alpha=0.65,
            description="SmoothQuant (alpha 0.65, calibrated, exact in FP32), then per-token INT8",
        ),
        Recipe(
            "outlier-per-token",
            per_token=True,
            outlier_factor=3.0,
            split_attention=True,
            description="per-token INT8 on every projection (Q/K/V too); calibrated outlier channels"
            " (> 3x the median, at most 8 per tensor) run in an FP32 side MatMul",
        ),
        Recipe(
            "per-token-sensitive-fp32",
            per_token=True,
            keep_sensitive=0.15,
            description="per-token INT8; the 15 % of MatMuls that add the most error on the calibration texts"
            " (measured in the per-token file) stay FP32",
        ),
        Recipe(
            "dynamic-ffn-down-fp32",
            keep_fp32="ffn_down",
            description="dynamic INT8, FFN output (down-projection) MatMuls kept FP32",
        ),
        Recipe(
            "blocked-8bit",
            split_attention=True,
            nbits_block=32,
            description="MatMulNBits: 8-bit weights in blocks of 32, activations quantized per block of 32 inside"
            " the kernel (accuracy_level 4); Q/K/V too",
        ),
        Recipe(
            "blocked-8bit-ffn-down-fp32",
            split_attention=True,
            nbits_block=32,
            keep_fp32="ffn_down",
            description="blocked-8bit with the FFN output (down-projection) MatMuls kept FP32",
        ),
        Recipe("dynamic-ffn-fp32", keep_fp32="ffn", description="dynamic INT8, all FFN MatMuls kept FP32"),
    )
}


def _ffn_matmuls(model_path: Path, which: str) -> list[str]:
    """Names of FFN MatMuls: weights (in, out) with out > in and out != 3*in (up), or in > out (down)."""
    import onnx

    from .graph import constant_matmul_inputs, initializers

    model = onnx.load(str(model_path))
    weights = initializers(model.graph)
    names = []
    for nodes in constant_matmul_inputs(model).values():
        for node in nodes:
            rows, cols = weights[node.input[1]].dims
            is_down = rows > cols
            is_up = cols > rows and cols != 3 * rows
            if is_down or (which == "ffn" and is_up):
                names.append(node.name)
    return names


def quantize_int8(
    source: Path,
    target_path: Path,
    target: QuantTarget,
    recipe: Recipe,
    calibration: Calibration | None = None,
    fp32_nodes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``target_path``: ``source`` quantized with ``recipe`` for ``target``; return what was decided.

    Every recipe also stores the vocabulary tables in int8 with per-row scales (``embeddings.py``).
    The MatMul nodes named in ``fp32_nodes`` stay FP32 whatever the recipe (a ColBERT projection).
    The returned details name the MatMuls kept FP32 and count the outlier channels, for the report.
    """
    import onnx

    from .attention import mask_free_when_unpadded, unfuse_attention
    from .embeddings import quantize_embedding_tables

    exclude = [] if recipe.keep_fp32 == "none" else _ffn_matmuls(source, recipe.keep_fp32)
    exclude += list(fp32_nodes)
    details: dict[str, Any] = {}
    if recipe.per_token or recipe.nbits_block is not None:  # graph rewrites here; dynamic works on files
        model = onnx.load(str(source))
        if recipe.split_attention:
            unfuse_attention(model)
    if recipe.per_token:
        from .capture import calibrate_absmax
        from .graph import constant_matmul_inputs
        from .outliers import split_outliers
        from .pertoken import rewrite_per_token
        from .smoothquant import norm_outputs, smooth

        if recipe.calibrated:
            if calibration is None:
                raise ValueError(f"Recipe {recipe.name!r} needs calibration texts.")
            if recipe.keep_sensitive is not None:
                exclude += _most_sensitive(model, exclude, recipe.keep_sensitive, calibration)
            tensors = sorted(constant_matmul_inputs(model))
            if recipe.smooth_norm_outputs_only:
                normalized = norm_outputs(model)
                tensors = [name for name in tensors if name in normalized]
                if not tensors:  # else the file would be plain per-token under this recipe's name
                    raise ValueError("no LayerNorm/RMSNorm output feeds a constant-weight MatMul in this graph")
            if tensors and (recipe.smooth_alpha is not None or recipe.outlier_factor is not None):
                texts = list(calibration.texts)
                stats = calibrate_absmax(model, calibration.folder, texts, tensors, calibration.threads)
                if recipe.smooth_alpha is not None:
                    smoothed, folded = smooth(model, stats, recipe.smooth_alpha)
                    details["smoothed_tensors"], details["smoothing_folded"] = smoothed, folded
                if recipe.outlier_factor is not None:
                    sides = split_outliers(model, stats, recipe.outlier_factor)
                    details["outlier_side_matmuls"] = len(sides)
                    exclude += sides
        rewrite_per_token(model, exclude)
    elif recipe.nbits_block is not None:
        model = _quantize_nbits(model, recipe.nbits_block, exclude)
    else:
        _quantize_dynamic(source, target_path, target, recipe, exclude)
        model = onnx.load(str(target_path))
    quantize_embedding_tables(model)
    if recipe.split_attention:
        details["mask_free_attention"] = mask_free_when_unpadded(model)
    save_onnx(model, target_path)
    return {**details, "fp32_matmuls": [name for name in exclude if "fea_outliers" not in name]}


def _most_sensitive(model: Any, exclude: list[str], share: float, calibration: Calibration) -> list[str]:
    """Names of the ``share`` of MatMuls adding the most error in a per-token trial of ``model``."""
    import onnx

    from .pertoken import rewrite_per_token
    from .sensitivity import node_errors

    trial = onnx.ModelProto()
    trial.CopyFrom(model)
    rewrite_per_token(trial, exclude)
    errors = node_errors(model, trial, calibration.folder, list(calibration.texts), calibration.threads)
    count = max(1, round(share * len(errors)))
    return sorted(errors, key=lambda name: errors[name], reverse=True)[:count]


def _quantize_nbits(model: Any, block: int, exclude: list[str]) -> Any:
    import logging

    # Importing ORT's quantizer calls logging.basicConfig(level=INFO) on the root logger, which
    # would flood prepare's output (one line per node) and change the caller's logging: undo it.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    root.setLevel(level)
    root.handlers[:] = handlers
    logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)

    quantizer = MatMulNBitsQuantizer(
        model, bits=8, block_size=block, is_symmetric=True, accuracy_level=4, nodes_to_exclude=exclude
    )
    quantizer.process()
    return quantizer.model.model


def _quantize_dynamic(source: Path, target_path: Path, target: QuantTarget, recipe: Recipe, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target_path),
        # Same weight types as optimum's configs (sentence-transformers' files): QUInt8 on AVX2.
        weight_type=QuantType.QUInt8 if target is QuantTarget.AVX2 else QuantType.QInt8,
        per_channel=recipe.per_channel,
        reduce_range=False,
        nodes_to_exclude=exclude,
        op_types_to_quantize=["MatMul", "Attention"],
        # Fused contrib ops (Attention, SkipLayerNormalization) defeat ONNX shape inference.
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
