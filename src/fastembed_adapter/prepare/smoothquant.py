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
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "CAPTURE_BATCH",
    "WeightWriter",
    "calibrate_absmax",
    "constant_matmul_inputs",
    "constant_weight",
    "norm_outputs",
    "smooth",
]

# Texts per run when every MatMul input is a graph output: all-mpnet-base-v2 exposes ~0.4 MB per
# token, so 8 passages of 384 tokens already hold ~1.4 GB of activations.
CAPTURE_BATCH = 8

_CLIP = (1e-2, 1e2)

# Per-channel parameters of ops whose output scales linearly with them: input indices to divide by s.
_AFFINE_PARAMS = {
    "LayerNormalization": (1, 2),  # scale, bias
    "SkipLayerNormalization": (2, 3),  # gamma, beta (com.microsoft)
    "SimplifiedLayerNormalization": (1,),
    "SkipSimplifiedLayerNormalization": (2,),
    "RMSNormalization": (1,),
}


def constant_weight(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> onnx.TensorProto | None:
    """The constant 2-D FP32 weight a MatMul multiplies its input by, or None for any other node."""
    if node.op_type != "MatMul" or len(node.input) != 2:
        return None
    weight = weights.get(node.input[1])
    if weight is None or len(weight.dims) != 2 or weight.data_type != TensorProto.FLOAT:
        return None
    return weight


class WeightWriter:
    """Reads and rewrites a node's constant weight (``input[1]``) without touching other users of it.

    A weight shared by several nodes (cross-layer sharing, tied projections) gets a private copy
    for each rewritten node instead of being changed for all of them.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self._graph = model.graph
        self._weights = {init.name: init for init in model.graph.initializer}
        self._uses: dict[str, int] = defaultdict(int)
        for node in model.graph.node:
            for name in node.input:
                self._uses[name] += 1
        for output in model.graph.output:
            self._uses[output.name] += 1

    def read(self, node: onnx.NodeProto) -> np.ndarray:
        """The node's weight as an array."""
        array: np.ndarray = numpy_helper.to_array(self._weights[node.input[1]])
        return array

    def write(self, node: onnx.NodeProto, array: np.ndarray, tag: str) -> None:
        """Give ``node`` the weight ``array``: in place if only it uses the weight, else as a private copy."""
        name = node.input[1]
        if self._uses[name] > 1:
            self._uses[name] -= 1
            name = f"{name}/{tag}/{node.name or node.output[0]}"
            self._weights[name] = self._graph.initializer.add()
            self._uses[name] = 1
            node.input[1] = name
        self._weights[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))


def constant_matmul_inputs(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Activation tensor → the MatMul nodes that multiply it by a constant 2-D FP32 weight."""
    weights = {init.name: init for init in model.graph.initializer}
    groups: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        if constant_weight(node, weights) is not None:
            groups[node.input[0]].append(node)
    return dict(groups)


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
    producer = {out: node for node in graph.node for out in node.output}
    resolve = _constant_resolver(graph, producer)
    found = {
        node.output[0]
        for node in graph.node
        if node.output and node.op_type.endswith(("LayerNormalization", "RMSNormalization"))
    }

    @functools.cache
    def reaches_mean(tensor: str, depth: int) -> bool:
        node = producer.get(tensor)
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


def calibrate_absmax(
    source: Path | onnx.ModelProto, folder: Path, texts: list[str], tensors: list[str], threads: int | None = None
) -> dict[str, np.ndarray]:
    """Per-channel ``max|x|`` of each tensor over the real (unpadded) tokens of ``texts``."""
    from .capture import capture_runner, text_batches

    model = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))
    run = capture_runner(model, tensors, threads)
    stats: dict[str, np.ndarray] = {}
    for features in text_batches(folder, texts, CAPTURE_BATCH):
        mask = features["attention_mask"].astype(bool)
        for name, value in zip(tensors, run(features), strict=True):
            rows = value[mask] if value.shape[:2] == mask.shape else value.reshape(-1, value.shape[-1])
            peak = np.abs(rows).max(axis=0)
            stats[name] = peak if name not in stats else np.maximum(stats[name], peak)
    return stats


def smooth(model: onnx.ModelProto, stats: dict[str, np.ndarray], alpha: float) -> tuple[int, int]:
    """Smooth every calibrated MatMul input of ``model`` in place.

    Returns (tensors smoothed, of which folded into their producer's parameters without a new op).
    """
    graph = model.graph
    weights = WeightWriter(model)
    producers = {out: node for node in graph.node for out in node.output}
    resolve = _constant_resolver(graph, producers)
    uses: dict[str, int] = defaultdict(int)
    for node in graph.node:
        for name in node.input:
            uses[name] += node.op_type != "Shape"  # reading the shape does not see the values
    for output in graph.output:
        uses[output.name] += 1
    inserted: dict[str, onnx.NodeProto] = {}  # first consumer's output → the Mul to put before it
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
        producer = producers.get(tensor)
        exclusive = uses[tensor] == len(consumers)
        if exclusive and producer is not None and _fold(graph, producer, tensor, inverse, resolve):
            folded += 1
            continue
        name, smoothed_name = f"{tensor}/fea_sq_inv", f"{tensor}/fea_sq"
        graph.initializer.append(numpy_helper.from_array(inverse, name))
        inserted[consumers[0].output[0]] = helper.make_node(
            "Mul", [tensor, name], [smoothed_name], name=f"{tensor}/fea_sq_mul"
        )
        for node in consumers:
            node.input[0] = smoothed_name
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.output and node.output[0] in inserted:
            nodes.append(inserted[node.output[0]])
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
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
        name = f"{producer.input[index]}/fea_sq/{producer.name or tensor}"
        graph.initializer.append(numpy_helper.from_array((param * inverse).astype(np.float32), name))
        producer.input[index] = name
    return True


def _constant_resolver(
    graph: onnx.GraphProto, producers: dict[str, onnx.NodeProto]
) -> Callable[[str], np.ndarray | None]:
    """Value of a constant tensor: an initializer, a ``Constant`` node, or an ``Identity`` of either.

    torch's exporter aliases identical weights (every norm weight of an untrained model is ones)
    through ``Identity`` nodes, and writes small constants as ``Constant`` nodes.
    """
    constants = {init.name: init for init in graph.initializer}

    def resolve(name: str) -> np.ndarray | None:
        for _ in range(4):
            if name in constants:
                array: np.ndarray = numpy_helper.to_array(constants[name])
                return array
            node = producers.get(name)
            if node is None:
                return None
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                return None if value is None else numpy_helper.to_array(value)
            if node.op_type != "Identity":
                return None
            name = node.input[0]
        return None

    return resolve
