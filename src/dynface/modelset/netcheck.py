"""Checks on a model folder from a stranger before anything is allocated.

A dynface safetensors file names its network in its metadata (`kind`, `arch`); the network is
built from that. Before it is built for real: every number in `arch` is bounded, the network is
built on the `meta` device (no memory), its parameter count is capped, and its tensor names and
shapes must equal the ones in the file's header. Only then is it built and loaded, so a file
can never make dynface allocate more than the weights it really holds (and never more than
`MAX_NETWORK_PARAMS`). `manifest.json` is checked the same way (the image size sizes every tensor).
"""
from __future__ import annotations

import math

import torch

from dynface.errors import DynfaceError

MAX_NETWORK_PARAMS = 400_000_000   # the largest official network (DifFace UNet 512) has 160 M
ARCH_INT_MAX = 8192                # any integer in an arch (channels, sizes, depths)
ARCH_LIST_MAX = 64                 # any list in an arch (channel multipliers, depths)
MODEL_SIZE_RANGE = (16, 2048)      # manifest "size": the square crop the networks work at
MANIFEST_MAX_BYTES = 1 << 20       # a manifest is a few KB; a bigger "manifest" is refused unread
# manifest "defaults": (integer?, low, high) -- the ranges of the matching restore flags (pipeline.RestoreOptions)
DEFAULT_RANGES = {"steps": (True, 1, 1000), "idm_steps": (True, 1, 1000), "n_guidance": (True, 1, 4),
                  "zeta": (False, 0.0, 100.0), "sigma_lr": (False, 0.0, 100.0),
                  "guidance_spacing": (False, 0.0, 1000.0), "dm_sigma": (False, 0.0, 1000.0),
                  "fidelity": (False, 0.0, 1.0)}


class NetworkCheckError(DynfaceError, ValueError):
    """The file's metadata does not describe a network dynface will build; said in full."""


def _check_values(x, where: str) -> None:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return
    if isinstance(x, int):
        if abs(x) > ARCH_INT_MAX:
            raise NetworkCheckError(f"arch {where} = {x}: over the limit of {ARCH_INT_MAX}")
    elif isinstance(x, float):
        if not math.isfinite(x) or abs(x) > 1e6:
            raise NetworkCheckError(f"arch {where} = {x}: not a finite number of sane size")
    elif isinstance(x, (list, tuple)):
        if len(x) > ARCH_LIST_MAX:
            raise NetworkCheckError(f"arch {where}: list of {len(x)} entries (limit {ARCH_LIST_MAX})")
        for i, v in enumerate(x):
            _check_values(v, f"{where}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            _check_values(v, f"{where}.{k}" if where else str(k))
    else:
        raise NetworkCheckError(f"arch {where}: unexpected value of type {type(x).__name__}")


def check_network_file(path, kind: str, arch) -> None:
    """Raise NetworkCheckError unless `arch` builds a network of at most MAX_NETWORK_PARAMS whose
    state names and shapes are exactly those stored in the safetensors file `path`."""
    from dynface.modelset.weights import compare_state, read_safetensors_header
    from dynface.networks.factory import build_network

    if not isinstance(arch, dict):
        raise NetworkCheckError(f"{path}: metadata `arch` is not a mapping")
    try:
        _check_values(arch, "")
    except NetworkCheckError as e:
        raise NetworkCheckError(f"{path}: {e}; refused") from None
    try:
        with torch.device("meta"):
            net = build_network(kind, arch)
    except Exception as e:  # noqa: BLE001 - any bad arch is one refusal
        msg = str(e).splitlines()[0] if str(e) else ""
        raise NetworkCheckError(f"{path}: metadata `arch` does not build a {kind} network "
                                f"({type(e).__name__}{': ' + msg if msg else ''})") from None
    state = net.state_dict()
    n = sum(t.numel() for t in state.values())
    if n > MAX_NETWORK_PARAMS:
        raise NetworkCheckError(f"{path}: metadata describes a {kind} network of {n:,} values, "
                                f"over the limit of {MAX_NETWORK_PARAMS:,}; refused")
    stored = read_safetensors_header(path)[1]
    rep = compare_state(state, {k: torch.empty(s, device="meta") for k, s in stored.items()},
                        target=f"the {kind} network its metadata describes")
    if not rep.ok:
        raise NetworkCheckError(f"{path}: {rep.format()}")


def check_manifest(manifest, path) -> dict:
    """A model folder's manifest.json: a mapping whose size and sigma grid are sane numbers."""
    if not isinstance(manifest, dict):
        raise NetworkCheckError(f"{path}: not a JSON object")
    size = manifest.get("size")
    lo, hi = MODEL_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        raise NetworkCheckError(f"{path}: size {size!r} is not an integer in {lo}..{hi}")
    grid = manifest.get("sigma_grid")
    ok = (isinstance(grid, (list, tuple)) and len(grid) >= 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in grid[:2])
          and 0 <= grid[0] < grid[1])
    if not ok:
        raise NetworkCheckError(f"{path}: sigma_grid {grid!r} is not [low, high, ...] with 0 <= low < high")
    defaults = manifest.get("defaults", {})
    if not isinstance(defaults, dict):
        raise NetworkCheckError(f"{path}: defaults is not a mapping")
    for key, (integer, lo, hi) in DEFAULT_RANGES.items():
        if key not in defaults:
            continue
        v = defaults[key]
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if integer and isinstance(v, float) and number and math.isfinite(v) and v == int(v):
            v = int(v)
        if not number or not math.isfinite(v) or not lo <= v <= hi or (integer and not isinstance(v, int)):
            raise NetworkCheckError(f"{path}: defaults.{key} = {defaults[key]!r} is not "
                                    f"{'an integer' if integer else 'a finite number'} in {lo:g}..{hi:g}")
    return manifest
