"""The runtime path (import, load, encode) never imports the heavy stack."""

from __future__ import annotations

import json
import subprocess
import sys

from tokenizers import Tokenizer

from tiny import TinySpec

HEAVY = ("torch", "transformers", "optimum", "sentence_transformers", "onnx")

SCRIPT = """
import json, sys
import fastembed_adapter
from fastembed_adapter import OnnxSentenceEncoder
encoder = OnnxSentenceEncoder(sys.argv[1], threads=1)
vectors = encoder.encode(["a first text", "and a second one"], precision="int8")
single = encoder.encode("one", output_value="token_embeddings")
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"shape": list(vectors.shape), "tokens": len(single), "heavy": heavy}))
"""


def _probe(folder, preamble: str = "") -> dict:
    result = subprocess.run(
        [sys.executable, "-c", preamble + SCRIPT, str(folder), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runtime_imports_no_heavy_module(tiny_model):
    _, folder = tiny_model(TinySpec("mpnet", "cls", normalize=False))
    out = _probe(folder)
    assert out["shape"] == [2, 32]
    expected_tokens = len(Tokenizer.from_file(str(folder / "tokenizer.json")).encode("one").ids)
    assert out["tokens"] == expected_tokens
    assert out["heavy"] == []


def test_the_probe_sees_a_heavy_import(tiny_model):
    """Guard against a vacuous check: the same probe reports a heavy module when one was imported."""
    _, folder = tiny_model(TinySpec("mpnet", "cls", normalize=False))
    assert _probe(folder, "import onnx\n")["heavy"] == ["onnx"]


def test_prometheus_client_is_imported_beside_the_session_build_not_at_import(tiny_model):
    """Cold start: ``import fastembed_adapter`` leaves prometheus_client to the encoder's constructor,
    which imports it while ONNX Runtime builds the session in a worker thread."""
    _, folder = tiny_model(TinySpec("mpnet", "cls", normalize=False))
    script = (
        "import sys, fastembed_adapter\n"
        "print('prometheus_client' in sys.modules)\n"
        "fastembed_adapter.OnnxSentenceEncoder(sys.argv[1], threads=1)\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
