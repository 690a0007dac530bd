"""What this machine can do, decided in one place: CPU model and flags, native bf16, threads,
and the precision that `auto` resolves to.

On CPUs without native bf16 (no `avx512_bf16` / `amx_bf16`, e.g. AVX2-only AMD EPYC) PyTorch
emulates bfloat16 and autocast makes every convolution 70-90x slower than fp32, so `auto`
picks bf16 only where the hardware runs it natively (those CPU flags, or a CUDA device with
bf16 support) and fp32 everywhere else. Every network call of restoration and training goes
through :func:`autocast` with a precision resolved once by :func:`resolve_precision`.
"""
from __future__ import annotations

import os
import platform
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch

from dynface.errors import DynfaceError

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *PRECISIONS)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


class PrecisionError(DynfaceError, ValueError):
    """An unknown precision, or one the device cannot run."""


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's marketing name ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8480+', ...)."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_summary() -> str:
    """One line for bug reports and benchmark tables: model, relevant flags, native bf16 or not."""
    flags = cpu_flags()
    have = [f for f in RELEVANT_FLAGS if f in flags]
    bf16 = "native bf16" if native_bf16("cpu", flags) else "no native bf16"
    return f"{cpu_model()} [{' '.join(have) or 'no SIMD flags read'}; {bf16}]"


def native_bf16(device="cpu", flags: frozenset[str] | set[str] | None = None) -> bool:
    """Does `device` run bfloat16 in hardware? CPU: an `avx512_bf16` or `amx_bf16` flag (`flags`
    overrides what /proc/cpuinfo says, for tests); CUDA: torch.cuda.is_bf16_supported()."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        return any(f in flags for f in NATIVE_BF16_FLAGS)
    return False


def resolve_precision(precision: str | None, device="cpu", flags=None) -> str:
    """'auto' (or None) -> 'bf16' where the device runs bf16 natively, else 'fp32'. An explicit
    fp32/fp16/bf16 is kept (and checked: a CUDA device without bf16 refuses bf16)."""
    name = "auto" if precision is None else str(precision)
    if name not in PRECISION_CHOICES:
        raise PrecisionError(f"unknown precision {name!r}: use one of {', '.join(PRECISION_CHOICES)}")
    dev = torch.device(device)
    if name == "auto":
        return "bf16" if native_bf16(dev, flags) else "fp32"
    if name == "bf16" and dev.type == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise PrecisionError("this CUDA device has no bfloat16 support: use --precision fp16 (or fp32)")
    return name


def autocast(device_type: str, precision: str):
    """torch.autocast for a resolved precision on a device type; fp32: no autocast."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r} is not resolved: use one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


# ---------------------------------------------------------------- threads

def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup quota (v2 cpu.max or v1 cfs_quota/period), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> list[int]:
    """Logical CPUs this process may run on (respects taskset / cpusets)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def physical_cores(cpus: list[int] | None = None) -> int:
    """Distinct physical cores among `cpus` (SMT siblings count once); falls back to len(cpus)."""
    cpus = available_cpus() if cpus is None else cpus
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add((topo.joinpath("physical_package_id").read_text().strip(),
                       topo.joinpath("core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def default_threads() -> int:
    """Physical cores available to this process, capped by a cgroup CPU quota ($DYNFACE_THREADS overrides)."""
    env = os.environ.get("DYNFACE_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    n = physical_cores()
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, int(limit + 0.5)))
    return max(1, n)


def set_threads(threads: int | None) -> int:
    """torch.set_num_threads(threads or default_threads()); returns the number used."""
    n = int(threads) if threads else default_threads()
    if n < 1:
        raise ValueError(f"threads must be >= 1 (got {n})")
    torch.set_num_threads(n)
    return n


def torch_build() -> str:
    """torch version plus the CPU libraries it was built with (MKL, oneDNN) and the SIMD level it uses."""
    parts = [f"torch {torch.__version__}"]
    parts.append("MKL" if torch.backends.mkl.is_available() else "no MKL")
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith(("Intel(R) MKL-DNN", "oneDNN")):
            parts.append(line.split(" (Git")[0])
    parts.append(f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    parts.append(f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build")
    return ", ".join(parts)


def machine_header() -> list[str]:
    """Lines that head every speed table: when, on which CPU, with which torch build and threads."""
    import datetime

    return [f"Measured {datetime.date.today().isoformat()} on: {cpu_summary()}",
            f"torch: {torch_build()}; {torch.get_num_threads()} thread(s); {len(available_cpus())} CPU(s) allowed", ""]
