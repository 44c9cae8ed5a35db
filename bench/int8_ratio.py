"""Encode time of INT8 recipes relative to plain dynamic INT8, side by side in one process.

The INT8-quality goal is a ratio ("at most 1.25x the time of plain dynamic INT8"), and on a shared
2-core machine only a ratio measured in one run means anything. This quantizes the prepared
folder's ``onnx/model.onnx`` with each recipe (skipping files that already exist), then times the
built-in validation texts in length-sorted batches of 32: within a pass every batch runs on every
file in turn (order reversed every other pass), and the ratio to the first recipe is taken per
pass. The sessions do not spin between runs (idle spinning threads of one session would steal the
2 cores from the next). ``fp32`` names the optimized FP32 file. Prints the median ratio and its
range over passes; ``--json`` prints the raw figures.

    python bench/int8_ratio.py --prepared models/all-MiniLM-L6-v2 \\
        --recipes dynamic,per-token,outlier-per-token --passes 7

Needs the ``prepare`` extra (calibrated recipes run the FP32 model on the calibration texts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fastembed_adapter import OnnxSentenceEncoder
from fastembed_adapter.cpu import detect_target
from fastembed_adapter.prepare.quantize import RECIPES, Calibration, quantize_int8
from fastembed_adapter.texts import calibration_texts, validation_texts


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, required=True, help="folder written by prepare")
    parser.add_argument(
        "--recipes",
        default="dynamic,per-token",
        help="comma-separated; the first is the baseline; fp32 = onnx/model.onnx",
    )
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error("--passes must be at least 1")
    recipes = args.recipes.split(",")
    unknown = [name for name in recipes if name not in RECIPES and name != "fp32"]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}, fp32")
    if len(set(recipes)) != len(recipes):
        parser.error(f"--recipes names a recipe twice: {args.recipes}")
    if not (args.prepared / "onnx/model.onnx").is_file():
        parser.error(f"{args.prepared} has no onnx/model.onnx (the FP32 file prepare writes)")
    target = detect_target()
    if target is None:
        parser.error("this CPU has no INT8 target")
    files = {}
    for name in recipes:
        file_name = "onnx/model.onnx" if name == "fp32" else f"onnx/model_ratio_{name}.onnx"
        if not (args.prepared / file_name).exists():
            calibration = Calibration(args.prepared, tuple(calibration_texts()), args.threads)
            source, output = args.prepared / "onnx/model.onnx", args.prepared / file_name
            quantize_int8(source, output, target, RECIPES[name], calibration)
        files[name] = file_name
    # No spinning: with several sessions in one process, the idle worker threads of the session
    # that just ran would busy-wait on the 2 cores while the next one runs (seen: 1.27x instead of 1.15x).
    encoders = {
        name: OnnxSentenceEncoder(
            args.prepared, file_name=file_name, threads=args.threads, cache_size=0, metrics=False, spinning=False
        )
        for name, file_name in files.items()
    }
    texts = sorted(validation_texts(), key=len, reverse=True)
    batches = [texts[start : start + 32] for start in range(0, len(texts), 32)]
    for encoder in encoders.values():  # warm-up: first-run allocations
        encoder.encode(batches[0])
    passes: list[dict[str, float]] = []
    for number in range(args.passes):
        seconds = dict.fromkeys(recipes, 0.0)
        order = recipes if number % 2 == 0 else recipes[::-1]
        for batch in batches:
            for name in order:
                start = time.perf_counter()
                encoders[name].encode(batch)
                seconds[name] += time.perf_counter() - start
        passes.append(seconds)
    base = recipes[0]
    result = {}
    for name in recipes:
        ratios = [run[name] / run[base] for run in passes]
        result[name] = {
            "seconds_per_pass": statistics.median(run[name] for run in passes),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    if args.json:
        print(json.dumps({"passes": args.passes, "texts": len(texts), "recipes": result}, indent=2))
    else:
        for name, row in result.items():
            print(
                f"{name:24s} {row['seconds_per_pass']:.2f} s/pass  {row['ratio']:.3f}x {base} "
                f"(range {row['ratio_min']:.3f}-{row['ratio_max']:.3f} over {args.passes} passes)"
            )
    return result


if __name__ == "__main__":
    main()
