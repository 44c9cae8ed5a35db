"""Per-token INT8: each token row of a MatMul's input gets its own activation scale.

Plain dynamic quantization uses one activation scale for the whole padded batch tensor, so an
outlier token (or text) wrecks the precision of every other row. Here every MatMul with a
constant FP32 weight ``W (K, N)`` becomes::

    peak   = max(ReduceMax(|X|, last axis), eps)                     # (..., 1), one per token
    Xq     = QuantizeLinear(X * (1 / peak), 1 / 127, 128)            # uint8, zero point 128
    Y      = MatMulIntegerToFloat(Xq, Wq, peak, w_scale / 127, 128)  # com.microsoft, MLAS u8s8 GEMM

with ``Wq`` int8 symmetric per output channel (``w_scale (N,)``). ``MatMulIntegerToFloat``
multiplies the int32 product by ``peak * w_scale / 127`` (the per-token factor broadcast over
the output); folding the 1/127 into the constant weight scale saves one op per activation. The
uint8 activation side matters: ORT's int8-activation path is ~10x slower.

A following bias ``Add`` stays a separate node: ORT 1.32's ``MatMulIntegerToFloat`` multiplies its
optional ``bias`` input by a non-scalar ``a_scale`` (checked against numpy: the output is
``A·B·a_scale·b_scale + bias·a_scale``), so folding the bias in would be wrong here.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import (
    MS_DOMAIN,
    constant_weight,
    declare_domain,
    drop_unused_initializers,
    initializers,
    node_label,
    replace_nodes,
)

__all__ = ["rewrite_per_token"]

_CONSTS: dict[str, np.ndarray] = {
    "fea_pt_axes": np.array([-1], np.int64),
    "fea_pt_inv127": np.array(1 / 127.0, np.float32),
    "fea_pt_eps": np.array(1e-8, np.float32),
    "fea_pt_zp": np.array(128, np.uint8),
}


def _quantize_activation(x: str, opset: int) -> tuple[list[onnx.NodeProto], str, str]:
    """Nodes that quantize ``x`` per token to uint8 (zero point 128); returns (nodes, quantized, scale)."""
    p = f"{x}/fea_pt"
    nodes = [
        helper.make_node("Abs", [x], [f"{p}/abs"], name=f"{p}/Abs"),
        _reduce_max(f"{p}/abs", f"{p}/amax", f"{p}/ReduceMax", opset),
        helper.make_node("Max", [f"{p}/amax", "fea_pt_eps"], [f"{p}/peak"], name=f"{p}/Max"),
        helper.make_node("Reciprocal", [f"{p}/peak"], [f"{p}/inv"], name=f"{p}/Reciprocal"),
        helper.make_node("Mul", [x, f"{p}/inv"], [f"{p}/xs"], name=f"{p}/MulX"),
        helper.make_node(
            "QuantizeLinear", [f"{p}/xs", "fea_pt_inv127", "fea_pt_zp"], [f"{p}/xq"], name=f"{p}/Quantize"
        ),
    ]
    return nodes, f"{p}/xq", f"{p}/peak"


def _reduce_max(x: str, out: str, name: str, opset: int) -> onnx.NodeProto:
    """ReduceMax over the last axis, keepdims; ``axes`` is an input from opset 18, an attribute before."""
    if opset >= 18:
        return helper.make_node("ReduceMax", [x, "fea_pt_axes"], [out], keepdims=1, name=name)
    return helper.make_node("ReduceMax", [x], [out], axes=[-1], keepdims=1, name=name)


def rewrite_per_token(model: onnx.ModelProto, exclude: Collection[str] = ()) -> int:
    """Rewrite every constant-weight MatMul (except ``exclude``) in place; return the count.

    Consumers of the same activation (e.g. Q, K and V) share one activation quantization.
    """
    graph = model.graph
    weights = initializers(graph)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    added: list[onnx.TensorProto] = []  # joins the graph after the FP32 weights are dropped
    quantized: dict[str, tuple[str, str]] = {}

    def rewrite(node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
        weight = constant_weight(node, weights)
        if weight is None or node_label(node) in exclude:
            return None
        nodes: list[onnx.NodeProto] = []
        x = node.input[0]
        if x not in quantized:
            quant_nodes, xq, scale = _quantize_activation(x, opset)
            nodes += quant_nodes
            quantized[x] = (xq, scale)
        xq, scale = quantized[x]
        w = numpy_helper.to_array(weight)
        w_scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        w_q = np.clip(np.round(w / w_scale), -127, 127).astype(np.int8)
        p = f"{node_label(node)}/fea_pt"
        w_scale_127 = (w_scale / 127.0).astype(np.float32)  # the activation side passes the peak, not peak/127
        added.extend([numpy_helper.from_array(w_q, f"{p}/wq"), numpy_helper.from_array(w_scale_127, f"{p}/ws")])
        nodes.append(
            helper.make_node(
                "MatMulIntegerToFloat",
                [xq, f"{p}/wq", scale, f"{p}/ws", "fea_pt_zp"],
                list(node.output),
                domain=MS_DOMAIN,
                name=f"{p}/MatMulIntegerToFloat",
            )
        )
        return nodes

    count = replace_nodes(graph, rewrite)
    drop_unused_initializers(graph)
    graph.initializer.extend(added + [numpy_helper.from_array(value, name) for name, value in _CONSTS.items()])
    declare_domain(model, MS_DOMAIN)
    return count
