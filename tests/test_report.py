"""``prepare``'s typed report: the JSON keys ``report.json`` and the manifest have always had, and ``REPORT.md``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fastembed_adapter.prepare.report import (
    Machine,
    QuickBenchmark,
    RecipeResult,
    Report,
    SpeedFigures,
    ValidationFigures,
    render_markdown,
    write_reports,
)
from fastembed_adapter.prepare.validate import INT8_TARGET, Quality, QualityTarget

FP32 = "onnx/model.onnx"
INT8 = "onnx/model_quint8_avx2.onnx"
# report.json's keys, in the order prepare has always written them (the CLI prints them unsorted with --json)
REPORT_KEYS = [
    "source",
    "output",
    "target",
    "recipe",
    "quality_target",
    "fp32_fallback",
    "calibration_texts_sha256",
    "default_file",
    "model_type",
    "fusions",
    "dimension",
    "max_seq_length",
    "pooling",
    "normalize",
    "validation",
    "recipes",
    "benchmark",
    "timings",
    "versions",
    "machine",
    "sizes",
    "fastest_runtime",
    "fastest_file",
]
MANIFEST_KEYS = [
    "schema_version",
    "source",
    "target",
    "recipe",
    "quality_target",
    "fp32_fallback",
    "calibration_texts_sha256",
    "machine",
    "default_file",
    "dimension",
    "max_seq_length",
    "pooling",
    "normalize",
    "versions",
    "validation",
    "files",
    "fastest_runtime",
    "fastest_file",
]
QUALITY_KEYS = ["min_cosine", "mean_cosine", "max_abs_error", "topk_agreement", "k", "texts"]
ROW_KEYS = [*QUALITY_KEYS, "target", "encode_seconds", "passed", "failures"]

FP32_ROW = ValidationFigures(Quality(0.99999, 0.999991, 1.2e-6, 1.0, 10, 222), QualityTarget(0.9999), 0.5)
INT8_QUALITY = Quality(0.9912, 0.99712, 0.0213, 0.9612, 10, 222)
HELD_OUT = Quality(0.9931, 0.99801, 0.018, 0.9713, 10, 166)
INT8_ROW = ValidationFigures.measure(INT8_QUALITY, INT8_TARGET, 0.25, HELD_OUT)
FAILING = ValidationFigures.measure(Quality(0.9801, 0.99512, 0.05, 0.9412, 10, 222), INT8_TARGET, 0.3004)
SENSITIVE = {"fp32_matmuls": ["/l0/MatMul", "/l1/MatMul"], "mask_free_attention": True}


def _report() -> Report:
    return Report(
        source="sentence-transformers/all-MiniLM-L6-v2",
        revision="abc123",
        output="models/all-MiniLM-L6-v2",
        target="avx512_vnni",
        recipe="per-token-sensitive-fp32",
        quality_target=INT8_TARGET,
        fp32_fallback=None,
        calibration_texts_sha256="7ee9696f1809efaf",
        default_file=INT8,
        model_type="bert",
        fusions={"Attention": 6, "BiasGelu": 6},
        dimension=384,
        max_seq_length=256,
        pooling=("mean",),
        normalize=True,
        validation_texts=222,
        files={FP32: FP32_ROW, INT8: INT8_ROW},
        recipes=(
            RecipeResult.errored("dynamic", RuntimeError("boom")),
            RecipeResult.measured("per-token", FAILING, 23_553_778, {"fp32_matmuls": []}),
            RecipeResult.measured("per-token-sensitive-fp32", INT8_ROW, 24_000_000, SENSITIVE),
        ),
        benchmark=QuickBenchmark(
            threads=2,
            queries=40,
            texts=200,
            backends={
                "pytorch": SpeedFigures(8.0, 9.5, 250.0),
                FP32: SpeedFigures(2.0, 2.5, 1000.0),
                INT8: SpeedFigures(1.0, 1.25, 2000.0),
            },
        ),
        timings={"load": 1.234, "export": 2.5},
        versions={"python": "3.11.9", "onnxruntime": "1.20.0"},
        machine=Machine(cpus=2, isa="avx512_vnni"),
        sizes={FP32: 90_123_456, INT8: 24_000_000},
    )


def test_validation_figures_measure_and_json():
    assert FAILING.encode_seconds == 0.3 and not FAILING.passed
    assert FAILING.failures == (
        "min cosine 0.9801 < 0.99",
        "mean cosine 0.9951 < 0.997",
        "top-10 agreement 0.9412 < 0.95",
    )
    passing = ValidationFigures.measure(INT8_QUALITY, INT8_TARGET, 1.23456)
    assert passing.passed and passing.failures == () and passing.encode_seconds == 1.235
    unseen = ValidationFigures.measure(INT8_QUALITY, INT8_TARGET, 1.0, Quality(0.977, 0.998, 0.05, 0.938, 10, 166))
    assert not unseen.passed  # the validation split passes; the held-out one does not
    assert unseen.failures == ("held-out: min cosine 0.9770 < 0.99", "held-out: top-10 agreement 0.9380 < 0.95")
    assert ValidationFigures.from_json(unseen.to_json()) == unseen
    assert list(unseen.to_json())[-1] == "held_out"
    row = FAILING.to_json()
    assert list(row) == ROW_KEYS
    assert row["target"] == {"min_cosine": 0.99, "mean_cosine": 0.997, "topk_agreement": 0.95}
    assert row["passed"] is False and row["failures"] == list(FAILING.failures) and row["min_cosine"] == 0.9801


def test_recipe_rows():
    errored = RecipeResult.errored("dynamic", ValueError("x" * 400))
    assert errored.to_json() == {
        "recipe": "dynamic",
        "passed": False,
        "result": ("error: ValueError: " + "x" * 400)[:300],
    }
    assert not errored.passed and errored.fp32_matmuls == []
    failing = RecipeResult.measured("per-token", FAILING, 10, {"fp32_matmuls": []})
    assert failing.result == "; ".join(FAILING.failures) and not failing.passed
    sensitive = RecipeResult.measured("per-token-sensitive-fp32", INT8_ROW, 24, SENSITIVE)
    assert sensitive.passed and sensitive.result == "pass" and sensitive.fp32_matmuls == ["/l0/MatMul", "/l1/MatMul"]
    row = sensitive.to_json()
    assert list(row) == ["recipe", *ROW_KEYS, "held_out", "size_bytes", "result", "fp32_matmuls", "mask_free_attention"]
    assert RecipeResult.from_json(row) == sensitive
    assert row["size_bytes"] == 24 and row["mask_free_attention"] is True


def test_report_json_keys_and_values():
    data = _report().to_json()
    assert list(data) == REPORT_KEYS
    assert data["source"] == {"id": "sentence-transformers/all-MiniLM-L6-v2", "revision": "abc123"}
    assert data["validation"]["texts"] == 222 and list(data["validation"]["files"]) == [FP32, INT8]
    assert data["validation"]["files"][FP32] == FP32_ROW.to_json()
    assert data["pooling"] == ["mean"] and data["machine"] == {"cpus": 2, "isa": "avx512_vnni"}
    assert [row["recipe"] for row in data["recipes"]] == ["dynamic", "per-token", "per-token-sensitive-fp32"]
    assert data["benchmark"] == {
        "threads": 2,
        "queries": 40,
        "texts": 200,
        "backends": {
            "pytorch": {"p50_ms": 8.0, "p95_ms": 9.5, "throughput": 250.0},
            FP32: {"p50_ms": 2.0, "p95_ms": 2.5, "throughput": 1000.0},
            INT8: {"p50_ms": 1.0, "p95_ms": 1.25, "throughput": 2000.0},
        },
    }
    assert replace(_report(), benchmark=None).to_json()["benchmark"] == {}  # --no-benchmark


def test_manifest_json():
    report = _report()
    files = {"modules.json": {"sha256": "ab" * 32, "size": 229}}
    manifest = report.manifest_json(files)
    assert list(manifest) == MANIFEST_KEYS
    assert manifest["schema_version"] == 1 and manifest["files"] == files
    assert manifest["validation"] == report.to_json()["validation"]["files"]
    data = report.to_json()
    assert all(
        manifest[key] == data[key] for key in MANIFEST_KEYS if key not in ("schema_version", "validation", "files")
    )


@pytest.mark.parametrize("benchmark", [True, False])
def test_json_round_trip(benchmark):
    report = _report() if benchmark else replace(_report(), benchmark=None, recipes=(), target=None)
    text = json.dumps(report.to_json())
    again = Report.from_json(json.loads(text))
    assert again == report
    assert json.dumps(again.to_json()) == text


def test_markdown():
    report = _report()
    markdown = render_markdown(report)
    lines = markdown.splitlines()
    assert lines[:5] == [
        "# fastembed-adapter report: sentence-transformers/all-MiniLM-L6-v2",
        "",
        "- output: `models/all-MiniLM-L6-v2`",
        f"- target: `avx512_vnni`, recipe: `per-token-sensitive-fp32`, default file: `{INT8}`",
        "- dimension 384, max_seq_length 256, pooling ['mean'], normalize True",
    ]
    assert lines[8].startswith("222 built-in texts")
    assert (
        f"| `{FP32}` | 1.0000 | 0.99999 | 0.00000 | 1.000 | - | 0.50 | min ≥ 0.9999, mean ≥ 0.0, top-10 ≥ 0.0 | pass |"
    ) in lines
    assert (
        f"| `{INT8}` | 0.9912 | 0.99712 | 0.02130 | 0.961 | 0.9931 / 0.99801 / 0.971 | 0.25 "
        "| min ≥ 0.99, mean ≥ 0.997, top-10 ≥ 0.95 | pass |"
    ) in lines
    recipes = lines[lines.index("## INT8 recipes tried") :]
    assert recipes[6:9] == [
        "| dynamic | - | - | - | - | - | - | - | error: RuntimeError: boom |",
        "| per-token | 0.9801 | 0.99512 | 0.941 | - | 0.30 | 23.6 | 0 | min cosine 0.9801 < 0.99; "
        "mean cosine 0.9951 < 0.997; top-10 agreement 0.9412 < 0.95 |",
        "| per-token-sensitive-fp32 | 0.9912 | 0.99712 | 0.961 | 0.9931 / 0.99801 / 0.971 | 0.25 | 24.0 | 2 | pass |",
    ]
    assert (
        "`per-token-sensitive-fp32` kept FP32 (most error added on the calibration texts first): "
        "`/l0/MatMul`, `/l1/MatMul`"
    ) in lines
    assert "## Quick benchmark (2 threads, same process, one run)" in lines
    assert "| pytorch | 8.00 | 9.50 | 250 | 1.0x |" in lines
    assert f"| {FP32} | 2.00 | 2.50 | 1000 | 4.0x |" in lines
    assert f"| {INT8} | 1.00 | 1.25 | 2000 | 8.0x |" in lines
    assert lines[-18:] == [
        "## Stage timings",
        "",
        "| stage | seconds |",
        "|---|---|",
        "| load | 1.23 |",
        "| export | 2.50 |",
        "",
        "## Files",
        "",
        "| file | MB |",
        "|---|---|",
        f"| `{FP32}` | 90.12 |",
        f"| `{INT8}` | 24.00 |",
        "",
        "## Versions",
        "",
        "- python 3.11.9",
        "- onnxruntime 1.20.0",
    ]
    assert "WARNING" not in markdown
    assert render_markdown(json.loads(json.dumps(report.to_json()))) == markdown  # the CLI passes the JSON form


def test_markdown_fallback_failure_and_no_benchmark():
    failed = replace(FP32_ROW, failures=("min cosine 0.9000 < 0.9999",))
    report = replace(
        _report(),
        target=None,
        recipe=None,
        fp32_fallback="No INT8 recipe met the quality target.",
        files={FP32: failed},
        recipes=(),
        benchmark=QuickBenchmark(1, 40, 200, {FP32: SpeedFigures(2.0, 2.5, 1000.0)}),
    )
    markdown = render_markdown(report)
    assert "- target: `None`, recipe: `None`, default file:" in markdown
    assert markdown.splitlines()[12].endswith("| FAIL |")
    assert "\n**WARNING: No INT8 recipe met the quality target.**\n" in markdown
    assert "## INT8 recipes tried" not in markdown
    assert f"| {FP32} | 2.00 | 2.50 | 1000 | - |" in markdown  # no PyTorch row: no ratio
    assert "## Quick benchmark" not in render_markdown(replace(report, benchmark=None))


def test_write_reports(tmp_path):
    report = _report()
    write_reports(tmp_path, report)
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert text == json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert (tmp_path / "REPORT.md").read_text(encoding="utf-8") == render_markdown(report)
