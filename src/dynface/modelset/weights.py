"""Checkpoint files: safe loading, strict key matching, and fp16 safetensors for dynface's own weights.
Where the official files go and whether they are intact: `official` (what they are: `catalogue`).

Loading never executes code: ``.safetensors`` files are read with ``safetensors``, and
``.pt``/``.pth``/``.ckpt``/``.bin`` files with ``torch.load(..., weights_only=True)``, which refuses
any pickle that would build objects other than tensors and plain containers. A refused file
raises :class:`WeightsError`.

Containers are unwrapped the way the upstream loaders do it:

* DifFace ``iddpm_ffhq512_ema500000.pth`` -- by its training code (``trainer.py``:
  ``torch.save(self.ema_state)`` of a DistributedDataParallel model) a bare state dict whose
  keys likely carry a ``module.`` prefix; DifFace's own loader strips it (``util_net.reload_model``).
* DifFace ``swinir_restoration512_L1.pth`` -- ``{'iters_start', 'log_step', 'log_step_img',
  'state_dict'}`` (``trainer.save_ckpt``); DifFace and PMRF read ``ckpt['state_dict']`` and
  strip ``module.``.
* DPS ``ffhq_10m.pt`` -- a bare state dict (``model.load_state_dict(th.load(model_path))``).
* BasicSR / official SwinIR files -- ``params_ema`` (preferred) or ``params``.
* Lightning-style ``state_dict``, plain ``model``, ``ema`` / ``model_ema`` are also accepted.

Those layouts were read from the public training/loading code; the files themselves were not
downloaded here (the catalogue's URLs are printed, never fetched).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from dynface.errors import DynfaceError

__all__ = [
    "WeightsError", "StateReport",
    "sha256_file", "load_torch_file", "load_safetensors_file", "load_checkpoint_state", "compare_state", "load_into",
    "save_torch_file", "save_state", "save_safetensors_fp16", "load_model_safetensors", "read_safetensors_header",
    "read_safetensors_metadata",
]

_FP16_MAX = 65504.0
_REPORT_LIMIT = 10
# container keys, most specific first (BasicSR keeps both params and params_ema: take the EMA)
_CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model_ema", "ema", "model", "net", "network")
_PREFIXES = ("module.", "_orig_mod.")


class WeightsError(DynfaceError, RuntimeError):
    """A checkpoint could not be found, read, trusted or matched to a network."""


# ------------------------------------------------------------------------------------ hashing
def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk_size), b""):
                h.update(block)
    except OSError as e:
        raise WeightsError(f"cannot read {path}: {e.strerror or e}") from e
    return h.hexdigest()


# ------------------------------------------------------------------------------------ loading
def _is_state(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _unwrap(obj, path) -> "OrderedDict[str, torch.Tensor]":
    for _ in range(4):  # containers nest at most a few levels (e.g. {'model': {'state_dict': ...}})
        if _is_state(obj):
            break
        if not isinstance(obj, Mapping):
            raise WeightsError(f"{path}: expected a state dict (name -> tensor), found {type(obj).__name__}")
        inner = next((obj[k] for k in _CONTAINER_KEYS if k in obj and isinstance(obj[k], Mapping) and obj[k]), None)
        if inner is None:
            bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:5]
            raise WeightsError(
                f"{path}: no state dict found (top-level keys: {', '.join(map(str, list(obj)[:8]))}"
                f"{'...' if len(obj) > 8 else ''}; non-tensor entries such as {bad})")
        obj = inner
    if not _is_state(obj):
        raise WeightsError(f"{path}: no state dict found inside the checkpoint's containers")
    state = OrderedDict()
    for k, v in obj.items():
        for p in _PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        if k in state:
            raise WeightsError(f"{path}: key {k!r} appears twice once the 'module.' prefix is removed")
        state[k] = v
    return state


def _unpickling_reason(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln), None)
    return (detail or (lines[0] if lines else type(e).__name__)).rstrip(".")


def _existing(path) -> Path:
    """`path` when it is a regular file; WeightsError otherwise (a FIFO or device is never opened for reading)."""
    from dynface.core.files import FileRefused, check_regular

    path = Path(path).expanduser()
    if not os.path.lexists(path):
        raise WeightsError(f"{path}: no such checkpoint (file not found)")
    try:
        return check_regular(path, "a weights file")
    except FileRefused as e:
        raise WeightsError(str(e)) from None


def _torch_load(path: Path, mmap: bool):
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # mmap needs the zip format; legacy files load without it
            if "mmap" not in str(e):
                raise
    return torch.load(path, map_location="cpu", weights_only=True)


def load_torch_file(path: str | os.PathLike, mmap: bool = False):
    """The one ``torch.load``: ``weights_only=True`` on the CPU, so tensors and plain containers only,
    never code. A missing, unreadable or refused file raises WeightsError with the reason in one
    line. ``mmap`` maps zip-format files instead of reading them (big official checkpoints)."""
    path = _existing(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not support
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return _torch_load(path, mmap)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"refusing to load {path}: the pickle needs more than tensors and plain containers "
            f"({_unpickling_reason(e)}); only weights_only-safe checkpoints are loaded") from None
    except Exception as e:  # truncated/garbage files fail in many ways inside the unpickler
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsError(f"{path}: cannot read checkpoint ({type(e).__name__}{': ' + msg if msg else ''})") from None


def load_safetensors_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The one read of a whole ``.safetensors`` file (CPU tensors); WeightsError when it is missing or unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _existing(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


def load_checkpoint_state(path: str | os.PathLike) -> "OrderedDict[str, torch.Tensor]":
    """Read a checkpoint file into a flat ``name -> tensor`` dict on the CPU.

    ``.safetensors`` via `load_safetensors_file`; anything else via `load_torch_file` (pickles that
    would run code or build arbitrary objects are refused with WeightsError).
    Common containers are unwrapped and ``module.`` / ``_orig_mod.`` prefixes stripped.
    """
    path = Path(path).expanduser()
    obj = load_safetensors_file(path) if path.suffix == ".safetensors" else load_torch_file(path, mmap=True)
    return _unwrap(obj, path)


# ------------------------------------------------------------------------------------ matching
@dataclass
class StateReport:
    """Differences between a checkpoint's state and a network's."""

    target: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt shape, model shape

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = _REPORT_LIMIT) -> str:
        head = (f"checkpoint does not match {self.target}: {len(self.missing)} missing, "
                f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape mismatch(es)")
        lines = [head]

        def section(title, items, fmt):
            if not items:
                return
            lines.append(f"  {title} ({len(items)}):")
            lines.extend(f"    {fmt(it)}" for it in items[:limit])
            if len(items) > limit:
                lines.append(f"    ... and {len(items) - limit} more")

        section("missing keys (in the network, not in the file)", self.missing, str)
        section("unexpected keys (in the file, not in the network)", self.unexpected, str)
        section("shape mismatches", self.mismatched,
                lambda m: f"{m[0]}: file {list(m[1])} vs network {list(m[2])}")
        return "\n".join(lines)


def compare_state(model: nn.Module | Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                  target: str | None = None) -> StateReport:
    """Compare key sets and shapes only (works on ``meta``-device networks)."""
    ref = model.state_dict() if isinstance(model, nn.Module) else model
    name = target or (type(model).__name__ if isinstance(model, nn.Module) else "the reference state")
    rep = StateReport(name)
    rep.missing = [k for k in ref if k not in state]
    rep.unexpected = [k for k in state if k not in ref]
    rep.mismatched = [(k, tuple(state[k].shape), tuple(ref[k].shape))
                      for k in ref if k in state and tuple(state[k].shape) != tuple(ref[k].shape)]
    return rep


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> StateReport:
    """Copy ``state`` into ``model`` (values cast to the model's dtypes).

    Shape mismatches always raise; with ``strict`` missing or unexpected keys raise too.
    The WeightsError message is the multi-line report (first 10 keys of each kind + counts).
    Returns the report (useful with ``strict=False``).
    """
    rep = compare_state(model, state)
    if rep.mismatched or (strict and not rep.ok):
        raise WeightsError(rep.format())
    wanted = {k: v for k, v in state.items() if k not in rep.unexpected}
    with torch.no_grad():
        model.load_state_dict(wanted, strict=False)
    return rep


# ------------------------------------------------------------------------------------ saving
def _state_of(model_or_state) -> Mapping[str, torch.Tensor]:
    return model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state


def _str_metadata(metadata: Mapping | None) -> dict[str, str]:
    out = {}
    for k, v in (metadata or {}).items():
        out[str(k)] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


def _atomic_write(path: Path, writer) -> Path:
    """`core.atomic.write_atomic` into a folder created if needed."""
    from dynface.core.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, writer)


def save_torch_file(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (the folder is created); `load_torch_file` reads it back if ``obj``
    holds only tensors and plain containers."""
    return _atomic_write(path, lambda p: torch.save(obj, p))


def save_state(model_or_state, path: str | os.PathLike, metadata: Mapping | None = None) -> Path:
    """Save a state dict unchanged (dtypes kept): ``.safetensors`` or a torch file (``{'state_dict',
    'metadata'}``, loadable with weights_only=True)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in _state_of(model_or_state).items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        _atomic_write(path, lambda p: save_file(state, str(p), metadata=_str_metadata(metadata)))
    else:
        save_torch_file({"state_dict": state, "metadata": _str_metadata(metadata)}, path)
    return path


def save_safetensors_fp16(model_or_state, path: str | os.PathLike, metadata: Mapping | None = None) -> Path:
    """Save for shipping: floating tensors stored as float16 (others unchanged) in a .safetensors
    file; ``metadata`` values that are not strings are stored as JSON. Refuses values that float16
    cannot hold (|x| > 65504 or non-finite)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: fp16 weights are written as .safetensors")
    state = {}
    for k, v in _state_of(model_or_state).items():
        v = v.detach().cpu()
        if v.is_floating_point():
            if v.numel() and (not torch.isfinite(v).all() or v.abs().max().item() > _FP16_MAX):
                raise WeightsError(f"{k}: values outside the float16 range; cannot store it as fp16")
            v = v.to(torch.float16)
        state[k] = v.contiguous()
    meta = {"dynface_storage_dtype": "float16"}
    meta.update(_str_metadata(metadata))
    from safetensors.torch import save_file
    _atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))
    return path


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """A ``.safetensors`` file's metadata and tensor name -> shape, from its header only (no tensor is read)."""
    from safetensors import SafetensorError, safe_open
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {}), {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata (strings) of a ``.safetensors`` file."""
    return read_safetensors_header(path)[0]


def load_model_safetensors(model: nn.Module, path: str | os.PathLike, strict: bool = True,
                           dtype: torch.dtype | None = torch.float32) -> dict[str, str]:
    """Load a (possibly fp16) .safetensors file into ``model``; floating tensors become ``dtype``
    (float32 by default) in memory. Returns the file's metadata (strings)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"{path}: expected a .safetensors file")
    state = load_checkpoint_state(path)
    if dtype is not None:
        model.to(dtype)
        state = OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in state.items())
    load_into(model, state, strict=strict)
    return read_safetensors_metadata(path)
