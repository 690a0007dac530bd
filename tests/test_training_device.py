"""Training on another device (`dynface train --device cuda`): batches and random draws stay on the
CPU, the networks move; a run started on a GPU resumes on the CPU. The GPU tests run where CUDA is."""
from pathlib import Path

import pytest
import torch

from conftest import faces_with_val_split, shipped_rm
from tiny_models import ARCH, SIZE, make_tiny_modelset
from dynface.core.schedule import Schedule
from dynface.modelset.checkpoint import read_metadata
from dynface.modelset.folder import ModelError
from dynface.modelset.weights import load_torch_file
from dynface.training import data as data_mod
from dynface.training.batches import Ctx
from dynface.training.curves import read_curve
from dynface.training.loop import train

CUDA = torch.cuda.is_available()
DEGRADATION = {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]}


def tiny_runs(tmp: Path) -> dict:
    """A 4-iteration config of every kind, each with its learning curve (every 2 iterations)."""
    root = make_tiny_modelset(tmp / "set")
    common = {"data": str(faces_with_val_split(tmp / "faces")), "size": SIZE, "iters": 4, "lr": 1e-3, "warmup": 1,
              "ema": 0.9, "precision": "fp32", "ckpt_every": 2, "log_every": 1, "eval_every": 2, "val_faces": 3,
              "cache_dir": str(tmp / "cache"), "degradation": DEGRADATION}
    frozen = {k: str(root / f"{k}.safetensors") for k in ("prior", "rm", "tm", "sde")}
    patch = {"sizes": [16, 32], "probs": [0.5, 0.5]}
    runs = {
        "rm": {**common, "seed": 1, "batch": 2, "fft_weight": 0.5, "feature_weight": 0.05, "crop": SIZE - 4,
               "gan": {"weight": 0.01, "channels": 8}, "init_from": {"path": str(shipped_rm(tmp))}, "arch": ARCH["rm"]},
        "prior": {**common, "seed": 4, "batch": 4, "patch": patch, "restore_val_faces": 2, "modelset": str(root),
                  "init_from": {"path": frozen["prior"]}, "arch": ARCH["prior"]},
        "idm": {**common, "seed": 3, "batch": 4, "patch": patch, "arch": ARCH["idm"]},
        "se": {**common, "seed": 5, "batch": 2, "stage1_iters": 2, "sigma_grid": [0.1, 3.0, 30], "eps": 0.025,
               "init_tm": frozen["tm"], "init_sde": frozen["sde"], "frozen": {"rm": frozen["rm"]},
               "arch": {"tm": ARCH["tm"], "sde": ARCH["sde"]}},
        "dgsa": {**common, "seed": 2, "stage1_iters": 2, "batch": 2, "dgsa_val_faces": 2, "sigma_grid": [0.1, 3.0, 30],
                 "eps": 0.025, "zeta": 0.5, "sampler_steps": 4, "modelset": str(root), "dsst": str(root / "dsst.json"),
                 "init_from": {"path": str(root / "dgsa.safetensors")}, "frozen": frozen, "arch": ARCH["dgsa"]},
    }
    runs["dgsa-chain"] = {**runs["dgsa"], "dgsa_states": "chain"}  # kind dgsa, states of running chains
    runs["dgsa-fidelity"] = {**runs["dgsa-chain"], "n_guidance": 3, "guidance_spacing": 0.25, "chain_fidelity": 1.0}
    return runs


def test_on_device_is_the_identity_on_the_cpu():
    """CPU runs stay what they were before devices existed: nothing is copied."""
    imgs = torch.zeros(4, 3, SIZE, SIZE, dtype=torch.uint8)
    ctx = Ctx(cfg={"size": SIZE}, batcher=data_mod.Batcher(imgs, 0), schedule=Schedule.linear())
    a = torch.randn(2, 3)
    out = ctx.on_device(a, None)
    assert out[0] is a and out[1] is None and ctx.device == torch.device("cpu")


@pytest.mark.skipif(CUDA, reason="checks the error where CUDA is missing")
def test_an_unavailable_device_is_one_clear_error_before_anything_is_written(tmp_path):
    cfg = tiny_runs(tmp_path)["rm"]
    with pytest.raises(ModelError, match="CUDA is not available"):
        train("rm", cfg, run_dir=tmp_path / "run", progress=False, device="cuda")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["rm", "prior", "idm", "se", "dgsa", "dgsa-chain", "dgsa-fidelity"])
