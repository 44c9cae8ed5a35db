"""The theoretical peak MAC/s of the CPU the benchmark runs on, derived from its flags and clock.

``peak = threads (cores used) x clock x MACs per cycle per core`` for the best instruction set
the CPU flags (``/proc/cpuinfo``) show. It is a paper figure, not a measurement; the measured
ceiling is :mod:`.gemm`. MACs per cycle per core, and what each figure assumes:

============================  ======  ======  ======  ==============================================
ISA (flags)                    INT8    FP32    BF16    assumption
============================  ======  ======  ======  ==============================================
AMX (``amx_int8``)             1024    32      512     TMUL: one 16x64 by 64x16 tile product per
                                                       cycle (``amx_bf16``: 512 BF16); FP32 on the
                                                       AVX-512 FMAs, 2 ports assumed
AVX-512 VNNI (``avx512_vnni``) 128     32      (64)    ``vpdpbusd`` 64 u8xs8 MACs, FP32 16 lanes;
                                                       2 FMA ports assumed; BF16 64 only with
                                                       ``avx512_bf16`` (``vdpbf16ps``)
AVX-512 (``avx512f``)          64      32      (64)    INT8 via ``vpmaddubsw`` + ``vpmaddwd``, about
                                                       half the VNNI rate; 2 FMA ports assumed
AVX2 (``avx2``)                64      16      -       2 ports x 32 INT8 (``vpmaddubsw``, or
                                                       ``vpdpbusd`` with ``avx_vnni``), 2 x 8 FP32
ARM64 NEON (``asimd``)         16      8       -       2 x 128-bit pipes (conservative: some cores
                                                       have 4); INT8 via widening multiplies
ARM64 + ``asimddp``            32      8       -       ``sdot``: 16 INT8 MACs per instruction
ARM64 + ``i8mm``               64      8       (32)    ``smmla``: 32 INT8 MACs per instruction;
                                                       BF16 32 only with ``bf16`` (``bfmmla``)
============================  ======  ======  ======  ==============================================

Some CPUs have one AVX-512 FMA port (or run 512-bit work on 256-bit units) and reach half the
AVX-512 figures; vCPUs that are SMT siblings share one core's units. The source text says so.
The clock is the first found of: ``cpuinfo_max_freq`` (sysfs), the nominal GHz in the
``model name``, ``cpu MHz`` (``/proc/cpuinfo``); without one every figure is None ("unknown").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..cpu import _cpu_flags
from ..errors import InvalidInputError

__all__ = ["REPORTED_FLAGS", "Peak", "cpu_peak", "with_overrides"]

MAX_FREQ_FILE = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
CPUINFO_FILE = "/proc/cpuinfo"
# the flags that decide the figures, in the order the report lists them
REPORTED_FLAGS = (
    "amx_int8",
    "amx_bf16",
    "avx512_vnni",
    "avx512_bf16",
    "avx512f",
    "avx_vnni",
    "avx2",
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
)
_TWO_PORTS = "assumes 2 FMA ports (CPUs with one AVX-512 FMA port reach half)"
_ARM = "conservative: assumes 2 x 128-bit NEON pipes (some cores have 4)"


@dataclass(frozen=True)
class Peak:
    """The peak GMAC/s at each precision (None when unknown), and where the figures come from.

    Attributes:
        int8_gmacs: INT8 peak, GMAC/s.
        fp32_gmacs: FP32 peak, GMAC/s.
        bf16_gmacs: BF16 peak, GMAC/s, or None when the CPU has no BF16 instructions.
        clock_ghz: the clock used, GHz (None when none was found).
        clock_source: where the clock came from, or ``"unknown"``.
        isa: the instruction set the figures are for (``amx``, ``avx512_vnni``, ``avx512``,
            ``avx2``, ``arm64``, ``arm64_dotprod``, ``arm64_i8mm``), or ``"unknown"``.
        flags: the :data:`REPORTED_FLAGS` this CPU has.
        source: one sentence: how the figures were derived, or given.
    """

    int8_gmacs: float | None
    fp32_gmacs: float | None
    bf16_gmacs: float | None
    clock_ghz: float | None
    clock_source: str
    isa: str
    flags: tuple[str, ...]
    source: str

    def as_json(self) -> dict[str, Any]:
        """The report's ``peak`` object."""
        return {**asdict(self), "flags": list(self.flags)}


@dataclass(frozen=True)
class _Rates:
    isa: str
    int8: int
    fp32: int
    bf16: int | None
    note: str


