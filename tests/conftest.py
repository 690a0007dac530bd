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


@pytest.fixture(scope="module")
def ms(tmp_path_factory):
    """A tiny model set folder (tests/tiny_models.py), one per test module."""
    from tiny_models import make_tiny_modelset

    return make_tiny_modelset(tmp_path_factory.mktemp("ms"))


# ---------------------------------------------------------------- training runs


def faces_with_val_split(folder, n_train=6, n_val=3):
    """Synthetic faces named so that data.split_of puts n_val of them in the val split."""
    from dynface.core.imageio import to_uint8, write_image
    from dynface.training import data as data_mod
    from tiny_models import SIZE

    folder.mkdir(exist_ok=True)
    i = made_val = made_train = 0
    while made_val < n_val or made_train < n_train:
        name = f"f{i}.png"
        is_val = data_mod.split_of(name) == "val"
        if (is_val and made_val < n_val) or (not is_val and made_train < n_train):
            write_image(folder / name, to_uint8(smooth_image(SIZE, seed=i)[0]))
            made_val += is_val
            made_train += not is_val
        i += 1
    return folder


def rm_config(tmp_path, init) -> dict:
    """A 4-iteration RM config from the weights `init`, with a curve every 2 iterations."""
    from tiny_models import ARCH, SIZE

    return {"kind": "rm", "data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "seed": 1, "iters": 4,
            "batch": 2, "lr": 1e-3, "warmup": 1, "ema": 0.9, "precision": "fp32", "ckpt_every": 2, "log_every": 1,
            "eval_every": 2, "val_faces": 3, "fft_weight": 0.5, "cache_dir": str(tmp_path / "cache"),
            "degradation": {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]},
            "init_from": {"path": str(init)}, "arch": ARCH["rm"]}


def shipped_rm(tmp_path):
    """A tiny RM exported as if shipped: 100 iterations, 800 images, one hour."""
    from dynface.modelset.checkpoint import export_safetensors
    from dynface.networks.factory import build_network
    from tiny_models import ARCH

    torch.manual_seed(0)
    rm = build_network("rm", ARCH["rm"])
    return export_safetensors(rm, tmp_path / "rm.safetensors", "rm", ARCH["rm"],
                              {"iters": 100, "images": 800, "wall_time_s": 3600}, dtype=torch.float32)
