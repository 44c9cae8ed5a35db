"""``prepare`` on the command line: third-party noise no user can act on is hidden, the rest still shows.

Each hidden line, where it comes from:
- ``WARNING:root:Please consider to run pre-processing before quantization ... <URL>``: onnxruntime.quantization,
  on every quantize call (and its ``logging.warning`` installs a root handler via ``basicConfig``);
- ``Loading weights: 100%|...`` / ``Writing model shards: 100%|...``: transformers 5's own tqdm bars;
- ```torch_dtype` is deprecated! Use `dtype` instead!``: transformers, when a library reads ``config.torch_dtype``;
- ``TracerWarning: Converting a tensor to a Python boolean ...``: torch.jit tracing of the model code;
- ``Weight deduplication check in the ONNX export requires accelerate``: optimum's exporter ("install accelerate");
- DeprecationWarning / FutureWarning raised inside torch, transformers, onnx, ... (addressed to their callers' authors).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from checks import TINY_INT8_MIN_COSINE, TINY_INT8_MIN_MEAN_COSINE, TINY_INT8_MIN_TOPK
from tiny import TinySpec

NOISE = (
    "Please consider to run pre-processing",
    "torch_dtype",
    "requires accelerate",
    "TracerWarning",
    "resume_download",
    "Loading weights",
    "Writing model shards",
)

SCRIPT = textwrap.dedent(
    """
    import logging, warnings

    import torch
    from transformers.utils import logging as transformers_logging

    from fastembed_adapter.cli.noise import quiet_third_party

    def emit(tag):
        logging.warning("Please consider to run pre-processing before quantization. Refer to example: https://x")
        logging.getLogger("transformers.configuration_utils").warning("`torch_dtype` is deprecated! Use `dtype`!")
        logging.getLogger("optimum.exporters.onnx.base").warning(
            "Weight deduplication check in the ONNX export requires accelerate. Please install accelerate to run it."
        )
        warnings.warn("Converting a tensor to a Python boolean (TracerWarning)", torch.jit.TracerWarning)
        warnings.warn_explicit("`resume_download` is deprecated", FutureWarning, "m.py", 1, module="transformers.x")
        if hasattr(transformers_logging, "set_tqdm_hook"):  # transformers 5; 4.x draws no such bars
            for desc in ("Loading weights", "Writing model shards"):
                for _ in transformers_logging.tqdm(range(3), desc=desc):
                    pass
        # kept: about the model itself, or ours
        logging.getLogger("transformers.modeling_utils").warning(f"{tag}: Some weights of BertModel were not loaded")
        logging.getLogger("fastembed_adapter.prepare.writer").warning(f"{tag}: removed a stale staging folder")
        warnings.warn(f"{tag}: a UserWarning of our own", UserWarning)

    with quiet_third_party():
        emit("inside")
    print("----", file=__import__("sys").stderr)
    emit("outside")
    """
)


def test_noise_is_hidden_inside_the_scope_only():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    inside, outside = result.stderr.replace("\r", "\n").split("----\n")
    from transformers.utils import logging as transformers_logging

    bars = hasattr(transformers_logging, "set_tqdm_hook")
    for text in NOISE if bars else [t for t in NOISE if t not in ("Loading weights", "Writing model shards")]:
        assert text not in inside, (text, inside)
        assert text in outside, (text, outside)  # restored: the library configures nothing for good
    assert "inside: Some weights of BertModel were not loaded" in inside
    assert "warning: inside: removed a stale staging folder" in inside  # ours, as a CLI line
    assert "inside: a UserWarning of our own" in inside


def test_prepare_prints_no_third_party_noise(make_st_model, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEA_")}
    target = f"min={TINY_INT8_MIN_COSINE},mean={TINY_INT8_MIN_MEAN_COSINE},top10={TINY_INT8_MIN_TOPK}"
    command = [sys.executable, "-m", "fastembed_adapter.cli", "prepare", "--model", str(make_st_model(TinySpec()))]
    command += ["--output", str(tmp_path / "out"), "--no-benchmark", "--threads", "1", "--recipe", "dynamic"]
    result = subprocess.run(
        [*command, "--quality-target", target], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "# " in result.stdout  # REPORT.md
    for text in NOISE:
        assert text not in result.stderr, (text, result.stderr)
    lines = [line.strip() for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("prepare") for line in lines), lines  # only our progress bar
