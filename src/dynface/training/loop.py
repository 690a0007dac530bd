"""Resumable training of every network: `dynface train prior|rm|se|dgsa|idm CONFIG [--device cuda]`.

One loop for all: each kind supplies a builder and a loss for one batch. Checkpoints
(`ckpt.pt`, atomic, weights_only-loadable) hold the model, its EMA, the optimiser and every RNG
state, so `--resume` continues the same run. `log.csv` records the loss; `final.safetensors` is
the fp16 export with its architecture and training record.

The networks run on `device` (the CPU by default, or a GPU); batches, degradations and random
draws are made on the CPU (training/batches.Ctx), so a checkpoint resumes on either.
"""
from __future__ import annotations

import copy
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import yaml
from tqdm import tqdm

from dynface.core.hardware import autocast, cpu_summary, resolve_precision, set_threads
from dynface.core.imageio import write_bytes_atomic
from dynface.core.schedule import Schedule
from dynface.modelset.checkpoint import export_safetensors, load_network
from dynface.modelset.manifest import embedded_or_path
from dynface.modelset.weights import load_torch_file, save_torch_file
from dynface.networks.factory import build_network
from dynface.training import data as data_mod
from dynface.training import distributed
from dynface.training.batches import Ctx
from dynface.training.curves import Validator, append_row, plot_curve
from dynface.training.losses import LOSSES
from dynface.training.lr_schedule import learning_rate


