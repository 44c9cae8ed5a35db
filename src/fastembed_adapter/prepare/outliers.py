"""Outlier-channel decomposition for per-token INT8 (LLM.int8()-style, with calibrated channels).

BERT-family LayerNorm outputs carry a few huge channels (all-MiniLM-L6-v2: channel 99 reaches
~15x the median channel on the [CLS] row). A per-token scale then has to cover that channel, and
every other channel of the row loses its precision; short texts, whose embedding is mostly [CLS]
and [SEP], suffer most. Here, for each activation tensor ``X`` feeding constant-weight MatMuls, the
channels whose calibrated ``max|X_j|`` exceed ``factor`` x the median (at most ``max_channels``)
leave the INT8 path::

    X_int8_part = X * mask                      # outlier channels zeroed (one Mul, shared)
    Y = MatMul(X_int8_part, W) + MatMul(Gather(X, outliers), W[outliers])   # 2nd term FP32, K <= 8

which is exact in FP32; the first MatMul is then rewritten per token (``rewrite_per_token``) with
outlier-free scales. (Fused ``Attention`` projections are reached after ``attention.unfuse_attention``.)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import WeightWriter, constant_matmul_inputs, insert_nodes, node_label

__all__ = ["split_outliers"]


def outlier_channels(peak: np.ndarray, factor: float, max_channels: int) -> list[int]:
    """Channels whose calibrated ``max|x|`` is above ``factor`` x the median channel's, largest first."""
    median = float(np.median(peak))
    order = np.argsort(-peak, kind="stable")[:max_channels]
    return [int(j) for j in order if peak[j] > factor * median]


def split_outliers(
    model: onnx.ModelProto, stats: dict[str, np.ndarray], factor: float = 3.0, max_channels: int = 8
) -> list[str]:
    """Decompose every calibrated MatMul input with outlier channels, in place.

    Returns the names of the added FP32 side MatMuls (they must stay FP32: exclude them from
    ``rewrite_per_token``).
    """
    graph = model.graph
    weights = WeightWriter(model)
    before: dict[str, list[onnx.NodeProto]] = {}  # output of the first consumer → nodes to insert before it
    after: dict[str, list[onnx.NodeProto]] = {}  # output of a consumer → nodes to insert after it
    side_names: list[str] = []
    for tensor, consumers in constant_matmul_inputs(model).items():
        channels = outlier_channels(stats[tensor], factor, max_channels) if tensor in stats else []
        if not channels:
            continue
        prefix = f"{tensor}/fea_outliers"
        mask = np.ones(len(stats[tensor]), np.float32)
        mask[channels] = 0.0
        graph.initializer.extend(
            [
                numpy_helper.from_array(mask, f"{prefix}/mask"),
                numpy_helper.from_array(np.array(channels, np.int64), f"{prefix}/channels"),
            ]
        )
        for node in consumers:
            weight = weights.read(node)
            side = f"{node_label(node)}/fea_outliers"
            graph.initializer.append(numpy_helper.from_array(weight[channels].astype(np.float32), f"{side}/w"))
            inliers = weight.copy()
            inliers[channels] = 0.0  # those rows meet zeros; dropping them sharpens the INT8 weight scales
            weights.write(node, inliers, "fea_outliers")
            output = node.output[0]
            node.input[0], node.output[0] = f"{prefix}/inliers", f"{side}/inliers_out"
            after[node.output[0]] = [
                helper.make_node("MatMul", [f"{prefix}/x", f"{side}/w"], [f"{side}/out"], name=f"{side}/MatMul"),
                helper.make_node("Add", [f"{side}/inliers_out", f"{side}/out"], [output], name=f"{side}/Add"),
            ]
            side_names.append(f"{side}/MatMul")
        before[consumers[0].output[0]] = [
            helper.make_node("Mul", [tensor, f"{prefix}/mask"], [f"{prefix}/inliers"], name=f"{prefix}/Mul"),
            helper.make_node(
                "Gather", [tensor, f"{prefix}/channels"], [f"{prefix}/x"], axis=-1, name=f"{prefix}/Gather"
            ),
        ]
    insert_nodes(graph, before, after)
    return side_names
