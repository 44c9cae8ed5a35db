"""``--layout transformers.js``: a copy of a prepared folder that ``@huggingface/transformers`` loads (Node, browser).

transformers.js reads ``config.json`` and the tokenizer files at the model's root and picks
``onnx/model.onnx`` for ``dtype: "fp32"`` and ``onnx/model_quantized.onnx`` for ``"q8"``. It
loads a file as one buffer, so the weights go back inline (no ``.onnx_data`` beside them). The
graph, its inputs and outputs are the prepared folder's own (a ColBERT model's ``token_embeddings``
are the projected token vectors; the prefix insertion, query expansion and skiplist — described by
``onnx_config.json`` — are the caller's, as for next-plaid).
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["TRANSFORMERS_JS_DIR", "write_transformers_js"]

TRANSFORMERS_JS_DIR = "transformers.js"
_CONFIGS = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "onnx_config.json",
    "config_sentence_transformers.json",
)


def write_transformers_js(folder: Path, fp32_file: str, int8_file: str | None) -> Path:
    """Write ``folder/transformers.js/`` from the prepared ``folder``; return its path."""
    import onnx

    target = folder / TRANSFORMERS_JS_DIR
    (target / "onnx").mkdir(parents=True, exist_ok=True)
    for name in _CONFIGS:
        if (folder / name).is_file():
            shutil.copy2(folder / name, target / name)
    files = [(fp32_file, "model.onnx")] + ([(int8_file, "model_quantized.onnx")] if int8_file else [])
    for source, name in files:
        onnx.save(onnx.load(str(folder / source)), str(target / "onnx" / name))  # weights inline
    return target
