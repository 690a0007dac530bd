import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.exists():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def face128(data_dir) -> torch.Tensor:
    """One real face at 128^2 in [-1, 1] (read from ../shared/data, never committed)."""
    from dynface.core.imageio import read_rgb, resize, to_tensor

    f = sorted((data_dir / "val" / "clean").iterdir())[0]
    return resize(to_tensor(read_rgb(f)), 128)


def smooth_image(size=64, seed=0) -> torch.Tensor:
    """A synthetic smooth test image in [-1, 1] with some edges (no data needed)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disk = ((xx**2 + yy**2) < 0.4).float()
    return (0.5 * x.tanh() + 0.4 * disk - 0.2).clamp(-1, 1)


def load_script(relpath: str):
    """Import a script of the repository that is not part of the package (scripts/, benchmarks/)."""
    path = Path(__file__).resolve().parents[1] / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
