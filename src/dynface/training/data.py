"""Training data: the UTKFace folder, a fixed train/val split by file name, and an in-memory cache.

The split is a pure function of the file name (sha1 mod 50 == 0 -> val, about 2%), so it is the
same on every machine and is written beside each run (`split.json`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynface.core.atomic import write_atomic, write_bytes
from dynface.core.imageio import ImageError, list_images, read_rgb, resize, to_tensor

VAL_MODULUS = 50


def split_of(name: str) -> str:
    h = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    return "val" if h % VAL_MODULUS == 0 else "train"


def split_files(folder, split: str = "train") -> list[Path]:
    files = list_images([folder])
    if split == "all":
        return files
    return [f for f in files if split_of(f.name) == split]


def load_cache(folder, size: int, split: str = "train", cache_dir=None, limit: int | None = None,
               shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """All images of a split resized to size^2 as a uint8 tensor (N, 3, size, size), cached on disk.
    `shard=(rank, world)`: only every world-th file from the rank-th (one torchrun rank's share)."""
    folder = Path(folder)
    files = split_files(folder, split)
    if limit:
        files = files[:limit]
    rank, world = shard
    if world > 1:
        files = files[rank::world]
        if not files:
            raise ValueError(f"{folder}: too few {split} images for {world} ranks")
    key = hashlib.sha1(("\n".join(f.name for f in files) + f"|{size}|{folder.resolve()}").encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"{folder.name}-{split}-{size}-{key}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        return torch.from_numpy(np.load(cache, mmap_mode=None))
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    keep = []
    for i, f in enumerate(tqdm(files, desc=f"caching {folder.name}/{split} at {size}px", unit="img")):
        try:
            x = resize(to_tensor(read_rgb(f)), size)
        except ImageError:
            continue
        out[i] = x.clamp(-1, 1).add(1).mul(127.5).round().byte()[0].numpy()
        keep.append(i)
    out = out[keep]
    if cache is not None:  # written whole, then renamed: ranks sharing a cache folder never read half a file
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, lambda tmp: np.save(tmp, out))
    return torch.from_numpy(out)


def write_split(folder, path) -> None:
    files = split_files(folder, "all")
    d = {"rule": f"sha1(file name) % {VAL_MODULUS} == 0 -> val",
         "train": sum(split_of(f.name) == "train" for f in files),
         "val": [f.name for f in files if split_of(f.name) == "val"]}
    write_bytes(path, json.dumps(d, indent=1).encode())


def detail_energies(images: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """core.imagemetrics.detail_energy (mean |Laplacian| of the grey image) of each face of a uint8
    cache (N, 3, H, W), `chunk` faces at a time."""
    from dynface.core.imagemetrics import detail_energy

    return torch.cat([detail_energy(images[i:i + chunk].float().div(127.5).sub(1))
                      for i in range(0, len(images), chunk)])


def keep_sharpest(images: torch.Tensor, fraction: float, chunk: int = 512) -> torch.Tensor:
    """The `fraction` of a uint8 image cache (N, 3, H, W) with the most fine detail (detail_energies),
    in their original order. UTKFace's softest faces are already blurred photographs; as targets
    they teach a restorer to output blur (docs/history/training-log.md)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"sharpest must be in (0, 1], got {fraction}")
    energy = detail_energies(images, chunk)
    k = max(1, round(len(images) * fraction))
    keep = torch.sort(torch.argsort(energy, descending=True, stable=True)[:k]).values
    return images[keep]


class Batcher:
    """Random batches (with horizontal flips) from a uint8 cache, as float in [-1, 1]."""

    def __init__(self, images: torch.Tensor, seed: int = 0):
        self.images = images
        self.gen = torch.Generator().manual_seed(seed)
        self.drawn = 0  # images handed out so far (checkpointed by the training loop)

    def state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, s: torch.Tensor) -> None:
        self.gen.set_state(s)

    def __call__(self, batch: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.images), (batch,), generator=self.gen)
        self.drawn += batch
        x = self.images[idx].float().div(127.5).sub(1)
        flip = torch.rand(batch, generator=self.gen) < 0.5
        x[flip] = x[flip].flip(-1)
        return x

    def randint(self, lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=self.gen))

    def rand(self) -> float:
        return float(torch.rand(1, generator=self.gen))
