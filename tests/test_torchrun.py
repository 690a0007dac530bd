"""`dynface train` under `torchrun --nproc_per_node=2` (gloo, CPU): the DDP step equals one
single-process step over both ranks' batches; only rank 0 writes; resume continues the same run."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import smooth_image
from tiny_models import ARCH, SIZE
from dynface.core.imageio import to_uint8, write_image
from dynface.modelset.weights import load_torch_file
from dynface.training import data as data_mod
from dynface.training.batches import degrade_batch
from dynface.training.distributed import rank_seed
from dynface.training.loop import build_trainable

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[1] / "src"


def rm_config(tmp_path) -> dict:
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(8):
        write_image(folder / f"face{i}.png", to_uint8(smooth_image(SIZE, seed=i)[0]))
    return {"kind": "rm", "data": str(folder), "split": "all", "size": SIZE, "seed": 3, "iters": 2, "batch": 2,
            "lr": 1e-3, "warmup": 1, "ema": 0.9, "precision": "fp32", "threads": 1, "ckpt_every": 1, "log_every": 1,
            "eval_every": 0, "cache_dir": str(tmp_path / "cache"),
            "degradation": {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]},
            "arch": ARCH["rm"]}


def torchrun(cfg_path: Path, run_dir: Path, *extra: str):
    with socket.socket() as s:  # a free port on the loopback for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "dynface.cli", "train", "rm", "--config", str(cfg_path),
           "--run-dir", str(run_dir), "-q", *extra]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return load_torch_file(run_dir / "ckpt.pt")


def single_process_steps(cfg: dict, ranks: list[int], steps: int) -> dict:
    """The same steps in one process, each over the concatenation of the given ranks' batches, on one
    thread like each rank (`threads: 1`), so both sides sum their gradients in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _single_process_steps(cfg, ranks, steps)
    finally:
        torch.set_num_threads(threads)


def _single_process_steps(cfg: dict, ranks: list[int], steps: int) -> dict:
    torch.manual_seed(cfg["seed"])
    model = build_trainable("rm", cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    batchers = {r: data_mod.Batcher(data_mod.load_cache(cfg["data"], SIZE, "all", cache_dir=cfg["cache_dir"],
                                                        shard=(r, 2)), rank_seed(cfg["seed"], r)) for r in ranks}
    for step in range(steps):
        xs, ys = [], []
        for r in ranks:
            x = batchers[r](cfg["batch"])
            xs.append(x)
            ys.append(degrade_batch(x, {**cfg, "seed": rank_seed(cfg["seed"], r)}, step))
        loss = F.l1_loss(model(torch.cat(ys)).float(), torch.cat(xs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def test_ddp_step_equals_the_combined_batch_step_and_resumes(tmp_path):
    cfg = {**rm_config(tmp_path), "threads": 1}  # each rank on one thread, as the single process below
    cfg_path = tmp_path / "rm.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    ck = torchrun(cfg_path, tmp_path / "ddp")
    assert ck["step"] == 2 and len(ck["ranks"]) == 2
    assert ck["images"] == 2 * 2 * cfg["batch"]  # both ranks' draws
    combined = single_process_steps(cfg, [0, 1], 2)
    rank0_only = single_process_steps(cfg, [0], 2)
    for k, v in ck["model"].items():
        assert torch.allclose(v, combined[k], rtol=1e-4, atol=1e-6), k
    assert any(not torch.allclose(v, rank0_only[k], rtol=1e-4, atol=1e-6) for k, v in ck["model"].items())
    run = tmp_path / "ddp"
    assert len((run / "log.csv").read_text().splitlines()) == 3  # header + 2 steps, one writer
    assert (run / "final.safetensors").exists() and (run / "config.yaml").exists()

    torchrun(cfg_path, tmp_path / "resumed", "--iters", "1")
    again = torchrun(cfg_path, tmp_path / "resumed", "--resume")
    assert again["step"] == 2 and again["images"] == ck["images"]
    for k in ck["model"]:
        assert torch.equal(again["model"][k], ck["model"][k]), k
        assert torch.equal(again["ema"][k], ck["ema"][k]), k
