"""A model set: the networks of one model folder plus its manifest, on one device."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dynface.core.dsst import DSST
from dynface.errors import DynfaceError
from dynface.modelset.checkpoint import load_network
from dynface.modelset.manifest import DSST_FILE, EMBEDDED_DIR, STAGE_FILES


class ModelError(DynfaceError):
    """A model file or stage needed for the requested settings is missing or unusable."""


def resolve_device(device=None) -> torch.device:
    """'cpu' (default) | 'cuda' | 'cuda:N' | 'mps' | 'auto' -> torch.device; ModelError if unavailable."""
    name = "cpu" if device is None or str(device) == "" else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ModelError(f"unknown device {name!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise ModelError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}, "
                             f"built {built} CUDA); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError(f"device {name!r} requested but Apple MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ModelError(f"unsupported device {name!r}: use cpu, cuda, cuda:N, mps or auto")
    return dev


@dataclass
class ModelSet:
    """The networks of one model set plus its manifest (size, sigma grid, template, defaults)."""

    root: Path
    manifest: dict
    nets: dict
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = field(default=False, init=False)  # memory layout the networks are in now

    @classmethod
    def load(cls, root=None, device="cpu") -> "ModelSet":
        dev = resolve_device(device)
        root = Path(root) if root else EMBEDDED_DIR
        mpath = root / "manifest.json"
        if not os.path.lexists(mpath):
            raise ModelError(f"{root}: no manifest.json (not a dynface model folder)")
        from dynface.core.files import FileRefused, check_regular, read_regular
        from dynface.modelset.netcheck import MANIFEST_MAX_BYTES, NetworkCheckError, check_manifest

        try:  # a FIFO or a huge sparse file is refused before it is read
            manifest = check_manifest(json.loads(read_regular(mpath, MANIFEST_MAX_BYTES, "a manifest")), mpath)
        except (ValueError, UnicodeDecodeError) as e:  # not a regular file, bad JSON or a failed check
            raise ModelError(str(e) if isinstance(e, (NetworkCheckError, FileRefused))
                             else f"{mpath}: not valid JSON ({e})") from None
        for fname in (*STAGE_FILES.values(), DSST_FILE):  # never wait on a FIFO named like a model file
            if os.path.lexists(root / fname):
                try:
                    check_regular(root / fname, "a model file")
                except FileRefused as e:
                    raise ModelError(str(e)) from None
        nets = {}
        for name, fname in STAGE_FILES.items():
            p = root / fname
            if p.exists():
                try:
                    nets[name] = load_network(p, shipped=root.resolve() == EMBEDDED_DIR.resolve())
                except NetworkCheckError as e:  # already names the file; may be a multi-line key report
                    raise ModelError(str(e)) from None
                except Exception as e:  # noqa: BLE001 - report any broken file in one line
                    raise ModelError(f"{p}: cannot load ({type(e).__name__}: {e})") from None
        if (root / DSST_FILE).exists():
            try:
                nets["dsst"] = DSST.load(root / DSST_FILE)
            except Exception as e:  # noqa: BLE001 - a broken table is one line naming the file
                raise ModelError(f"{root / DSST_FILE}: cannot load ({type(e).__name__}: {e})".splitlines()[0]) from None
        return cls(root, manifest, nets).to(dev)

    def to(self, device) -> "ModelSet":
        """Move every network to `device` (the DSST table stays a CPU lookup). Returns self."""
        dev = resolve_device(device)
        for name, net in self.nets.items():
            if isinstance(net, torch.nn.Module):
                net.to(dev)
        self.device = dev
        return self

    def set_channels_last(self, on: bool) -> "ModelSet":
        """Put every network's 4-D weights in channels_last (NHWC) or back in contiguous layout."""
        fmt = torch.channels_last if on else torch.contiguous_format
        if self.channels_last != on:
            for net in self.nets.values():
                if isinstance(net, torch.nn.Module):
                    net.to(memory_format=fmt)
            self.channels_last = on
        return self

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def sigma_range(self) -> tuple[float, float]:
        g = self.manifest["sigma_grid"]
        return float(g[0]), float(g[1])

    def default(self, key: str, fallback):
        return self.manifest.get("defaults", {}).get(key, fallback)

    def need(self, *names: str, why: str) -> None:
        missing = [n for n in names if n not in self.nets]
        if missing:
            hints = [self.manifest.get("hints", {}).get(n) for n in missing]
            hint = "; ".join(h for h in hints if h)
            raise ModelError(f"{why} needs {', '.join(missing)} weights, not in {self.root}"
                             + (f" ({hint})" if hint else ""))

    def describe(self) -> str:
        parts = []
        for name in ("prior", "rm", "tm", "sde", "dgsa", "dsst", "idm", "up"):
            info = self.manifest.get("files", {}).get(name, {})
            if name == "dsst" and name in self.nets:
                parts.append("dsst")
            elif name in self.nets:
                parts.append(f"{name}({info.get('iters', '?')} it)")
        status = self.manifest.get("status", "")
        return f"{self.root.name}: " + ", ".join(parts) + (f" [{status}]" if status else "")
