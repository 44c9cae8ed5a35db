"""ONNX Runtime's own GEMM speed on this machine: what the encoder's MAC/s can be held against.

The CPU's peak (VNNI INT8, FMA FP32) is a paper figure; ONNX Runtime's matrix kernels reach only
part of it. One large ``MatMulIntegerToFloat`` (uint8 x int8, the op our per-token INT8 files run)
and one FP32 ``MatMul`` are timed with the benchmark's thread count; an encoder cannot beat these.
The sessions are built by :func:`fastembed_adapter.session.output_runner` (every ORT optimizer on).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..session import output_runner

__all__ = ["gemm_ceiling"]


def gemm_ceiling(threads: int, shape: tuple[int, int, int] = (2048, 1024, 1024), repeats: int = 10) -> dict[str, Any]:
    """Median GMAC/s of ORT's INT8 and FP32 GEMM on an ``(m, k) x (k, n)`` product."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    a8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
    a32 = rng.standard_normal((m, k)).astype(np.float32)
    result: dict[str, Any] = {"shape": [m, k, n], "threads": threads, "repeats": repeats}
    for precision, feed in (("int8", a8), ("fp32", a32)):
        run = output_runner(_model(precision, k, n, rng), ["Y"], threads)
        run({"A": feed})  # warm-up: weight prepacking, allocations
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run({"A": feed})
            times.append(time.perf_counter() - start)
        result[f"{precision}_gmacs"] = m * k * n / float(np.median(times)) / 1e9
    return result


def _model(precision: str, k: int, n: int, rng: np.random.Generator) -> bytes:
    """One ``(m, k) x (k, n)`` product as a serialized ONNX model: INT8 ``MatMulIntegerToFloat`` or FP32 ``MatMul``."""
    from onnx import TensorProto, helper, numpy_helper

    if precision == "int8":
        weights = [
            numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "B"),
            numpy_helper.from_array(np.array(0.01, np.float32), "a_scale"),
            numpy_helper.from_array(np.full(n, 0.01, np.float32), "b_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
        ]
        node = helper.make_node(
            "MatMulIntegerToFloat", ["A", "B", "a_scale", "b_scale", "a_zero"], ["Y"], domain="com.microsoft"
        )
        input_type = TensorProto.UINT8
    else:
        weights = [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")]
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        input_type = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("A", input_type, ["m", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["m", n])],
        weights,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    serialized: bytes = model.SerializeToString()
    return serialized