def load_config(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def config_precision(cfg: dict, device="cpu") -> str:
    """The resolved training precision: `precision: auto|fp32|fp16|bf16` (auto: bf16 only where the
    CPU runs it natively). Configs written before it had `bf16: true|false`; true now means auto."""
    name = cfg.get("precision") or ("auto" if cfg.get("bf16") else "fp32")
    return resolve_precision(name, device)


# ---------------------------------------------------------------- per-kind losses


def build_trainable(kind: str, cfg: dict, init: bool = True) -> nn.Module:
    """The network(s) a run trains; `init` applies the config's init_tm/init_sde/init_from."""
    if kind == "se":
        tm = build_network("tm", cfg["arch"]["tm"])
        if init and cfg.get("init_tm"):
            tm.load_state_dict(load_network(embedded_or_path(cfg["init_tm"]), ("rm", "tm")).state_dict())
        sde = build_network("sde", cfg["arch"]["sde"])
        if init and cfg.get("init_sde"):  # stage 2 may start from a separate stage-1 run
            sde.load_state_dict(load_network(embedded_or_path(cfg["init_sde"]), "sde").state_dict())
        return nn.ModuleDict({"tm": tm, "sde": sde})
    net = build_network(kind, cfg["arch"])
    if init and cfg.get("init_from"):
        init_from(net, **cfg["init_from"])
    return net


def init_from(net: nn.Module, path: str, skip: tuple[str, ...] = (), zero: tuple[str, ...] = ()) -> dict:
    """Start a network from another one's weights (IDM from the face prior; a deeper RM from the
    shipped one). Tensors of equal shape are copied; an input conv with more input channels gets
    the old ones copied and the new ones zeroed (so it starts by ignoring them); names starting
    with a `skip` prefix keep their fresh init; tensors the source lacks whose name contains one of
    `zero` start at zero (`zero: [conv2]` makes the residual blocks a deeper ResUNet adds start as
    the identity, so it starts as the network it grew from). `embedded:NAME` names a file of the
    embedded model set. Returns counts of copied / widened / zeroed / kept tensors."""
    src = load_network(embedded_or_path(path)).state_dict()
    own = net.state_dict()
    counts = {"copied": 0, "widened": 0, "zeroed": 0, "kept": 0}
    for k, v in own.items():
        w = src.get(k)
        if w is None and any(z in k for z in zero):
            own[k] = torch.zeros_like(v)
            counts["zeroed"] += 1
            continue
        if w is None or any(k.startswith(pre) for pre in skip):
            counts["kept"] += 1
            continue
        if w.shape == v.shape:
            own[k] = w.to(v.dtype)
            counts["copied"] += 1
        elif w.dim() == 4 and w.shape[0] == v.shape[0] and w.shape[1] < v.shape[1] and w.shape[2:] == v.shape[2:]:
            new = torch.zeros_like(v)
            new[:, : w.shape[1]] = w.to(v.dtype)
            own[k] = new
            counts["widened"] += 1
        else:
            counts["kept"] += 1
    net.load_state_dict(own)
    return counts


def init_record(kind: str, cfg: dict) -> dict:
    """Training already in the weights a run starts from (same kind via init_from / init_tm), so
    that curves and exports count cumulative iterations, images and hours; zeros for a fresh net."""
    from dynface.modelset.checkpoint import read_metadata

    src = (cfg.get("init_from") or {}).get("path") if kind != "se" else cfg.get("init_tm")
    if src:
        meta = read_metadata(embedded_or_path(src))
        if meta.get("kind") == kind or (kind == "se" and meta.get("kind") == "tm"):
            iters = int(meta.get("iters") or 0)
            images = int(meta.get("images") or iters * int(cfg.get("batch", 1)))
            return {"iters": iters, "images": images, "wall_time_s": float(meta.get("wall_time_s") or 0)}
    return {"iters": 0, "images": 0, "wall_time_s": 0.0}


def build_adversary(kind: str, cfg: dict, world: int = 1, device="cpu", init: bool = True):
    """The PatchGAN critic of an RM config with `gan:` (a dict of GAN_DEFAULTS overrides, or true;
    training/adversarial.py), else None; `init` applies `gan: {init: PATH}` (a saved critic)."""
    if cfg.get("gan") in (None, False):
        return None
    if kind != "rm":
        raise ValueError(f"`gan:` is an RM training option, not one of {kind!r}")
    if world > 1:
        raise ValueError("`gan:` is not supported under torchrun (the critic is not synchronised across ranks)")
    from dynface.training.adversarial import Adversary, load_critic

    gan = cfg["gan"] if isinstance(cfg["gan"], dict) else {}
    adv = Adversary(gan, device=device)
    if init and gan.get("init"):
        load_critic(adv.critic, gan, embedded_or_path(gan["init"]))
    return adv


def load_frozen(kind: str, cfg: dict, device="cpu") -> dict:
    """The config's `frozen` helper networks (on `device`, no gradients) and, for DGSA, its DSST table."""
    frozen = {}
    for name, path in (cfg.get("frozen") or {}).items():
        net = load_network(embedded_or_path(path)).to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        frozen[name] = net
    if kind == "dgsa" and cfg.get("dsst"):
        from dynface.core.dsst import DSST

        frozen["dsst"] = DSST.load(embedded_or_path(cfg["dsst"]))
    return frozen


# ---------------------------------------------------------------- the loop

class _StopOnSignal:
    """While training, SIGTERM and SIGINT ask the loop to checkpoint and stop after this iteration."""

    def __init__(self):
        import signal

        self.requested = False
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._ask)
            except ValueError:  # not the main thread: no handler, the caller's own handling applies
                pass

    def _ask(self, signum, frame):
        self.requested = True

    def restore(self):
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(kind: str, cfg: dict, run_dir=None, resume: bool = False, data=None, iters: int | None = None,
          threads: int | None = None, progress: bool = True, device="cpu") -> Path:
    """Train `kind` per `cfg` on `device` (cpu | cuda | cuda:N | mps | auto); returns the path of
    the exported final.safetensors."""
    from dynface.modelset.folder import resolve_device

    if kind not in LOSSES:
        raise ValueError(f"unknown kind {kind!r}; choose from {sorted(LOSSES)}")
    dev = resolve_device(device)
    cfg = dict(cfg)
    if data:
        cfg["data"] = str(data)
    if iters:
        cfg["iters"] = int(iters)
    dd = distributed.setup()  # torchrun: join the process group; one process: rank 0 of 1
    if dev.type != "cpu" and dd.world > 1:
        raise ValueError("torchrun runs train on the CPU only; train on one GPU with a single process")
    set_threads(threads or cfg.get("threads") or distributed.default_threads(dd))
    run_dir = Path(run_dir or cfg.get("run_dir", f"runs/{kind}"))
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    if ckpt_path.exists() and not resume:
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --run-dir")
    seed = int(cfg.get("seed", 0))
    rseed = distributed.rank_seed(seed, dd.rank)  # each rank its own batches, noise and degradations
    torch.manual_seed(rseed)
    batcher = data_mod.training_batcher(cfg, rseed, shard=(dd.rank, dd.world))
    if dd.main:
        data_mod.write_split(cfg["data"], run_dir / "split.json")
    ck = distributed.load_checkpoint(dd, ckpt_path, load_torch_file) if resume else None
    model = build_trainable(kind, cfg, init=ck is None).to(dev)
    ema = copy.deepcopy(model).eval() if cfg.get("ema") else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(cfg["lr"]), weight_decay=float(cfg.get("weight_decay", 0.0)))
    step, wall, base = 0, 0.0, init_record(kind, cfg)
    if ck is not None:
        model.load_state_dict(ck["model"])
        if ema is not None and ck.get("ema") is not None:
            ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, wall = int(ck["step"]), float(ck.get("wall", 0.0))
        base = ck.get("base") or base
    if dd.main:
        write_bytes_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False).encode())
    ctx = Ctx(cfg={**cfg, "seed": rseed}, batcher=batcher, schedule=Schedule.linear(),
              frozen=load_frozen(kind, cfg, dev), adversary=build_adversary(kind, cfg, dd.world, dev, init=ck is None), device=dev,
              channels_last=bool(cfg.get("channels_last")))
    if ck is not None and ctx.adversary is not None and ck.get("adversary") is not None:
        ctx.adversary.load_state_dict(ck["adversary"])
    loss_fn = LOSSES[kind]
    step_loss = distributed.loss_step(dd, model, loss_fn, ctx, find_unused=kind == "se")
    if ck is not None:  # after every network is built: building draws from the global RNG
        distributed.restore_rng(dd, ck, batcher, seed)
    images_seen = distributed.step_stats(dd, torch.zeros(()), batcher.drawn)[1]  # all ranks' draws
    total = int(cfg["iters"])
    log_every, ckpt_every = int(cfg.get("log_every", 25)), int(cfg.get("ckpt_every", 200))
    precision = config_precision(cfg, dev)
    log_f = open(run_dir / "log.csv" if dd.main else os.devnull, "a", newline="")  # rank 0 logs
    log = csv.writer(log_f)
    if log_f.tell() == 0:
        log.writerow(["step", "loss", "lr", "sec_per_iter", "wall_s"])
    bar = tqdm(total=total, initial=step, desc=f"train {kind}", disable=not (progress and dd.main), unit="it")
    running, t_last = [], time.time()

    eval_every = int(cfg.get("eval_every", 0))
    validator = Validator(kind, cfg, ctx.frozen) if eval_every and dd.main else None
    curve_path = run_dir / "curve.csv"

    def evaluate():
        """One learning-curve row: cumulative iterations / images / hours (shipped weights included)."""
        t_eval = time.time()
        metrics = validator(ema if ema is not None else model)
        if validator.last_samples is not None:  # a prior's unconditional samples: a grid per evaluation
            from dynface.core.grid import save_grid

            (run_dir / "samples").mkdir(exist_ok=True)
            save_grid(validator.last_samples, run_dir / "samples" / f"{base['iters'] + step:07d}.jpg")
        append_row(curve_path, {"step": base["iters"] + step, "images": base["images"] + images_seen,
                                "wall_h": round((base["wall_time_s"] + wall) / 3600, 3), **metrics})
        plot_curve(curve_path, run_dir / "curve.png", f"{kind}: {run_dir.name}")
        return time.time() - t_eval

    if validator is not None and not curve_path.exists():
        evaluate()  # the starting point: the shipped weights when the run starts from them

    def checkpoint():
        ranks = distributed.rank_states(dd, batcher)  # every rank takes part; rank 0 writes
        if dd.main:
            save_torch_file({"step": step, "wall": wall, "images": images_seen, "base": base, "model": model.state_dict(),
                         "ema": ema.state_dict() if ema is not None else None, "opt": opt.state_dict(),
                         "batcher_rng": batcher.state(), "torch_rng": torch.get_rng_state(),
                         "adversary": ctx.adversary.state_dict() if ctx.adversary is not None else None,
                         **({"ranks": ranks} if ranks else {})}, ckpt_path)

    stop, stopping = _StopOnSignal(), False
    while step < total and not (stopping := distributed.any_rank(dd, stop.requested)):
        t0 = time.time()
        lr = learning_rate(cfg, step, base["iters"] + step)
        for g in opt.param_groups:
            g["lr"] = lr
        ctx.step = step
        model.train()
        with autocast(dev.type, precision):
            loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(params, float(cfg["grad_clip"]))
        opt.step()
        if ema is not None:
            d = min(float(cfg["ema"]), (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - d)
                for be, bm in zip(ema.buffers(), model.buffers()):
                    be.copy_(bm)
        step += 1
        wall += time.time() - t0
        loss_mean, images_seen = distributed.step_stats(dd, loss, batcher.drawn)
        running.append(loss_mean)
        bar.update(1)
        if step % log_every == 0 or step == total:
            now = time.time()
            sec = (now - t_last) / max(1, len(running))
            log.writerow([step, f"{np.mean(running):.6f}", f"{lr:.3e}", f"{sec:.3f}", f"{wall:.0f}"])
            log_f.flush()
            bar.set_postfix(loss=f"{np.mean(running):.4f}")
            running, t_last = [], now
        if validator is not None and (step % eval_every == 0 or step == total):
            evaluate()
        if step % ckpt_every == 0 or step == total:
            checkpoint()
    if stopping:
        checkpoint()  # SIGTERM / SIGINT: keep every finished iteration, then stop
    stop.restore()
    bar.close()
    log_f.close()
    out = export(kind, cfg, run_dir, device=dev) if dd.main else run_dir / "final.safetensors"
    distributed.teardown(dd)
    return out


def export(kind: str, cfg: dict, run_dir, device=None) -> Path:
    """Export the EMA (else the model) of a run's checkpoint as fp16 safetensors (built on the CPU
    whatever the run trained on; a GPU that trained it is named in the record); a run with a
    critic also writes it to critic.safetensors (a later run's `gan: {init: ...}`)."""
    run_dir = Path(run_dir)
    ck = load_torch_file(run_dir / "ckpt.pt")
    model = build_trainable(kind, cfg, init=False)
    model.load_state_dict(ck["ema"] if ck.get("ema") is not None else ck["model"])
    base = ck.get("base") or {"iters": 0, "images": 0, "wall_time_s": 0}
    record = {"iters": base["iters"] + int(ck["step"]), "images": base["images"] + int(ck.get("images", 0)),
              "wall_time_s": round(base["wall_time_s"] + float(ck.get("wall", 0.0))), "cpu": cpu_summary(),
              "run_iters": int(ck["step"]), "data": str(cfg["data"]), "config": cfg}
    if device is not None and torch.device(device).type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if ck.get("adversary") is not None:
        from dynface.training.adversarial import save_critic

        save_critic(ck["adversary"]["critic"], cfg.get("gan"), run_dir / "critic.safetensors", record)
    if kind == "se":
        export_safetensors(model["tm"], run_dir / "tm.safetensors", "tm", cfg["arch"]["tm"], record)
        return export_safetensors(model["sde"], run_dir / "sde.safetensors", "sde", cfg["arch"]["sde"], record)
    return export_safetensors(model, run_dir / "final.safetensors", kind, cfg["arch"], record)
