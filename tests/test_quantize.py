"""INT8 recipes: SmoothQuant is exact in FP32, every recipe yields a loadable, close INT8 file."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from checks import FP32_MAX_ABS, TINY_INT8_MIN_COSINE, cosines
from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.cpu import detect_target
from fastembed_adapter.prepare.attention import mask_free_when_unpadded, unfuse_attention
from fastembed_adapter.prepare.capture import calibrate_absmax
from fastembed_adapter.prepare.embeddings import quantize_embedding_tables
from fastembed_adapter.prepare.graph import constant_matmul_inputs
from fastembed_adapter.prepare.outliers import split_outliers
from fastembed_adapter.prepare.pertoken import rewrite_per_token
from fastembed_adapter.prepare.quantize import RECIPES, Calibration, Recipe, quantize_int8
from fastembed_adapter.prepare.sensitivity import node_errors
from fastembed_adapter.prepare.smoothquant import norm_outputs, smooth
from fastembed_adapter.texts import calibration_texts
from tiny import FP32_FILE, TEXTS

CALIBRATION = calibration_texts()[:48]


def _encode(folder, name):
    return OnnxSentenceEncoder(folder, file_name=name, threads=1, cache_size=0, metrics=False).encode(TEXTS)


@pytest.fixture()
def work(prepared_base, tmp_path):
    def copy(arch: str):
        folder = tmp_path / arch
        shutil.copytree(prepared_base(arch), folder, ignore=shutil.ignore_patterns("fastembed_adapter.json"))
        return folder

    return copy


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_smoothing_is_exact_in_fp32(work, arch):
    folder = work(arch)
    model = onnx.load(str(folder / FP32_FILE))
    tensors = sorted(constant_matmul_inputs(model))
    stats = calibrate_absmax(folder / FP32_FILE, folder, CALIBRATION, tensors, threads=1)
    assert set(stats) == set(tensors) and all(v.ndim == 1 and (v >= 0).all() for v in stats.values())
    assert smooth(model, stats, alpha=0.65) == (len(tensors), 0)  # post-norm: every smoothing is a Mul
    onnx.save(model, str(folder / "onnx" / "model_smoothed.onnx"))
    np.testing.assert_allclose(
        _encode(folder, "onnx/model_smoothed.onnx"), _encode(folder, FP32_FILE), atol=FP32_MAX_ABS
    )


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_outlier_split_and_unfused_attention_are_exact_in_fp32(work, arch):
    folder = work(arch)
    model = onnx.load(str(folder / FP32_FILE))
    fused = sum(node.op_type == "Attention" for node in model.graph.node)
    assert unfuse_attention(model) == fused and fused == (2 if arch == "bert" else 0)
    assert not any(node.op_type == "Attention" for node in model.graph.node)
    tensors = sorted(constant_matmul_inputs(model))
    stats = calibrate_absmax(model, folder, CALIBRATION, tensors, threads=1)
    # factor 1: the top channels of every tensor count as outliers (a tiny random model has no real ones)
    sides = split_outliers(model, stats, factor=1.0, max_channels=3)
    assert len(sides) >= len(tensors)
    onnx.checker.check_model(model)  # also: nodes still topologically sorted
    onnx.save(model, str(folder / "onnx" / "model_split.onnx"))
    np.testing.assert_allclose(_encode(folder, "onnx/model_split.onnx"), _encode(folder, FP32_FILE), atol=FP32_MAX_ABS)


def test_mask_free_attention_when_the_batch_has_no_padding(work):
    """Unpadded batches take MultiHeadAttention without its mask (ORT's flash kernel); both paths are exact."""
    folder = work("bert")
    model = onnx.load(str(folder / FP32_FILE))
    assert unfuse_attention(model) == 2
    assert mask_free_when_unpadded(model) == 2
    ifs = [node for node in model.graph.node if node.op_type == "If"]
    branches = {a.name: [len(n.input) for n in a.g.node] for node in ifs for a in node.attribute}
    assert len(ifs) == 2 and branches == {"then_branch": [4], "else_branch": [5]}
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "onnx" / "model_maskfree.onnx"))
    encoder = OnnxSentenceEncoder(folder, file_name="onnx/model_maskfree.onnx", threads=1, cache_size=0, metrics=False)
    reference = _encode(folder, FP32_FILE)
    np.testing.assert_allclose(encoder.encode(TEXTS), reference, atol=FP32_MAX_ABS)  # padded: the masked branch
    alone = np.stack([encoder.encode(text) for text in TEXTS])  # one text, no padding: the mask-free branch
    np.testing.assert_allclose(alone, reference, atol=FP32_MAX_ABS)


