"""The OpenVINO IR ``prepare`` writes beside the ONNX files: ``openvino/openvino_model.xml`` + ``.bin``.

Converted with ``openvino.convert_model`` from the optimized FP32 ``onnx/model.onnx`` (OpenVINO runs
ONNX Runtime's contrib ops in it: parity 2.9e-7 vs PyTorch on all-MiniLM-L6-v2), never from an INT8
file, and saved with FP32 weights (``compress_to_fp16=False``; FP16 weights cost 3.3e-4 of max error).
This is the layout sentence-transformers' ``backend="openvino"`` (optimum-intel) loads. Written only
when the ``openvino`` extra is installed and ``--no-openvino`` was not passed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ValidationFailedError
from ..openvino_session import import_openvino, openvino_reason

__all__ = ["openvino_installed", "write_openvino"]


def openvino_installed() -> bool:
    """Whether ``import openvino`` can work here (the extra ``openvino``)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):  # sys.modules["openvino"] is None
        return False


def write_openvino(onnx_file: Path, xml_file: Path) -> None:
    """Convert the FP32 ONNX file ``onnx_file`` to the IR ``xml_file`` (weights in ``xml_file.with_suffix('.bin')``).

    Raises:
        ValidationFailedError: OpenVINO cannot convert or save the graph (nothing is published).
    """
    ov = import_openvino()
    xml_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        model = ov.convert_model(str(onnx_file))
        ov.save_model(model, str(xml_file), compress_to_fp16=False)
    except Exception as exc:  # OpenVINO raises plain RuntimeErrors with multi-line C++ context
        if isinstance(exc, OSError):  # a full disk is the writer's to report
            raise
        raise ValidationFailedError(
            f"OpenVINO {getattr(ov, '__version__', '')} cannot convert {onnx_file.name} to {xml_file.name}: "
            f"{openvino_reason(exc)}. Nothing was written; pass --no-openvino to prepare without the OpenVINO IR."
        ) from exc