def _rates(flags: set[str]) -> _Rates | None:
    """MACs per cycle per core for the best ISA in ``flags`` (see the module's table)."""
    if "asimd" in flags:
        bf16 = 32 if "bf16" in flags and "i8mm" in flags else None
        if "i8mm" in flags:
            return _Rates("arm64_i8mm", 64, 8, bf16, f"smmla; {_ARM}")
        if "asimddp" in flags:
            return _Rates("arm64_dotprod", 32, 8, None, f"sdot; {_ARM}")
        return _Rates("arm64", 16, 8, None, f"no dot product; {_ARM}")
    avx512_bf16 = 64 if "avx512_bf16" in flags else None
    if "amx_int8" in flags:
        bf16 = 512 if "amx_bf16" in flags else avx512_bf16
        return _Rates("amx", 1024, 32, bf16, f"AMX TMUL for INT8/BF16; FP32 on AVX-512, {_TWO_PORTS}")
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return _Rates("avx512_vnni", 128, 32, avx512_bf16, _TWO_PORTS)
    if "avx512f" in flags:
        return _Rates("avx512", 64, 32, avx512_bf16, f"INT8 via vpmaddubsw; {_TWO_PORTS}")
    if "avx2" in flags:
        return _Rates("avx2", 64, 16, None, "assumes 2 FMA ports")
    return None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpuinfo_field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def cpu_clock() -> tuple[float | None, str]:
    """The clock in GHz and where it was read; ``(None, "unknown")`` when nowhere."""
    max_khz = _read_text(MAX_FREQ_FILE)
    if max_khz is not None:
        try:
            if int(max_khz.strip()) > 0:
                return int(max_khz.strip()) / 1e6, f"max frequency in {MAX_FREQ_FILE}"
        except ValueError:
            pass
    cpuinfo = _read_text(CPUINFO_FILE) or ""
    match = re.search(r"(\d+(?:\.\d+)?)\s*GHz", _cpuinfo_field(cpuinfo, "model name") or "")
    if match and float(match.group(1)) > 0:
        return float(match.group(1)), "nominal GHz of the model name in /proc/cpuinfo"
    mhz = _cpuinfo_field(cpuinfo, "cpu MHz")
    try:
        if mhz is not None and float(mhz) > 0:
            return float(mhz) / 1e3, "cpu MHz in /proc/cpuinfo, the current clock"
    except ValueError:
        pass
    return None, "unknown"


def cpu_peak(threads: int) -> Peak:
    """The theoretical peak of ``threads`` cores of this CPU (see the module's table).

    Args:
        threads: cores the benchmark uses (each counted as a whole core).

    Raises:
        InvalidInputError: ``threads`` is below 1.
    """
    if threads < 1:
        raise InvalidInputError(f"threads must be >= 1, got {threads!r}.")
    flags = _cpu_flags()
    present = tuple(f for f in REPORTED_FLAGS if f in flags or (f == "avx512_vnni" and "avx512vnni" in flags))
    rates = _rates(flags)
    clock, clock_source = cpu_clock()
    if rates is None or clock is None:
        missing = "no AVX2, AVX-512, AMX or NEON flags" if rates is None else "no clock found"
        isa = rates.isa if rates else "unknown"
        return Peak(None, None, None, clock, clock_source, isa, present, f"unknown: {missing}")

    def gmacs(per_cycle: int) -> float:
        return threads * clock * per_cycle

    source = (
        f"derived from this CPU ({rates.isa}): {threads} cores x {clock:.4g} GHz x {rates.int8} INT8 / "
        f"{rates.fp32} FP32 MAC/cycle/core; clock: {clock_source}; {rates.note}; theoretical, not measured"
    )
    bf16 = gmacs(rates.bf16) if rates.bf16 is not None else None
    return Peak(gmacs(rates.int8), gmacs(rates.fp32), bf16, clock, clock_source, rates.isa, present, source)


def with_overrides(peak: Peak, int8_gmacs: float | None, fp32_gmacs: float | None) -> Peak:
    """``peak`` with the figures given on the command line in place of the derived ones.

    Args:
        peak: the derived peak (:func:`cpu_peak`).
        int8_gmacs: ``--peak-int8-gmacs``, or None to keep the derived figure.
        fp32_gmacs: ``--peak-fp32-gmacs``, or None to keep the derived figure.

    Raises:
        InvalidInputError: a given figure is not positive.
    """
    given = {"int8": int8_gmacs, "fp32": fp32_gmacs}
    for name, value in given.items():
        if value is not None and not value > 0:
            raise InvalidInputError(f"--peak-{name}-gmacs must be > 0, got {value!r}.")
    named = [f"--peak-{name}-gmacs" for name, value in given.items() if value is not None]
    if not named:
        return peak
    source = f"given on the command line ({', '.join(named)})"
    if len(named) == 1:
        source += f"; the other figure {peak.source}"
    return Peak(
        int8_gmacs if int8_gmacs is not None else peak.int8_gmacs,
        fp32_gmacs if fp32_gmacs is not None else peak.fp32_gmacs,
        peak.bf16_gmacs,
        peak.clock_ghz,
        peak.clock_source,
        peak.isa,
        peak.flags,
        source,
    )