def test_every_kind_resumes_bit_for_bit_with_its_curve(tmp_path, name):
    """Building the frozen networks, and the model set the prior's and DGSA's validators load at
    their first evaluation in a process, must draw nothing from the run's random streams after they
    are restored, or a resumed run leaves the straight one there (DGSA's running chains included)."""
    kind = name.split("-")[0]
    cfg = {**tiny_runs(tmp_path)[name], "iters": 6, "ckpt_every": 1}
    train(kind, cfg, run_dir=tmp_path / "straight", progress=False)
    train(kind, cfg, run_dir=tmp_path / "resumed", progress=False, iters=3)
    train(kind, cfg, run_dir=tmp_path / "resumed", progress=False, resume=True)  # loads the set at step 4
    a, b = load_torch_file(tmp_path / "straight" / "ckpt.pt"), load_torch_file(tmp_path / "resumed" / "ckpt.pt")
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert a["loss_state"].keys() == b["loss_state"].keys()
    for k in a["loss_state"]:
        assert torch.equal(a["loss_state"][k], b["loss_state"][k]), k
    curves = [read_curve(tmp_path / d / "curve.csv") for d in ("straight", "resumed")]
    start = curves[0][0]["step"]  # the weights the run starts from (their iterations count)
    scores = [[{k: v for k, v in r.items() if k != "wall_h"} for r in rows if r["step"] != start + 3]
              for rows in curves]  # start + 3: the row where the first part of the resumed run ended
    assert len(scores[0]) == 4 and scores[0] == scores[1]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["rm", "prior", "idm", "se", "dgsa", "dgsa-chain"])
def test_a_gpu_run_resumes_on_the_cpu_and_follows_the_cpu_run(tmp_path, name):
    kind = name.split("-")[0]
    cfg = tiny_runs(tmp_path)[name]
    train(kind, cfg, run_dir=tmp_path / "cpu", progress=False)
    train(kind, cfg, run_dir=tmp_path / "mixed", progress=False, iters=2, device="cuda")
    half = load_torch_file(tmp_path / "mixed" / "ckpt.pt")  # written on the GPU, read on the CPU
    assert all(v.device.type == "cpu" for v in half["model"].values())
    out = train(kind, cfg, run_dir=tmp_path / "mixed", progress=False, resume=True)
    a, b = read_curve(tmp_path / "cpu" / "curve.csv"), read_curve(tmp_path / "mixed" / "curve.csv")
    assert [r["step"] for r in a] == [r["step"] for r in b] and [r["images"] for r in a] == [r["images"] for r in b]
    for ra, rb in zip(a, b):  # the same batches and noise: only arithmetic differs (TF32, kernels)
        for k, v in ra.items():
            if k not in ("step", "images", "wall_h"):
                assert rb[k] == pytest.approx(v, rel=0.05, abs=0.05), (kind, ra["step"], k)
    assert read_metadata(out)["run_iters"] == 4
    gpu_only = train(kind, cfg, run_dir=tmp_path / "gpu", progress=False, device="cuda")
    assert read_metadata(gpu_only)["gpu"] == torch.cuda.get_device_name()


def test_dgsa_chain_states_are_the_steps_of_running_chains(tmp_path):
    """`dgsa_states: chain`: each slot of the batch is a chain that starts at its DSST step t* with
    x_{t*} = q(y_g, t*), takes the kept steps of the respaced chain from t* one per iteration, and is
    replaced by a new face once it has taken its last step (to t = 0)."""
    from dynface.core.schedule import space_timesteps
    from dynface.training.loop import TrainLoop

    cfg = {**tiny_runs(tmp_path)["dgsa-chain"], "iters": 12, "eval_every": 0, "stage1_iters": 0}
    loop = TrainLoop("dgsa", cfg, run_dir=tmp_path / "run", progress=False)
    assert loop.ctx.state == {}
    loop.run_step()
    st = loop.ctx.state
    assert st["j"].tolist() == [1, 1] and st["x_t"].shape == st["x"].shape == (2, 3, SIZE, SIZE)
    refills = 0
    for _ in range(10):
        before, drawn = {k: v.clone() for k, v in st.items()}, loop.batcher.drawn
        loop.run_step()
        st = loop.ctx.state
        finished = 0
        for i in range(2):
            kept = space_timesteps(1000, 4, start=int(before["t_star"][i]))
            if before["j"][i] == len(kept):  # finished: a new face drawn, started and stepped once
                finished += 1
                assert st["j"][i] == 1
            else:  # the same chain, one step further, from the state the last step left
                assert st["j"][i] == before["j"][i] + 1
                assert torch.equal(st["x"][i], before["x"][i]) and torch.equal(st["t_star"][i], before["t_star"][i])
                assert not torch.equal(st["x_t"][i], before["x_t"][i])
        assert loop.batcher.drawn - drawn == finished  # only finished chains take new faces
        refills += finished
    assert refills >= 2 and torch.isfinite(st["x_t"]).all()


