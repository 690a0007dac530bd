"""Training checkpoints (resumable) and exported weights (fp16 safetensors + metadata).

Checkpoints are written atomically and read back with torch.load(weights_only=True).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file


def save_atomic(obj, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_trusted_free(path):
    """torch.load with weights_only=True: tensors and plain containers only, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def export_safetensors(module: nn.Module, path, kind: str, arch: dict, extra: dict | None = None,
                       dtype=torch.float16) -> Path:
    """Write a module's state_dict as safetensors with its kind and arch in the metadata.

    fp16 (the shipping format) goes through `weights.save_safetensors_fp16`, which also refuses
    values float16 cannot hold; other dtypes are cast and written atomically by `weights.save_state`.
    """
    from .weights import save_safetensors_fp16, save_state

    meta = {"kind": kind, "arch": json.dumps(arch)}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if dtype == torch.float16:
        return save_safetensors_fp16(module, path, meta)
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).clone()
             for k, v in module.state_dict().items()}
    return save_state(state, path, meta)


def read_metadata(path) -> dict:
    """The safetensors metadata with JSON values decoded (plain strings stay strings)."""
    from .weights import read_safetensors_metadata

    out = {}
    for k, v in read_safetensors_metadata(path).items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def load_network(path, kind: str | tuple[str, ...] | None = None) -> nn.Module:
    """Build the network named in a safetensors file's metadata and load its weights (float32).
    `kind`: the kind (or kinds) the file must hold."""
    from .models import build_network

    meta = read_metadata(path)
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and meta.get("kind") not in kinds:
        raise ValueError(f"{path}: holds a {meta.get('kind')!r} network, expected {' or '.join(map(repr, kinds))}")
    net = build_network(meta["kind"], meta["arch"])
    state = load_file(str(path))
    ref = net.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    net.load_state_dict(state, strict=True)
    return net.eval()
