"""`dynface info`: what this machine is and what dynface will do on it, for bug reports."""
from __future__ import annotations

import json
import platform
import sys

import torch

from dynface import __version__
from dynface.core.hardware import (torch_build, _cgroup_cpu_limit, available_cpus, cpu_model, cpu_summary,
                                   default_threads, native_bf16, physical_cores, resolve_precision)


def info_lines(weights_dir=None) -> list[str]:
    from dynface.modelset.manifest import EMBEDDED_DIR
    from dynface.modelset.official import weights_dir as resolve_weights_dir
    from dynface.modelset.official import weights_list

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


def register(sub) -> None:
    p = sub.add_parser("info", help="this machine for bug reports: CPU and flags, torch build, what `auto` picks, models")
    p.add_argument("--weights-dir", default=None, help="official weights folder to report on")
    p.set_defaults(func=cmd_info)


def cmd_info(a) -> int:
    print("\n".join(info_lines(a.weights_dir)))
    return 0