def test_dgsa_chains_run_at_the_controls_users_get_at_a_fidelity(tmp_path):
    """`chain_fidelity: 1` with `n_guidance: 3`: a chain holds the 4 guidance images the sampler uses
    at w = 1 (sigma_i = sigma_hat - (i-1) spacing, then halved, clamped to the grid; y_i = k_sigma_i
    (x) RM(y)), starts at DSST(sigma_1) and steps with zeta doubled."""
    from dynface.core.kernels import gaussian_blur
    from dynface.training.batches import degrade_batch
    from dynface.training.dgsa_loss import _guidance_images, chain_controls
    from dynface.training.loop import TrainLoop

    cfg = {**tiny_runs(tmp_path)["dgsa-fidelity"], "iters": 2, "eval_every": 0, "stage1_iters": 0}
    loop = TrainLoop("dgsa", cfg, run_dir=tmp_path / "run", progress=False)
    assert chain_controls(loop.cfg) == (4, 0.5, 1.0)
    assert chain_controls(loop.cfg.replace(chain_fidelity=None)) == (3, 1.0, 0.5)
    ctx, fz = loop.ctx, loop.ctx.frozen
    faces = loop.batcher(2)
    x, y_g, sig, t_star = _guidance_images(faces, ctx)
    with torch.no_grad():
        y = degrade_batch(faces, loop.cfg, ctx.step)
        r = fz["rm"](y).clamp(-1, 1).float()
        hat = fz["sde"](fz["tm"](y)).float().clamp(0.1, 3.0)
    want = torch.stack([((hat - 0.25 * i).clamp_min(0.1) * 0.5).clamp(0.1, 3.0) for i in range(4)], dim=1)
    assert y_g.shape == (2, 4, 3, SIZE, SIZE) and torch.allclose(sig, want)
    for i in range(4):
        assert torch.allclose(y_g[:, i], gaussian_blur(r, want[:, i]), atol=1e-6)
    assert torch.equal(t_star, fz["dsst"].lookup(want[:, 0]))
    loop.run_step()
    assert ctx.state["y_g"].shape == (2, 4, 3, SIZE, SIZE) and ctx.state["sig"].shape == (2, 4)


def test_a_chain_pool_saved_with_one_guidance_image_per_chain_goes_on(tmp_path):
    """Pools checkpointed before chains held several guidance images ((B, C, H, W) y_g, (B,) sigmas)
    are read as one guidance each and continue, not refilled."""
    from dynface.training.loop import TrainLoop

    cfg = {**tiny_runs(tmp_path)["dgsa-chain"], "iters": 4, "eval_every": 0, "stage1_iters": 0}
    loop = TrainLoop("dgsa", cfg, run_dir=tmp_path / "run", progress=False)
    loop.run_step()
    st = loop.ctx.state
    assert st["j"].tolist() == [1, 1]  # 4 kept steps per chain: neither has finished
    old = {**st, "y_g": st["y_g"][:, 0].clone(), "sig": st["sig"][:, 0].clone()}
    st.clear()
    st.update(old)
    drawn = loop.batcher.drawn
    loop.run_step()
    st = loop.ctx.state
    assert loop.batcher.drawn == drawn and st["j"].tolist() == [2, 2]
    assert st["y_g"].shape == (2, 1, 3, SIZE, SIZE) and torch.equal(st["y_g"][:, 0], old["y_g"])
    assert torch.equal(st["sig"][:, 0], old["sig"])
