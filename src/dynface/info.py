"""`dynface info`: what this machine is and what dynface will do on it, for bug reports."""
from __future__ import annotations

import json
import platform
import sys

import torch

from . import __version__
from .hardware import (_cgroup_cpu_limit, available_cpus, cpu_model, cpu_summary, default_threads, native_bf16,
                       physical_cores, resolve_precision)


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


def info_lines(weights_dir=None) -> list[str]:
    from .pipeline import EMBEDDED_DIR
    from .weights import weights_dir as resolve_weights_dir
    from .weights import weights_list

    cpus = available_cpus()
    limit = _cgroup_cpu_limit()
    lines = [
        f"dynface {__version__}  (python {platform.python_version()}, {platform.system()} {platform.machine()})",
        f"cpu: {cpu_summary()}",
        f"torch: {torch_build()}",
        f"threads: {default_threads()} by default  ({len(cpus)} logical CPU(s) allowed, {physical_cores(cpus)} physical "
        f"core(s), cgroup quota {'none' if limit is None else f'{limit:g} CPU(s)'}; --threads or $DYNFACE_THREADS "
        "overrides)",
        f"precision auto on cpu: {resolve_precision('auto', 'cpu')}"
        + ("" if native_bf16("cpu") else "  (no avx512_bf16/amx_bf16: bf16 would be emulated, ~70-90x slower)"),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            lines.append(f"cuda:{i}: {torch.cuda.get_device_name(i)}, precision auto: "
                         f"{resolve_precision('auto', f'cuda:{i}')}")
    else:
        lines.append("cuda: not available")
    try:
        manifest = json.loads((EMBEDDED_DIR / "manifest.json").read_text())
        files = manifest.get("files", {})
        stages = ", ".join(f"{k}({v.get('iters', '?')} it)" if v.get("iters") else k for k, v in files.items())
        lines.append(f"embedded model set: {EMBEDDED_DIR}  {stages}")
    except (OSError, ValueError) as e:
        lines.append(f"embedded model set: unreadable ({e})")
    root = resolve_weights_dir(weights_dir)
    present = [w["filename"] for w in weights_list(weights_dir) if w["present"]]
    lines.append(f"official weights looked for in: {root}  ({', '.join(present) if present else 'none present'})")
    lines.append(f"cpu model for timings: {cpu_model()}")
    if sys.flags.optimize:
        lines.append("note: python -O is on")
    return lines


def machine_header() -> list[str]:
    """Lines that head every speed table: when, on which CPU, with which torch build and threads."""
    import datetime

    return [f"Measured {datetime.date.today().isoformat()} on: {cpu_summary()}",
            f"torch: {torch_build()}; {torch.get_num_threads()} thread(s); {len(available_cpus())} CPU(s) allowed", ""]
