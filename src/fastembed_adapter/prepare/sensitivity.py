"""Measured per-node INT8 sensitivity: how much error each quantized MatMul adds.

Both the FP32 graph and a quantized candidate keep the names of every constant-weight MatMul's
input ``X`` and output ``Y``. Running both on calibration texts, the relative error a node adds is
``err(Y) - err(X)``, where ``err(T)`` is the mean over texts of ``||T_int8 - T_fp32|| / ||T_fp32||``
on each text's real tokens: the comparison ONNX Runtime's ``qdq_loss_debug`` makes, per text so a
two-token query weighs as much as a passage (the validation gate is a per-text minimum), and as a
difference so that error inherited from earlier layers is not charged to the deeper ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from .graph import constant_matmul_inputs, node_label, producers

__all__ = ["node_errors"]

# Texts per run: both sessions keep every MatMul input and output of the batch, ~0.66 MB per token
# on all-mpnet-base-v2, so two 384-token passages hold ~0.5 GB per session (4.7 GB peak measured
# for the whole step, against 11 GB with 8 texts per run).
_BATCH = 2


def node_errors(
    fp32: onnx.ModelProto,
    quantized: onnx.ModelProto,
    folder: Path,
    texts: list[str],
    threads: int | None = None,
) -> dict[str, float]:
    """Relative error added by each constant-weight MatMul of ``fp32`` (by node name) in ``quantized``."""
    from .capture import capture_runner, text_batches

    nodes = [node for group in constant_matmul_inputs(fp32).values() for node in group]
    produced = set(producers(quantized.graph)) | {tensor.name for tensor in quantized.graph.input}
    nodes = [node for node in nodes if node.input[0] in produced and node.output[0] in produced]
    tensors = sorted({name for node in nodes for name in (node.input[0], node.output[0])})
    run_reference, run_candidate = (capture_runner(model, tensors, threads) for model in (fp32, quantized))
    total = dict.fromkeys(tensors, 0.0)  # sum over texts of each text's relative error
    for features in text_batches(folder, texts, _BATCH):
        mask = features["attention_mask"].astype(np.float64)
        reference, candidate = run_reference(features), run_candidate(features)
        for name, ref, got in zip(tensors, reference, candidate, strict=True):
            if ref.ndim != 3 or ref.shape[:2] != mask.shape:
                continue
            error = np.einsum("bs,bsh->b", mask, (got.astype(np.float64) - ref) ** 2)
            norm = np.einsum("bs,bsh->b", mask, ref.astype(np.float64) ** 2)
            total[name] += float(np.sum(np.sqrt(error / np.maximum(norm, 1e-30))))
    error = {name: value / max(len(texts), 1) for name, value in total.items()}
    return {node_label(node): float(error[node.output[0]] - error[node.input[0]]) for node in nodes}
