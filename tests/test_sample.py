"""`dynface sample`: unconditional faces from a prior, a pure function of (seed, index)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tiny_models import ARCH, SIZE, make_tiny_modelset
from dynface.networks.factory import build_network
from dynface.sampling.unconditional import sample_prior, stream_seed


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return make_tiny_modelset(tmp_path_factory.mktemp("models"))


def test_a_sample_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    net = build_network("prior", ARCH["prior"]).eval()
    torch.nn.init.normal_(net.unet.out[2].weight, std=0.02)
    both = sample_prior(net, SIZE, [0, 1], steps=3, seed=4)
    one = sample_prior(net, SIZE, [1], steps=3, seed=4)
    assert both.shape == (2, 3, SIZE, SIZE) and torch.allclose(both[1:], one, atol=1e-3)  # batched kernels round differently
    assert not torch.allclose(both[0], both[1])
    assert not torch.allclose(sample_prior(net, SIZE, [1], steps=3, seed=5), one)
    assert stream_seed(4, 1) != stream_seed(1, 4)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dynface.cli", "sample", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ})


def test_sample_command_is_resumable_and_repeatable(tiny_set, tmp_path):
    common = ["--weights-dir", str(tiny_set), "--steps", "3", "--precision", "fp32", "-q"]
    r = _run("-n", "3", "-o", str(tmp_path / "a"), *common)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["grid.jpg", "sample_000000.png", "sample_000001.png", "sample_000002.png"]
    assert _run("-n", "1", "-o", str(tmp_path / "b"), *common).returncode == 0
    r = _run("-n", "3", "-o", str(tmp_path / "b"), "--batch", "1", *common)
    assert r.returncode == 0 and "(1 already there)" in r.stderr
    for k in range(3):
        name = f"sample_{k:06d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    bad = _run("-n", "1", "-o", str(tmp_path / "c"), "--steps", "0", *common[:2])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
