"""OpenVINO static INT8 (NNCF post-training quantization) of a prepared folder's FP32 graph: quality and speed.

The issue's contender "OpenVINO INT8 with calibration / SmoothQuant": converts ``onnx/model.onnx`` to an
OpenVINO IR (FP32 weights), quantizes it with ``nncf.quantize`` on the built-in calibration texts
(``model_type=TRANSFORMER``; ``--modes`` default, ``sq`` = SmoothQuant alpha 0.5 on MatMuls, ``mixed`` =
the MIXED preset), and compares each INT8 IR with the FP32 ONNX file on ONNX Runtime: min / mean cosine on
the validation and the held-out texts, a 32-passage batch and batch-1 p50 (medians, one process, so only the
ratios in one run mean anything). Needs ``pip install nncf`` beside the ``openvino`` extra; writes into
``--work`` only.

    python bench/openvino_int8.py --prepared ./minilm --work /tmp/ov-int8 --modes default,sq,mixed
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any


def _time(encode: Any, passages: list[str], queries: list[str]) -> tuple[float, float]:
    encode(passages[:4])
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        encode(passages, batch_size=32)
        rounds.append(time.perf_counter() - start)
    single = []
    for query in queries:
        start = time.perf_counter()
        encode(query)
        single.append(time.perf_counter() - start)
    return statistics.median(rounds), statistics.median(single) * 1e3


def main() -> None:
    """Quantize with each mode and print one Markdown row per file."""
    import nncf
    import numpy as np
    import openvino as ov

    from fastembed_adapter import OnnxSentenceEncoder
    from fastembed_adapter.cpu import _cpu_flags
    from fastembed_adapter.texts import calibration_texts, held_out_texts, validation_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--modes", default="default,sq,mixed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    folder = args.work / "model"
    if not folder.exists():
        shutil.copytree(args.prepared, folder, ignore=shutil.ignore_patterns("openvino"))
        (folder / "openvino").mkdir()
        ir = ov.convert_model(str(folder / "onnx/model.onnx"))
        ov.save_model(ir, str(folder / "openvino/openvino_model.xml"), compress_to_fp16=False)
    fp32 = OnnxSentenceEncoder(folder, file_name="onnx/model.onnx", threads=args.threads, cache_size=0, metrics=False)
    model = ov.Core().read_model(str(folder / "openvino/openvino_model.xml"))
    names = [port.get_any_name() for port in model.inputs]
    texts = calibration_texts()
    batches = []
    for start in range(0, len(texts), 8):
        features = fp32.preprocess(texts[start : start + 8])
        batches.append({name: np.asarray(features[name]) for name in names if name in features})
    splits = {"validation": validation_texts(), "held-out": held_out_texts()}
    reference = {label: fp32.encode(split, normalize_embeddings=True) for label, split in splits.items()}
    passages = [" ".join(validation_texts()[i : i + 12]) for i in range(0, 384, 12)]
    queries = validation_texts()[:50]
    flags = sorted(_cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"})
    base_long, base_b1 = _time(fp32.encode, passages, queries)
    print(
        f"CPU flags: {', '.join(flags) or 'none of avx2/avx512/amx'}; {args.threads} threads; nncf {nncf.__version__}"
    )
    print("\n| file | validation min / mean | held-out min / mean | 32 passages s (x ORT FP32) | batch-1 p50 ms (x) |")
    print("|---|---|---|---|---|")
    print(f"| ORT `onnx/model.onnx` | 1 / 1 | 1 / 1 | {base_long:.2f} (1.00x) | {base_b1:.2f} (1.00x) |")
    for mode in args.modes.split(","):
        options: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(batches)}
        if mode == "sq":
            alphas = nncf.AdvancedSmoothQuantParameters(matmul=0.5)
            options["advanced_parameters"] = nncf.AdvancedQuantizationParameters(smooth_quant_alphas=alphas)
        elif mode == "mixed":
            options["preset"] = nncf.QuantizationPreset.MIXED
        name = f"openvino/openvino_model_qint8_{mode}.xml"
        ov.save_model(
            nncf.quantize(model, nncf.Dataset(batches), **options), str(folder / name), compress_to_fp16=False
        )
        ours = OnnxSentenceEncoder(
            folder, file_name=name, runtime="openvino", threads=args.threads, cache_size=0, metrics=False
        )
        quality = []
        for label, split in splits.items():
            cos = (ours.encode(split, normalize_embeddings=True) * reference[label]).sum(axis=1)
            quality.append(f"{cos.min():.4f} / {cos.mean():.5f}")
        long_s, b1 = _time(ours.encode, passages, queries)
        print(
            f"| OpenVINO `{name}` | {quality[0]} | {quality[1]} | {long_s:.2f} ({base_long / long_s:.2f}x) "
            f"| {b1:.2f} ({base_b1 / b1:.2f}x) |"
        )


if __name__ == "__main__":
    main()
