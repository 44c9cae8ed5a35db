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
outlier-free scales. Fused ``Attention`` nodes are first split into a Q/K/V ``MatMul`` and
``MultiHeadAttention`` so their projections can be quantized the same way.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .smoothquant import WeightWriter, constant_matmul_inputs

__all__ = ["mask_free_when_unpadded", "split_outliers", "unfuse_attention"]

_MS_DOMAIN = "com.microsoft"


def mask_free_when_unpadded(model: onnx.ModelProto) -> int:
    """Give each masked ``MultiHeadAttention`` a mask-free twin for batches without padding; return the count.

    ONNX Runtime's CPU ``MultiHeadAttention`` takes its flash-attention kernel only when no key
    padding mask is given; with one it runs the classic path, which measured 1.35x slower on a
    32 x 256 batch and 2x on 32 x 20 (MiniLM's heads). A batch whose ``attention_mask`` is all ones
    needs no mask, so each such node becomes ``If(min(attention_mask) != 0, MHA(q, k, v, b),
    MHA(q, k, v, b, mask))``: the same result (within float rounding), chosen per run at ~1 µs a
    layer. Applied last, after every pass that scans top-level node inputs. Only the nodes
    ``unfuse_attention`` made are wrapped: their mask is the key padding mask ORT's BERT fusion
    derives from ``attention_mask``. Graphs without an ``attention_mask`` input are left alone.
    (The condition needs a non-empty ``attention_mask``: BERT-family tokenizers always add
    special tokens, and ``encode()`` never runs an empty batch.)
    """
    graph = model.graph
    if "attention_mask" not in {value.name for value in graph.input}:
        return 0
    cond = "fea_unpadded/no_padding"
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        ours = node.op_type == "MultiHeadAttention" and "/fea_unfused/" in node.name  # made by unfuse_attention
        if not (ours and len(node.input) == 5 and len(node.output) == 1):
            nodes.append(node)
            continue
        if count == 0:
            nodes += [
                helper.make_node("ReduceMin", ["attention_mask"], ["fea_unpadded/min"], keepdims=0),
                helper.make_node("Cast", ["fea_unpadded/min"], [cond], to=onnx.TensorProto.BOOL),
            ]
        name, out = node.name or node.output[0], node.output[0]
        branches = {}
        for branch, inputs in (("then", node.input[:4]), ("else", node.input)):
            inner = onnx.NodeProto()
            inner.CopyFrom(node)
            del inner.input[:]
            inner.input.extend(inputs)
            inner.output[0], inner.name = f"{out}/fea_{branch}", f"{name}/fea_{branch}"
            result = helper.make_tensor_value_info(inner.output[0], onnx.TensorProto.FLOAT, None)
            branches[f"{branch}_branch"] = helper.make_graph([inner], f"{name}/fea_{branch}", [], [result])
        nodes.append(helper.make_node("If", [cond], [out], name=f"{name}/fea_If", **branches))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def unfuse_attention(model: onnx.ModelProto) -> int:
    """Rewrite plain fused ``Attention(X, W_qkv, b, mask_index)`` nodes in place; return the count.

    Each becomes ``MatMul(X, W_qkv) → Split → MultiHeadAttention(q, k, v, b, mask_index)``, which
    computes the same thing (the bias is added inside ``MultiHeadAttention``). Nodes with extra
    inputs or attributes (past state, attention bias, unequal Q/K/V sizes) are left alone.
    """
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = weights.get(node.input[1]) if node.op_type == "Attention" and len(node.input) > 1 else None
        simple = (
            node.domain == _MS_DOMAIN
            and weight is not None
            and len(node.input) in (3, 4)
            and set(attributes) <= {"num_heads", "mask_filter_value"}
            and weight.dims[1] == 3 * weight.dims[0]
        )
        if not simple or weight is None:
            nodes.append(node)
            continue
        prefix, hidden = f"{node.name or node.output[0]}/fea_unfused", weight.dims[0]
        graph.initializer.append(numpy_helper.from_array(np.array([hidden] * 3, np.int64), f"{prefix}/split"))
        mask = list(node.input[3:4])
        nodes += [
            helper.make_node("MatMul", [node.input[0], node.input[1]], [f"{prefix}/qkv"], name=f"{prefix}/MatMul"),
            helper.make_node(
                "Split",
                [f"{prefix}/qkv", f"{prefix}/split"],
                [f"{prefix}/{x}" for x in "qkv"],
                axis=-1,
                name=f"{prefix}/Split",
            ),
            helper.make_node(
                "MultiHeadAttention",
                [f"{prefix}/q", f"{prefix}/k", f"{prefix}/v", node.input[2], *mask],
                list(node.output),
                domain=_MS_DOMAIN,
                name=f"{prefix}/MultiHeadAttention",
                **attributes,
            ),
        ]
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


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
            side = f"{node.name or node.output[0]}/fea_outliers"
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
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        key = node.output[0] if node.output else ""
        nodes += before.get(key, [])
        nodes.append(node)
        nodes += after.get(key, [])
    del graph.node[:]
    graph.node.extend(nodes)
    return side_names
