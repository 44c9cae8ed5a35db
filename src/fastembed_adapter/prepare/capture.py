"""Run a graph on texts with chosen intermediate tensors as outputs (calibration, sensitivity)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

__all__ = ["capture_runner", "text_batches"]


def capture_runner(
    model: onnx.ModelProto, tensors: list[str], threads: int | None = None
) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    """A function: tokenizer features → the values of ``tensors`` in a copy of ``model`` that outputs them."""
    import onnxruntime as ort

    from ..session import model_feeds

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    present = {output.name for output in copy.graph.output}
    copy.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tensors if name not in present
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    session = ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_names = [node.name for node in session.get_inputs()]

    def run(features: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(session.run(tensors, model_feeds(input_names, features)))

    return run


def text_batches(folder: Path, texts: list[str], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Tokenizer features of ``texts`` (longest first) in batches of ``size``, as the folder's tokenizer pads them."""
    from ..layout import read_layout
    from ..tokenization import TextTokenizer

    layout = read_layout(folder)
    tokenizer = TextTokenizer(folder, layout.max_seq_length, layout.do_lower_case)
    ordered = sorted(texts, key=len, reverse=True)
    for start in range(0, len(ordered), size):
        yield tokenizer.encode(ordered[start : start + size])
