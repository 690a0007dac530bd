"""Exported weights (fp16 safetensors + metadata) and the networks built from them.

Training checkpoints (resumable) are plain torch files: `weights.save_torch_file` writes them
atomically, `weights.load_torch_file` reads them back with ``weights_only=True``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

NETWORK_KINDS = ("prior", "idm", "rm", "tm", "sde", "dgsa", "up")  # what build_network builds from a file


def export_safetensors(module: nn.Module, path, kind: str, arch: dict, extra: dict | None = None,
                       dtype=torch.float16) -> Path:
    """Write a module's state_dict as safetensors with its kind and arch in the metadata.

    fp16 (the shipping format) goes through `weights.save_safetensors_fp16`, which also refuses
    values float16 cannot hold; other dtypes are cast and written atomically by `weights.save_state`.
    """
    from dynface.modelset.weights import save_safetensors_fp16, save_state

    meta = {"kind": kind, "arch": json.dumps(arch)}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    if dtype == torch.float16:
        return save_safetensors_fp16(module, path, meta)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).clone()
             for k, v in module.state_dict().items()}
    return save_state(state, path, meta)


def read_metadata(path) -> dict:
    """The safetensors metadata with JSON values decoded (plain strings stay strings)."""
    from dynface.modelset.weights import read_safetensors_metadata

    out = {}
    for k, v in read_safetensors_metadata(path).items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def load_network(path, kind: str | tuple[str, ...] | None = None, shipped: bool = False) -> nn.Module:
    """Build the network named in a safetensors file's metadata and load its weights (float32).
    `kind`: the kind (or kinds) the file must hold. The metadata is checked against the file's
    tensors before anything is allocated (`netcheck.check_network_file`), except for `shipped` files
    (the package's own embedded model set)."""
    from dynface.modelset.netcheck import NetworkCheckError, check_network_file
    from dynface.modelset.weights import load_safetensors_file
    from dynface.networks.factory import build_network

    meta = read_metadata(path)
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and meta.get("kind") not in kinds:
        raise ValueError(f"{path}: holds a {meta.get('kind')!r} network, expected {' or '.join(map(repr, kinds))}")
    if meta.get("kind") not in NETWORK_KINDS or "arch" not in meta:
        raise NetworkCheckError(f"{path}: metadata names no dynface network (kind {meta.get('kind')!r})")
    if not shipped:  # the package's own embedded files are not a stranger's (the check costs ~0.4 s a network)
        check_network_file(path, meta["kind"], meta["arch"])
    net = build_network(meta["kind"], meta["arch"])
    state = load_safetensors_file(path)
    ref = net.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # right shapes, garbage values: the network would paint NaN (a black face) with exit 0
        raise NetworkCheckError(f"{path}: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
                                f"{', ...' if len(bad) > 3 else ''}); refused")
    net.load_state_dict(state, strict=True)
    return net.eval()
