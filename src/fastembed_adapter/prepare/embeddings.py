"""INT8 vocabulary tables: one symmetric scale per row, dequantized after the lookup.

The word-embedding table is the largest single tensor of small encoders (all-MiniLM-L6-v2:
30522 x 384 FP32 = 47 MB of a 66 MB INT8 file) and every lookup touches only a few rows. Each
``Gather(table, input_ids)`` on a large constant FP32 table becomes::

    Gather(table_int8, ids) -> Cast(float) -> Mul(Gather(row_scale, ids))

so the file and the resident memory hold one byte per weight, and only the looked-up rows are
dequantized. Per-row scales keep every token's vector within 0.4 % of its largest entry.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .graph import drop_unused_initializers, initializers, node_label, replace_nodes

__all__ = ["MIN_TABLE_ROWS", "quantize_embedding_tables"]

MIN_TABLE_ROWS = 4096  # smaller vocabularies gain little


def quantize_embedding_tables(model: onnx.ModelProto, min_rows: int = MIN_TABLE_ROWS) -> int:
    """Rewrite every ``Gather(table, input_ids)`` on a constant 2-D FP32 table of ``min_rows``+ rows, in place.

    Returns how many tables were quantized. Lookups by other indices (positions, rotary caches)
    stay FP32; a table that some other node still reads is kept as well.
    """
    graph = model.graph
    weights = initializers(graph)
    done: dict[str, tuple[str, str]] = {}

    def rewrite(node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
        # only lookups of the token ids: position tables and rotary caches are indexed by other tensors
        vocabulary = node.op_type == "Gather" and node.input[1] == "input_ids"
        table = weights.get(node.input[0]) if vocabulary else None
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if table is None or axis != 0 or table.data_type != TensorProto.FLOAT or len(table.dims) != 2:
            return None
        if table.dims[0] < min_rows:
            return None
        prefix = f"{table.name}/fea_int8"
        if table.name not in done:
            values = numpy_helper.to_array(table)
            scale = np.maximum(np.abs(values).max(axis=1, keepdims=True), 1e-12) / 127.0
            quantized = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
            graph.initializer.extend(
                [
                    numpy_helper.from_array(quantized, f"{prefix}/values"),
                    numpy_helper.from_array(scale.astype(np.float32), f"{prefix}/scale"),
                ]
            )
            done[table.name] = (f"{prefix}/values", f"{prefix}/scale")
        values_name, scale_name = done[table.name]
        ids, output = node.input[1], node.output[0]
        p = f"{node_label(node)}/fea_int8"
        return [
            helper.make_node("Gather", [values_name, ids], [f"{p}/q"], name=f"{p}/Gather"),
            helper.make_node("Cast", [f"{p}/q"], [f"{p}/f"], to=TensorProto.FLOAT, name=f"{p}/Cast"),
            helper.make_node("Gather", [scale_name, ids], [f"{p}/s"], name=f"{p}/GatherScale"),
            helper.make_node("Mul", [f"{p}/f", f"{p}/s"], [output], name=f"{p}/Mul"),
        ]

    replace_nodes(graph, rewrite)
    drop_unused_initializers(graph, among=done)  # a table some other node still reads stays
    return len(done)
