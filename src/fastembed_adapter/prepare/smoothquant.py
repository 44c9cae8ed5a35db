"""SmoothQuant-style channel smoothing, exact in FP32, before INT8 quantization.

Activation outlier channels make a per-token INT8 scale coarse for every other channel. For each
activation tensor ``X`` that feeds constant-weight MatMuls we compute, from calibration texts,
``s_j = max|X_j|^alpha / max|W_j,:|^(1 - alpha)`` (clipped to [1e-2, 1e2]), divide ``X`` by ``s``
and multiply every consumer's weight rows by ``s``: ``(X / s) @ (s * W) == X @ W``, so the FP32
graph is unchanged while the outliers move into the weights, which are quantized per output channel.

Where ``X`` feeds only those MatMuls and comes from a per-channel affine op with constant
parameters (a LayerNorm/RMSNorm's gamma and beta, or ``Mul(x, w)`` as an unfused RMSNorm ends),
the ``1/s`` is folded into those parameters and no op is added: pre-norm models (ModernBERT,
Qwen3, Gemma3). Otherwise (post-norm BERT/MPNet, whose LayerNorm output also feeds the residual
path) one ``Mul(X, 1/s)`` shared by the consumers is inserted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import (
    WeightWriter,
    constant_matmul_inputs,
    constant_resolver,
    insert_nodes,
    node_label,
    producers,
    use_counts,
)

__all__ = ["norm_outputs", "smooth"]

_CLIP = (1e-2, 1e2)

# Per-channel parameters of ops whose output scales linearly with them: input indices to divide by s.
_AFFINE_PARAMS = {
    "LayerNormalization": (1, 2),  # scale, bias
    "SkipLayerNormalization": (2, 3),  # gamma, beta (com.microsoft)
    "SimplifiedLayerNormalization": (1,),
    "SkipSimplifiedLayerNormalization": (2,),
    "RMSNormalization": (1,),
}


_ELEMENTWISE = {"Add", "Cast", "Div", "Identity", "Mul", "Pow", "Reciprocal", "Sqrt", "Sub"}


def norm_outputs(model: onnx.ModelProto) -> set[str]:
    """The outputs of LayerNorm / RMSNorm, where activation outlier channels live.

    Fused norms (ONNX ``LayerNormalization``, ORT's ``SkipLayerNormalization``, ``SimplifiedLayerNormalization``
    …) give their ``output[0]`` (the other outputs are statistics or the residual sum). An unfused norm
    ends in ``Mul(normalized, w)`` with a constant per-channel ``w`` (``x * rsqrt(mean(x²) + eps) * w``
    as exported for Qwen3 or Gemma3), the other operand reaching a ``ReduceMean`` through element-wise
    ops; an ``Add`` of a constant bias on top of that ``Mul`` (an unfused LayerNorm) counts instead.
    Gates, squares and other products of two activations do not.
    """
    graph = model.graph
    producer_of = producers(graph)
    resolve = constant_resolver(graph, producer_of)
    found = {
        node.output[0]
        for node in graph.node
        if node.output and node.op_type.endswith(("LayerNormalization", "RMSNormalization"))
    }

    @functools.cache
    def reaches_mean(tensor: str, depth: int) -> bool:
        node = producer_of.get(tensor)
        if node is None or depth == 0:
            return False
        if node.op_type == "ReduceMean":
            return True
        return node.op_type in _ELEMENTWISE and any(reaches_mean(name, depth - 1) for name in node.input)

    scaled = {
        node.output[0]
        for node in graph.node
        if node.op_type == "Mul"
        and (operand := _vector_operand(node, resolve)) is not None
        and reaches_mean(node.input[1 - operand[0]], 8)
    }
    found |= scaled
    for node in graph.node:  # x_hat * gamma + beta
        operand = _vector_operand(node, resolve) if node.op_type == "Add" else None
        if operand is not None and node.input[1 - operand[0]] in scaled:
            found.add(node.output[0])
    return found


def _vector_operand(node: onnx.NodeProto, resolve: Callable[[str], np.ndarray | None]) -> tuple[int, np.ndarray] | None:
    """(index, value) of a binary node's constant 1-D operand, when the other operand is not constant."""
    if len(node.input) != 2:
        return None
    values = [resolve(name) for name in node.input]
    constant = [i for i, value in enumerate(values) if value is not None]
    if len(constant) != 1:
        return None
    value = values[constant[0]]
    return (constant[0], value) if value is not None and value.ndim == 1 else None


def smooth(model: onnx.ModelProto, stats: dict[str, np.ndarray], alpha: float) -> tuple[int, int]:
    """Smooth every calibrated MatMul input of ``model`` in place.

    Returns (tensors smoothed, of which folded into their producer's parameters without a new op).
    """
    graph = model.graph
    weights = WeightWriter(model)
    producer_of = producers(graph)
    resolve = constant_resolver(graph, producer_of)
    uses = use_counts(graph, skip={"Shape"})  # reading the shape does not see the values
    inserted: dict[str, list[onnx.NodeProto]] = {}  # first consumer's output → the Mul to put before it
    smoothed = folded = 0
    for tensor, consumers in constant_matmul_inputs(model).items():
        if tensor not in stats:
            continue
        arrays = [weights.read(node) for node in consumers]
        weight_peak = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        x_peak = np.maximum(stats[tensor], 1e-5)
        scale = np.clip(x_peak**alpha / np.maximum(weight_peak, 1e-5) ** (1 - alpha), *_CLIP).astype(np.float32)
        inverse = (1.0 / scale).astype(np.float32)
        smoothed += 1
        for node, array in zip(consumers, arrays, strict=True):
            weights.write(node, array * scale[:, None], "fea_sq")
        producer = producer_of.get(tensor)
        exclusive = uses[tensor] == len(consumers)
        if exclusive and producer is not None and _fold(graph, producer, tensor, inverse, resolve):
            folded += 1
            continue
        name, smoothed_name = f"{tensor}/fea_sq_inv", f"{tensor}/fea_sq"
        graph.initializer.append(numpy_helper.from_array(inverse, name))
        inserted[consumers[0].output[0]] = [
            helper.make_node("Mul", [tensor, name], [smoothed_name], name=f"{tensor}/fea_sq_mul")
        ]
        for node in consumers:
            node.input[0] = smoothed_name
    insert_nodes(graph, inserted)
    return smoothed, folded


def _fold(
    graph: onnx.GraphProto,
    producer: onnx.NodeProto,
    tensor: str,
    inverse: np.ndarray,
    resolve: Callable[[str], np.ndarray | None],
) -> bool:
    """Divide ``producer``'s per-channel constant parameters by ``s`` (private copies); False if it can't."""
    if producer.output[0] != tensor:
        return False
    if producer.op_type in _AFFINE_PARAMS:
        indices = [i for i in _AFFINE_PARAMS[producer.op_type] if i < len(producer.input) and producer.input[i]]
        params = [resolve(producer.input[i]) for i in indices]
    elif producer.op_type == "Mul" and (operand := _vector_operand(producer, resolve)) is not None:
        indices, params = [operand[0]], [operand[1]]
    else:
        return False
    if not params or any(p is None or p.dtype != np.float32 or p.shape != inverse.shape for p in params):
        return False
    for index, param in zip(indices, params, strict=True):
        name = f"{producer.input[index]}/fea_sq/{node_label(producer)}"
        graph.initializer.append(numpy_helper.from_array((param * inverse).astype(np.float32), name))
        producer.input[index] = name
    return True
