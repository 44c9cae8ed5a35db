"""What this CPU can do: usable core count (cgroup quota, affinity) and INT8 quantization target."""

from __future__ import annotations

import math
import os
import platform
from enum import Enum
from pathlib import Path

__all__ = ["QuantTarget", "available_cpus", "detect_target"]


class QuantTarget(str, Enum):
    """CPU instruction set an INT8 file is quantized for; names match sentence-transformers' files."""

    AVX512_VNNI = "avx512_vnni"
    AVX512 = "avx512"
    AVX2 = "avx2"
    ARM64 = "arm64"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def detect_target() -> QuantTarget | None:
    """Return the best INT8 target this machine runs, or None when it is neither x86-64 AVX2+ nor arm64."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return QuantTarget.ARM64
    flags = _cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return QuantTarget.AVX512_VNNI
    if "avx512f" in flags:
        return QuantTarget.AVX512
    if "avx2" in flags:
        return QuantTarget.AVX2
    return None


def _cgroup_quota() -> float | None:
    """CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 CFS), or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def available_cpus() -> int:
    """CPUs this process may really use: affinity mask, capped by the cgroup quota (rounded up), >= 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)