@pytest.mark.parametrize(
    ("inputs", "name"),
    [(["x"], "a/fea_unfused/MultiHeadAttention"), (["x", "attention_mask"], "MultiHeadAttention_0")],
    ids=["no-attention_mask-input", "not-made-by-unfuse_attention"],
)
def test_mask_free_attention_leaves_other_graphs_alone(inputs, name):
    values = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 2, 4]) for n in inputs]
    mha = helper.make_node(
        "MultiHeadAttention", ["x", "x", "x", "b", "m"], ["y"], domain="com.microsoft", num_heads=1, name=name
    )
    graph = helper.make_graph([mha], "g", values, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    assert mask_free_when_unpadded(model) == 0 and [n.op_type for n in model.graph.node] == ["MultiHeadAttention"]


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_int8_vocabulary_table(work, arch):
    folder = work(arch)
    model = onnx.load(str(folder / FP32_FILE))
    vocab = max(init.dims[0] for init in model.graph.initializer if len(init.dims) == 2)
    assert quantize_embedding_tables(model) == 0  # the tiny vocabulary is below the default size
    assert quantize_embedding_tables(model, min_rows=1) == 1  # position/type tables are not indexed by input_ids
    tables = [
        init for init in model.graph.initializer if len(init.dims) == 2 and init.dims[0] == vocab and init.dims[1] > 1
    ]
    assert [init.data_type for init in tables] == [onnx.TensorProto.INT8]
    onnx.save(model, str(folder / "onnx" / "model_vocab8.onnx"))
    got, reference = _encode(folder, "onnx/model_vocab8.onnx"), _encode(folder, FP32_FILE)
    assert cosines(got, reference).min() >= 0.999
    assert not np.allclose(got, reference, atol=1e-7)  # the table really changed


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_gives_a_close_int8_file(work, arch, recipe):
    folder = work(arch)
    target = folder / "onnx" / "model_recipe.onnx"
    quantize_int8(
        folder / FP32_FILE, target, detect_target(), RECIPES[recipe], Calibration(folder, tuple(CALIBRATION), 1)
    )
    got, reference = _encode(folder, "onnx/model_recipe.onnx"), _encode(folder, FP32_FILE)
    assert cosines(got, reference).min() >= TINY_INT8_MIN_COSINE
    model = onnx.load(str(target))
    ops = [node.op_type for node in model.graph.node]
    constants = {init.name for init in model.graph.initializer}
    fp32_weight_matmuls = [
        n
        for n in model.graph.node
        if n.op_type == "MatMul" and n.input[1] in constants and "fea_outliers" not in n.name  # FP32 side paths
    ]
    if RECIPES[recipe].split_attention:
        # MultiHeadAttention sits in both branches of an If (mask-free when the batch has no padding)
        ifs = [node for node in model.graph.node if node.op_type == "If"]
        inner = [branch_node.op_type for node in ifs for a in node.attribute for branch_node in a.g.node]
        assert "Attention" not in ops and (inner == ["MultiHeadAttention"] * 4 or arch != "bert")
    if RECIPES[recipe].per_token:
        # one activation quantization per input tensor: Q, K and V (mpnet) share theirs
        assert ops.count("MatMulIntegerToFloat") > 0
        assert ops.count("QuantizeLinear") < ops.count("MatMulIntegerToFloat") or arch == "bert"
        assert not fp32_weight_matmuls or RECIPES[recipe].keep_fp32 != "none" or RECIPES[recipe].keep_sensitive
    elif RECIPES[recipe].nbits_block is not None:
        # 2 layers x (Q/K/V, out, up, down); mpnet has separate Q, K and V MatMuls
        kept = 2 if RECIPES[recipe].keep_fp32 == "ffn_down" else 0  # one down-projection per layer stays FP32
        assert ops.count("MatMulNBits") == (8 if arch == "bert" else 12) - kept
        assert len(fp32_weight_matmuls) == kept
        dims = {init.name: tuple(init.dims) for init in model.graph.initializer}
        assert all(dims[n.input[1]][0] > dims[n.input[1]][1] for n in fp32_weight_matmuls)  # (in, out): down
    else:
        assert "DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops or "MatMulInteger" in ops


def test_blocked_recipe_leaves_logging_alone(work):
    """Importing ORT's MatMulNBits quantizer runs logging.basicConfig(level=INFO): prepare must undo it.

    In a fresh interpreter (pytest's own log handlers would make basicConfig a no-op here).
    """
    folder = work("bert")
    code = (
        "import logging, pathlib, sys\n"
        "from fastembed_adapter.cpu import detect_target\n"
        "from fastembed_adapter.prepare.quantize import RECIPES, quantize_int8\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "quantize_int8(folder / 'onnx/model.onnx', folder / 'onnx/b8.onnx', detect_target(), RECIPES['blocked-8bit'])\n"
        "root = logging.getLogger()\n"
        "print(root.level, len(root.handlers))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(logging.WARNING), "0"]
    assert "skip to quantize" not in result.stderr and "INFO" not in result.stderr


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_norm_recipe_smooths_only_layernorm_outputs(work, arch):
    folder = work(arch)
    model = onnx.load(str(folder / FP32_FILE))
    unfuse_attention(model)
    inputs = constant_matmul_inputs(model)
    # per layer (2): the Q/K/V input and the FFN-up input come from a LayerNorm; attention-out and FFN-down do not
    assert len(inputs) == 8 and len(norm_outputs(model) & set(inputs)) == 4
    calibration = Calibration(folder, tuple(CALIBRATION), 1)
    details = {
        name: quantize_int8(
            folder / FP32_FILE, folder / "onnx" / f"{name}.onnx", detect_target(), RECIPES[name], calibration
        )
        for name in ("smooth-norm-per-token", "smooth-per-token")
    }
    assert details["smooth-norm-per-token"]["smoothed_tensors"] == 4
    assert details["smooth-per-token"]["smoothed_tensors"] == (8 if arch == "mpnet" else 6)  # fused Attention stays


@pytest.mark.parametrize("recipe", [name for name, recipe in RECIPES.items() if recipe.calibrated])
def test_calibrated_recipe_needs_texts(work, recipe):
    folder = work("bert")
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(folder / FP32_FILE, folder / "onnx" / "x.onnx", detect_target(), RECIPES[recipe])


@pytest.mark.parametrize("arch", ["bert", "mpnet"])
def test_node_errors_measure_what_quantization_adds(work, arch):
    folder = work(arch)
    fp32 = onnx.load(str(folder / FP32_FILE))
    names = sorted(node.name for nodes in constant_matmul_inputs(fp32).values() for node in nodes)
    assert sorted(node_errors(fp32, fp32, folder, CALIBRATION, threads=1).values()) == [0.0] * len(names)
    trial = onnx.ModelProto()
    trial.CopyFrom(fp32)
    rewrite_per_token(trial, exclude=names[1:])  # only the first MatMul quantized
    errors = node_errors(fp32, trial, folder, CALIBRATION, threads=1)
    assert sorted(errors) == names
    assert errors[names[0]] > 1e-4 and max(abs(errors[name]) for name in names[1:]) < errors[names[0]]


def test_sensitive_recipe_keeps_the_measured_nodes_fp32(work):
    folder = work("bert")
    target = folder / "onnx" / "model_sensitive.onnx"
    recipe = RECIPES["per-token-sensitive-fp32"]
    calibration = Calibration(folder, tuple(CALIBRATION), 1)
    details = quantize_int8(folder / FP32_FILE, target, detect_target(), recipe, calibration)
    total = sum(len(nodes) for nodes in constant_matmul_inputs(onnx.load(str(folder / FP32_FILE))).values())
    kept = details["fp32_matmuls"]
    assert len(kept) == max(1, round(recipe.keep_sensitive * total))
    model = onnx.load(str(target))
    assert {node.name for node in model.graph.node if node.op_type == "MatMul"} >= set(kept)


def _shared_weight_model(matmuls: int) -> onnx.ModelProto:
    """``matmuls`` MatMuls, each on its own input, all sharing one weight, plus one more on a private weight."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [2, 3, 8]) for i in range(matmuls + 1)]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [2, 3, 4]) for i in range(matmuls + 1)]
    nodes = [helper.make_node("MatMul", [f"x{i}", "w"], [f"y{i}"], name=f"mm{i}") for i in range(matmuls)]
    nodes.append(helper.make_node("MatMul", [f"x{matmuls}", "w_own"], [f"y{matmuls}"], name="own"))
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w_own"),
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("matmuls", [2, 6])
def test_outlier_split_keeps_shared_weights_and_order(matmuls):
    model = _shared_weight_model(matmuls)
    rng = np.random.default_rng(1)
    feeds = {f"x{i}": rng.normal(size=(2, 3, 8)).astype(np.float32) for i in range(matmuls + 1)}
    expected = _run(model, feeds)
    # a different outlier channel per input, so a wrongly shared rewrite would zero the wrong rows
    stats = {f"x{i}": np.where(np.arange(8) == i % 8, 10.0, 1.0) for i in range(matmuls + 1)}
    sides = split_outliers(model, stats, factor=3.0, max_channels=1)
    assert len(sides) == matmuls + 1
    onnx.checker.check_model(model)
    assert sum(node.op_type == "Add" for node in model.graph.node) == matmuls + 1
    for got, want in zip(_run(model, feeds), expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def _graph_with_norms() -> onnx.ModelProto:
    """x → unfused RMSNorm, unfused LayerNorm with bias, a square and a gate, each feeding a MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    c = 4
    consts = {
        "two": np.array(2.0, np.float32),
        "one": np.array(1.0, np.float32),
        "eps": np.array(1e-6, np.float32),
        "w": np.ones(c, np.float32),
        "gamma": np.ones(c, np.float32),
        "beta": np.zeros(c, np.float32),
        "W": np.ones((c, c), np.float32),
    }
    n = helper.make_node
    nodes = [
        # RMSNorm as Qwen3 exports it
        n("Pow", ["x", "two"], ["sq2"]),
        n("ReduceMean", ["sq2"], ["ms"], axes=[-1]),
        n("Add", ["ms", "eps"], ["ms_eps"]),
        n("Sqrt", ["ms_eps"], ["rms"]),
        n("Div", ["one", "rms"], ["inv"]),
        n("Mul", ["x", "inv"], ["normed"]),
        n("Mul", ["normed", "w"], ["rms_out"]),
        # LayerNorm with bias, unfused
        n("ReduceMean", ["x"], ["mean"], axes=[-1]),
        n("Sub", ["x", "mean"], ["d"]),
        n("Pow", ["d", "two"], ["d2"]),
        n("ReduceMean", ["d2"], ["var"], axes=[-1]),
        n("Add", ["var", "eps"], ["var_eps"]),
        n("Sqrt", ["var_eps"], ["std"]),
        n("Div", ["d", "std"], ["x_hat"]),
        n("Mul", ["x_hat", "gamma"], ["scaled"]),
        n("Add", ["scaled", "beta"], ["ln_out"]),
        # not norms: a square of the residual and a gate (two activations multiplied)
        n("Mul", ["x", "x"], ["square"]),
        n("Sigmoid", ["x"], ["sig"]),
        n("Mul", ["sig", "rms_out"], ["gated"]),
    ]
    outputs = []
    for i, tensor in enumerate(["rms_out", "ln_out", "square", "gated"]):
        nodes.append(n("MatMul", [tensor, "W"], [f"y{i}"]))
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, c]))
    graph = helper.make_graph(
        nodes,
        "norms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c])],
        outputs,
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_norm_outputs_finds_unfused_norms_and_nothing_else():
    model = _graph_with_norms()
    onnx.checker.check_model(model)
    feeding = set(constant_matmul_inputs(model))
    assert feeding == {"rms_out", "ln_out", "square", "gated"}
    assert norm_outputs(model) & feeding == {"rms_out", "ln_out"}


def test_norm_recipe_refuses_a_graph_without_norm_outputs(tmp_path):
    model = _graph_with_norms()
    keep = {"square", "gated"}
    for node in model.graph.node:  # only the non-norm MatMuls keep constant weights
        if node.op_type == "MatMul" and node.input[0] not in keep:
            node.input[1] = "x"
    source = tmp_path / "m.onnx"
    onnx.save(model, str(source))
    calibration = Calibration(tmp_path, ("a text",), 1)
    with pytest.raises(ValueError, match="no LayerNorm/RMSNorm output"):
        quantize_int8(source, tmp_path / "q.onnx", detect_target(), RECIPES["smooth-norm-per-token"], calibration)


@pytest.mark.parametrize(
    "kwargs",
    [{"nbits_block": 32, "per_token": True}, {"smooth_norm_outputs_only": True}, {"split_attention": True}],
)
def test_recipe_refuses_settings_it_would_ignore(kwargs):
    with pytest.raises(ValueError, match="Recipe 'x'"):
        Recipe("x", **kwargs)
