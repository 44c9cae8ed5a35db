"""The graph helpers the INT8 rewrites share, on a small hand-built graph run by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fastembed_adapter.prepare.graph import (
    MS_DOMAIN,
    WeightWriter,
    constant_matmul_inputs,
    constant_resolver,
    constant_weight,
    declare_domain,
    drop_unused_initializers,
    initializers,
    insert_nodes,
    node_label,
    producers,
    replace_nodes,
    use_counts,
    with_outputs,
)

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
SHARED = RNG.normal(size=(3, 3)).astype(np.float32)
C = np.array([1.0, 2.0, 3.0], np.float32)
X = RNG.normal(size=(2, 4)).astype(np.float32)


def _model() -> onnx.ModelProto:
    """x → MatMul(W) → a; W aliased through Identity; a + Constant → d; d @ SHARED twice; Shape(d); an unused init."""
    n = helper.make_node
    nodes = [
        n("Identity", ["W"], ["W_alias"], name="alias"),
        n("MatMul", ["x", "W"], ["a"], name="mm_w"),
        n("MatMul", ["x", "W_alias"], ["a2"], name="mm_alias"),  # weight not an initializer: not a constant weight
        n("Constant", [], ["c"], value=numpy_helper.from_array(C, "c")),
        n("Add", ["a", "c"], ["d"], name="add"),
        n("Shape", ["d"], ["d_shape"], name="shape"),
        n("MatMul", ["d", "shared"], ["e"], name="mm_shared_1"),
        n("MatMul", ["d", "shared"], ["f"]),  # no name: labelled by its output
        n("MatMul", ["d", "vec"], ["g"], name="mm_vec"),  # 1-D weight: not a constant 2-D projection
        n("Add", ["e", "f"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("a2", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("d_shape", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("g", TensorProto.FLOAT, [2]),
        ],
        [
            numpy_helper.from_array(W, "W"),
            numpy_helper.from_array(SHARED, "shared"),
            numpy_helper.from_array(np.ones(3, np.float32), "vec"),
            numpy_helper.from_array(np.zeros(3, np.float32), "unused"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, outputs: list[str] | None = None) -> list[np.ndarray]:
    import onnxruntime as ort

    if all(output.type.tensor_type.HasField("shape") for output in model.graph.output):
        onnx.checker.check_model(model)  # also: the nodes are still topologically sorted
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(outputs, {"x": X}))


def _y(model: onnx.ModelProto) -> np.ndarray:
    return _run(model, ["y"])[0]


def test_lookups_by_tensor_name():
    graph = _model().graph
    assert list(initializers(graph)) == ["W", "shared", "vec", "unused"]
    made_by = producers(graph)
    assert made_by["d"].name == "add" and "x" not in made_by and "W" not in made_by
    uses = use_counts(graph)
    assert (uses["d"], uses["shared"], uses["W"], uses["y"], uses["a2"], uses["unused"]) == (4, 2, 2, 1, 1, 0)
    assert use_counts(graph, skip={"Shape"})["d"] == 3  # reading the shape does not see the values
    assert [node_label(node) for node in graph.node if node.input[:1] == ["d"]][1:3] == ["mm_shared_1", "f"]


def test_constant_resolver_follows_constants_and_aliases():
    graph = _model().graph
    resolve = constant_resolver(graph, producers(graph))
    np.testing.assert_array_equal(resolve("W"), W)
    np.testing.assert_array_equal(resolve("W_alias"), W)  # through the Identity
    np.testing.assert_array_equal(resolve("c"), C)  # a Constant node
    assert resolve("x") is None and resolve("d") is None and resolve("nowhere") is None


def test_constant_matmul_inputs_group_fp32_constant_weights():
    model = _model()
    groups = {tensor: [node_label(node) for node in nodes] for tensor, nodes in constant_matmul_inputs(model).items()}
    assert groups == {"x": ["mm_w"], "d": ["mm_shared_1", "f"]}
    weights = initializers(model.graph)
    assert [constant_weight(node, weights) is not None for node in model.graph.node].count(True) == 3


def test_weight_writer_copies_a_shared_weight_and_rewrites_a_private_one_in_place():
    model = _model()
    reference = _y(model)
    writer = WeightWriter(model)
    first = next(node for node in model.graph.node if node.name == "mm_shared_1")
    np.testing.assert_array_equal(writer.read(first), SHARED)
    writer.write(first, np.zeros((3, 3)), "t")  # "shared" has another user: first gets a private copy
    assert first.input[1] == "shared/t/mm_shared_1"
    second = next(node for node in model.graph.node if node.output[0] == "f")
    assert second.input[1] == "shared"
    np.testing.assert_array_equal(writer.read(second), SHARED)  # the other user's weight is untouched
    writer.write(second, 2 * SHARED, "t")  # now the only user of "shared": written in place
    assert second.input[1] == "shared" and len(model.graph.initializer) == 5
    np.testing.assert_allclose(_y(model), reference, rtol=1e-6)  # 0 * d + 2 * (d @ SHARED) == e + f


def test_replace_nodes_substitutes_in_place_and_counts():
    model = _model()
    reference = _y(model)

    def double_add(node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
        if node.op_type != "Add":
            return None
        half = f"{node.output[0]}/half"
        return [
            helper.make_node("Add", list(node.input), [half], name=f"{node.name}/add"),
            helper.make_node("Identity", [half], list(node.output), name=f"{node.name}/id"),
        ]

    assert replace_nodes(model.graph, double_add) == 2
    labels = [node_label(node) for node in model.graph.node]
    assert labels[4:6] == ["add/add", "add/id"] and labels[-2:] == ["sum/add", "sum/id"] and len(labels) == 12
    np.testing.assert_array_equal(_y(model), reference)
    assert replace_nodes(model.graph, lambda node: None) == 0 and len(model.graph.node) == 12


def test_insert_nodes_before_and_after_the_keyed_node():
    model = _model()
    reference = _y(model)
    scale = helper.make_node("Mul", ["d", "two"], ["d2"], name="scale")
    model.graph.initializer.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    first = next(node for node in model.graph.node if node.name == "mm_shared_1")
    first.input[0] = "d2"
    first.output[0] = "e2"
    halve = helper.make_node("Mul", ["e2", "half"], ["e"], name="halve")
    model.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    insert_nodes(model.graph, {"e2": [scale]}, {"e2": [halve]})
    labels = [node_label(node) for node in model.graph.node]
    assert labels[labels.index("mm_shared_1") - 1 : labels.index("mm_shared_1") + 2] == [
        "scale",
        "mm_shared_1",
        "halve",
    ]
    np.testing.assert_allclose(_y(model), reference, rtol=1e-6)


@pytest.mark.parametrize(("among", "left"), [(None, ["W", "shared"]), (["vec"], ["W", "shared", "unused"])])
def test_drop_unused_initializers(among, left):
    model = _model()
    model.graph.node.remove(next(node for node in model.graph.node if node.name == "mm_vec"))
    del model.graph.output[-1]  # "g" went with its MatMul: "vec" is unused now
    drop_unused_initializers(model.graph, among)
    assert [init.name for init in model.graph.initializer] == left


def test_declare_domain_once():
    model = _model()
    declare_domain(model, MS_DOMAIN)
    declare_domain(model, MS_DOMAIN)
    assert [(entry.domain, entry.version) for entry in model.opset_import] == [("", 17), (MS_DOMAIN, 1)]


def test_with_outputs_exposes_intermediates_on_a_copy():
    model = _model()
    copy = with_outputs(model, ["d", "y", "a"])
    assert [output.name for output in model.graph.output] == ["y", "a2", "d_shape", "g"]
    assert [output.name for output in copy.graph.output] == ["y", "a2", "d_shape", "g", "d", "a"]
    d, a = _run(copy, ["d", "a"])
    np.testing.assert_allclose(a, X @ W, rtol=1e-6)
    np.testing.assert_allclose(d, X @ W + C, rtol=1e-6)
