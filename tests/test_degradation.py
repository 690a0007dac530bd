import numpy as np
import pytest
import torch

from conftest import smooth_image
from dynface.core.degradation import DegradationConfig, DegradationParams, degrade, degrade_random, make_rng


def test_same_seed_identical_different_seed_differs():
    x = smooth_image(64)
    cfg = DegradationConfig()
    a, pa = degrade_random(x, cfg, seed=7, index=3)
    b, pb = degrade_random(x, cfg, seed=7, index=3)
    c, pc = degrade_random(x, cfg, seed=8, index=3)
    assert torch.equal(a, b) and pa == pb
    assert not torch.equal(a, c) and pa != pc


def test_params_within_ranges_and_recorded():
    cfg = DegradationConfig(sigma=(1, 2), scale=(2, 3), noise=(0, 5), jpeg=(50, 60))
    for i in range(20):
        _, p = degrade_random(smooth_image(32), cfg, 0, i)
        assert 1 <= p.sigma <= 2 and 2 <= p.scale <= 3 and 0 <= p.noise <= 5 and 50 <= p.jpeg <= 60


def test_shape_range_and_mild_degradation_is_close():
    x = smooth_image(64)
    mild = DegradationParams(sigma=0.1, scale=1.0, noise=0.0, jpeg=100)
    y = degrade(x, mild, make_rng(0))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().mean() < 0.02
    strong = DegradationParams(sigma=6.0, scale=8.0, noise=20.0, jpeg=30)
    z = degrade(x, strong, make_rng(0))
    assert (z - x).abs().mean() > (y - x).abs().mean() * 3


def test_paper_default_ranges_and_scaling():
    cfg = DegradationConfig()
    assert cfg.sigma == (0.1, 15.0) and cfg.scale == (0.8, 32.0) and cfg.noise == (0.0, 20.0) and cfg.jpeg == (30.0, 100.0)
    s = cfg.scaled(0.25)
    assert s.sigma == (0.025, 3.75) and s.scale == (0.2, 8.0) and s.noise == cfg.noise


def test_degrade_cli_writes_params_and_repeats(tmp_path):
    from dynface.cli import main
    from dynface.core.imageio import to_uint8, write_image

    src = tmp_path / "in"
    for i in range(2):
        write_image(src / f"f{i}.png", to_uint8(smooth_image(64, seed=i)))
    assert main(["degrade", str(src), "-o", str(tmp_path / "a"), "--seed", "5", "-q"]) == 0
    assert main(["degrade", str(src), "-o", str(tmp_path / "b"), "--seed", "5", "-q"]) == 0
    for i in range(2):
        assert (tmp_path / "a" / f"f{i}.png").read_bytes() == (tmp_path / "b" / f"f{i}.png").read_bytes()
    import json

    d = json.loads((tmp_path / "a" / "params.json").read_text())
    assert {"sigma", "scale", "noise", "jpeg", "file"} <= set(d["images"][0])
    assert (tmp_path / "a" / "params.csv").exists()
