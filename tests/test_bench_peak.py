"""The CPU peak the benchmark holds achieved MAC/s to: figures per ISA, clock fallbacks, overrides.

The flag and file readers of :mod:`fastembed_adapter.benchmark.peak` are replaced by fakes, so
every figure below is the module table's MACs/cycle/core x clock x threads, computed by hand.
"""

from __future__ import annotations

import pytest

from fastembed_adapter.benchmark import peak as peak_module
from fastembed_adapter.benchmark.backends import Precision
from fastembed_adapter.benchmark.peak import CPUINFO_FILE, MAX_FREQ_FILE, Peak, cpu_peak, with_overrides
from fastembed_adapter.benchmark.runner import BenchOptions, peak_by_precision
from fastembed_adapter.errors import InvalidInputError

XEON = "model name\t: Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz\ncpu MHz\t\t: 3100.000\n"


def _machine(monkeypatch: pytest.MonkeyPatch, flags: set[str], files: dict[str, str]) -> None:
    monkeypatch.setattr(peak_module, "_cpu_flags", lambda: set(flags))
    monkeypatch.setattr(peak_module, "_read_text", files.get)


@pytest.mark.parametrize(
    ("flags", "isa", "int8", "fp32", "bf16"),
    [  # 2 threads x 2.5 GHz = 5 core-GHz, times the table's MACs/cycle/core
        ({"sse2", "avx2", "fma"}, "avx2", 320.0, 80.0, None),
        ({"avx2", "avx_vnni"}, "avx2", 320.0, 80.0, None),
        ({"avx2", "avx512f"}, "avx512", 320.0, 160.0, None),
        ({"avx2", "avx512f", "avx512_vnni"}, "avx512_vnni", 640.0, 160.0, None),
        ({"avx2", "avx512f", "avx512vnni"}, "avx512_vnni", 640.0, 160.0, None),
        ({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, "avx512_vnni", 640.0, 160.0, 320.0),
        ({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}, "amx", 5120.0, 160.0, 2560.0),
        ({"avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"}, "amx", 5120.0, 160.0, 320.0),
        ({"fp", "asimd"}, "arm64", 80.0, 40.0, None),
        ({"asimd", "asimddp"}, "arm64_dotprod", 160.0, 40.0, None),
        ({"asimd", "asimddp", "i8mm"}, "arm64_i8mm", 320.0, 40.0, None),
        ({"asimd", "asimddp", "i8mm", "bf16"}, "arm64_i8mm", 320.0, 40.0, 160.0),
    ],
)
def test_figures_for_each_isa(monkeypatch, flags, isa, int8, fp32, bf16):
    _machine(monkeypatch, flags, {MAX_FREQ_FILE: "2500000\n", CPUINFO_FILE: XEON})
    peak = cpu_peak(2)
    assert (peak.isa, peak.int8_gmacs, peak.fp32_gmacs, peak.bf16_gmacs) == (
        isa,
        pytest.approx(int8),
        pytest.approx(fp32),
        None if bf16 is None else pytest.approx(bf16),
    )
    assert peak.clock_ghz == 2.5 and MAX_FREQ_FILE in peak.clock_source
    assert peak.source.startswith(f"derived from this CPU ({isa}): 2 cores x 2.5 GHz x ")
    assert ("conservative" in peak.source) == isa.startswith("arm64")
    assert ("assumes 2 FMA ports" in peak.source) != isa.startswith("arm64")


def test_figures_scale_with_threads_and_flags_are_listed_in_report_order(monkeypatch):
    _machine(monkeypatch, {"sse2", "avx2", "avx512_vnni", "avx512f", "amx_int8"}, {MAX_FREQ_FILE: "2000000"})
    one, four = cpu_peak(1), cpu_peak(4)
    assert (one.int8_gmacs, four.int8_gmacs) == (2048.0, 8192.0)
    assert one.flags == ("amx_int8", "avx512_vnni", "avx512f", "avx2")
    assert one.as_json()["flags"] == ["amx_int8", "avx512_vnni", "avx512f", "avx2"]
    assert set(one.as_json()) >= {
        "int8_gmacs",
        "fp32_gmacs",
        "bf16_gmacs",
        "source",
        "clock_ghz",
        "clock_source",
        "isa",
    }


@pytest.mark.parametrize(
    ("files", "clock", "where"),
    [
        ({MAX_FREQ_FILE: "3700000\n", CPUINFO_FILE: XEON}, 3.7, MAX_FREQ_FILE),
        ({MAX_FREQ_FILE: "garbage", CPUINFO_FILE: XEON}, 2.0, "model name"),
        ({MAX_FREQ_FILE: "0", CPUINFO_FILE: XEON}, 2.0, "model name"),
        ({CPUINFO_FILE: XEON}, 2.0, "model name"),
        ({CPUINFO_FILE: "model name\t: AMD EPYC\ncpu MHz\t\t: 2445.404\n"}, 2.445404, "cpu MHz"),
        ({CPUINFO_FILE: "model name\t: AMD EPYC 7B13\ncpu MHz\t\t: n/a\n"}, None, "unknown"),
        ({}, None, "unknown"),
    ],
)
def test_clock_fallbacks(monkeypatch, files, clock, where):
    _machine(monkeypatch, {"avx2"}, files)
    peak = cpu_peak(2)
    assert peak.clock_ghz == (None if clock is None else pytest.approx(clock))
    assert where in peak.clock_source
    if clock is None:
        assert (peak.int8_gmacs, peak.fp32_gmacs, peak.bf16_gmacs) == (None, None, None)
        assert peak.clock_source == "unknown" and peak.source == "unknown: no clock found"
        assert peak.isa == "avx2"
    else:
        assert peak.int8_gmacs == pytest.approx(2 * clock * 64)


def test_no_known_isa_gives_unknown_figures(monkeypatch):
    _machine(monkeypatch, {"sse2", "sse4_2"}, {MAX_FREQ_FILE: "2000000"})
    peak = cpu_peak(2)
    assert (peak.int8_gmacs, peak.fp32_gmacs, peak.isa, peak.flags) == (None, None, "unknown", ())
    assert peak.source.startswith("unknown: no AVX2") and peak.clock_ghz == 2.0


def test_threads_must_be_positive():
    with pytest.raises(InvalidInputError, match="threads must be >= 1, got 0"):
        cpu_peak(0)


def test_command_line_overrides(monkeypatch):
    _machine(monkeypatch, {"avx2", "avx512f", "avx512_vnni"}, {MAX_FREQ_FILE: "2000000"})
    derived = cpu_peak(2)
    assert with_overrides(derived, None, None) == derived
    both = with_overrides(derived, 850.0, 213.0)
    assert (both.int8_gmacs, both.fp32_gmacs) == (850.0, 213.0)
    assert both.source == "given on the command line (--peak-int8-gmacs, --peak-fp32-gmacs)"
    assert (both.clock_ghz, both.isa) == (2.0, "avx512_vnni")  # what the CPU is, still recorded
    int8_only = with_overrides(derived, 700.0, None)
    assert (int8_only.int8_gmacs, int8_only.fp32_gmacs) == (700.0, 128.0)
    assert int8_only.source == f"given on the command line (--peak-int8-gmacs); the other figure {derived.source}"
    with pytest.raises(InvalidInputError, match="--peak-fp32-gmacs must be > 0, got -1"):
        with_overrides(derived, None, -1.0)


def test_bench_options_derive_the_peak_by_default(tmp_path):
    options = BenchOptions(prepared=tmp_path, source=tmp_path)
    assert (options.peak_int8_gmacs, options.peak_fp32_gmacs) == (None, None)


def test_bf16_backends_use_the_bf16_peak_else_the_fp32_one():
    with_bf16 = Peak(1000.0, 100.0, 500.0, 2.0, "x", "amx", (), "s")
    assert peak_by_precision(with_bf16) == {Precision.INT8: 1000.0, Precision.FP32: 100.0, Precision.BF16: 500.0}
    without = Peak(1000.0, 100.0, None, 2.0, "x", "avx512_vnni", (), "s")
    assert peak_by_precision(without)[Precision.BF16] == 100.0


def test_this_machine():
    peak = cpu_peak(1)
    assert (peak.int8_gmacs is None) == (peak.clock_ghz is None or peak.isa == "unknown")
    if peak.int8_gmacs is not None:
        assert peak.int8_gmacs > 0 and peak.source.startswith("derived from this CPU")
