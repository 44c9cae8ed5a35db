"""The ONNX graph plumbing every INT8 rewrite shares, on the protobuf, in place.

Lookups by tensor name (initializers, producers, use counts, constant values), the constant-weight
MatMuls the rewrites target, weight edits that leave other users of a shared weight alone, and
the node-list edits (replace or insert nodes, keeping the order topological) that ``repeated``
protobuf fields make awkward. Tensors and nodes are named by strings, as in the protobuf.

The rewrites work on ``onnx.ModelProto`` rather than ``onnx_ir``: their callers (ONNX Runtime
sessions, ORT's quantizers, ``onnx.save``) take protobufs, and a round trip through ``onnx_ir``
rewrites the file (it adds ``value_info`` entries), which would change the INT8 files' bytes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "MS_DOMAIN",
    "WeightWriter",
    "all_nodes",
    "constant_matmul_inputs",
    "constant_resolver",
    "constant_weight",
    "declare_domain",
    "declare_used_domains",
    "drop_unused_initializers",
    "initializers",
    "insert_nodes",
    "node_label",
    "producers",
    "replace_nodes",
    "use_counts",
    "with_outputs",
]

MS_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib operators


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializer name → tensor."""
    return {init.name: init for init in graph.initializer}


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Tensor name → the node that outputs it (graph inputs and initializers have none)."""
    return {out: node for node in graph.node for out in node.output}


def use_counts(graph: onnx.GraphProto, skip: Collection[str] = ()) -> Counter[str]:
    """How often each tensor is read: as a node input (except by ``skip`` op types) or as a graph output."""
    uses = Counter(name for node in graph.node if node.op_type not in skip for name in node.input)
    uses.update(output.name for output in graph.output)
    return uses


def node_label(node: onnx.NodeProto) -> str:
    """The node's name, or its first output's when it has none: the prefix of the names a rewrite adds."""
    return node.name or node.output[0]


def constant_resolver(
    graph: onnx.GraphProto, producer_of: Mapping[str, onnx.NodeProto]
) -> Callable[[str], np.ndarray | None]:
    """Value of a constant tensor: an initializer, a ``Constant`` node, or an ``Identity`` of either.

    torch's exporter aliases identical weights (every norm weight of an untrained model is ones)
    through ``Identity`` nodes, and writes small constants as ``Constant`` nodes. ``producer_of``
    is ``producers(graph)``, which callers usually hold already.
    """
    constants = initializers(graph)

    def resolve(name: str) -> np.ndarray | None:
        for _ in range(4):
            if name in constants:
                array: np.ndarray = numpy_helper.to_array(constants[name])
                return array
            node = producer_of.get(name)
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


def constant_weight(node: onnx.NodeProto, weights: Mapping[str, onnx.TensorProto]) -> onnx.TensorProto | None:
    """The constant 2-D FP32 weight a MatMul multiplies its input by, or None for any other node."""
    if node.op_type != "MatMul" or len(node.input) != 2:
        return None
    weight = weights.get(node.input[1])
    if weight is None or len(weight.dims) != 2 or weight.data_type != TensorProto.FLOAT:
        return None
    return weight


def constant_matmul_inputs(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Activation tensor → the MatMul nodes that multiply it by a constant 2-D FP32 weight, in graph order."""
    weights = initializers(model.graph)
    groups: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        if constant_weight(node, weights) is not None:
            groups[node.input[0]].append(node)
    return dict(groups)


class WeightWriter:
    """Reads and rewrites a node's constant weight (``input[1]``) without touching other users of it.

    A weight shared by several nodes (cross-layer sharing, tied projections) gets a private copy
    for each rewritten node instead of being changed for all of them.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        """Index ``model``'s initializers and how often each tensor is read."""
        self._graph = model.graph
        self._weights = initializers(model.graph)
        self._uses = use_counts(model.graph)

    def read(self, node: onnx.NodeProto) -> np.ndarray:
        """The node's weight as an array."""
        array: np.ndarray = numpy_helper.to_array(self._weights[node.input[1]])
        return array

    def write(self, node: onnx.NodeProto, array: np.ndarray, tag: str) -> None:
        """Give ``node`` the weight ``array``: in place if only it uses the weight, else as a private copy."""
        name = node.input[1]
        if self._uses[name] > 1:
            self._uses[name] -= 1
            name = f"{name}/{tag}/{node_label(node)}"
            self._weights[name] = self._graph.initializer.add()
            self._uses[name] = 1
            node.input[1] = name
        self._weights[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))


def replace_nodes(graph: onnx.GraphProto, rewrite: Callable[[onnx.NodeProto], Sequence[onnx.NodeProto] | None]) -> int:
    """Put ``rewrite(node)``'s nodes in place of each node it returns some for (None keeps it); return how many.

    ``rewrite`` sees the nodes in graph order, once each; the new nodes take the old one's place,
    so a topologically sorted graph stays sorted when they only read what the old node could.
    """
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        new = rewrite(node)
        if new is None:
            nodes.append(node)
        else:
            nodes.extend(new)
            count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def insert_nodes(
    graph: onnx.GraphProto,
    before: Mapping[str, Sequence[onnx.NodeProto]],
    after: Mapping[str, Sequence[onnx.NodeProto]] | None = None,
) -> None:
    """Insert ``before[t]`` just before, and ``after[t]`` just after, the node whose first output is ``t``."""
    following = after or {}

    def around(node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
        key = node.output[0] if node.output else ""
        if key not in before and key not in following:
            return None
        return [*before.get(key, ()), node, *following.get(key, ())]

    replace_nodes(graph, around)


def drop_unused_initializers(graph: onnx.GraphProto, among: Collection[str] | None = None) -> None:
    """Remove the initializers no node or graph output reads (only those named in ``among``, if given)."""
    uses = use_counts(graph)
    kept = [init for init in graph.initializer if init.name in uses or (among is not None and init.name not in among)]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def declare_domain(model: onnx.ModelProto, domain: str, version: int = 1) -> None:
    """Add ``domain`` to the model's opset imports unless it is there already."""
    if not any(entry.domain == domain for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, version))


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Nodes of ``graph`` and of its subgraphs (``If`` branches, loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from all_nodes(sub)


def declare_used_domains(model: onnx.ModelProto) -> None:
    """Declare (version 1, in name order) each operator domain a node uses, subgraphs included, that is not imported."""
    for domain in sorted({node.domain for node in all_nodes(model.graph)} - {"", "ai.onnx"}):
        declare_domain(model, domain)


def with_outputs(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensors`` (as FP32 of any shape), for reading intermediates."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {output.name for output in copy.graph.output}
    copy.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tensors if name not in present
    )
    return copy
