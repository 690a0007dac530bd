"""Resumable training of every network: `dynface train prior|rm|se|dgsa|idm CONFIG [--device cuda]`.

One loop for all (`TrainLoop`, configured by a `training.config.TrainConfig`): each kind supplies a
builder and a loss for one batch (`training.losses.LOSSES`). Checkpoints
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
from contextlib import contextmanager
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
from dynface.modelset.weights import load_torch_file, save_torch_file, sha256_file
from dynface.networks.deepen import deepened_state, new_blocks
from dynface.networks.factory import build_network
from dynface.networks.unet import UNetModel
from dynface.training import data as data_mod
from dynface.training import distributed
from dynface.training.batches import Ctx
from dynface.training.config import ConfigError, TrainConfig
from dynface.training.curves import Validator, append_row, plot_curve, read_curve
from dynface.training.losses import LOSSES
from dynface.training.lr_schedule import learning_rate


def load_config(path) -> dict:
    """A config file's keys, checked against `TrainConfig` (an unknown key is an error)."""
    from dynface.training.config import read_config_text

    d = yaml.safe_load(read_config_text(path)) or {}
    TrainConfig.from_dict(d)
    return d


def config_precision(cfg: TrainConfig | dict, device="cpu") -> str:
    """The resolved training precision: `precision: auto|fp32|fp16|bf16` (auto: bf16 only where the
    CPU runs it natively)."""
    return resolve_precision(TrainConfig.of(cfg).precision, device)


# ---------------------------------------------------------------- the networks of a run


def build_trainable(kind: str, cfg: TrainConfig | dict, init: bool = True) -> nn.Module:
    """The network(s) a run trains; `init` applies the config's init_tm/init_sde/init_from."""
    cfg = TrainConfig.of(cfg)
    if kind == "se":
        tm = build_network("tm", cfg.arch["tm"])
        if init and cfg.init_tm:
            tm.load_state_dict(load_network(embedded_or_path(cfg.init_tm), ("rm", "tm")).state_dict())
        sde = build_network("sde", cfg.arch["sde"])
        if init and cfg.init_sde:  # stage 2 may start from a separate stage-1 run
            sde.load_state_dict(load_network(embedded_or_path(cfg.init_sde), "sde").state_dict())
        return nn.ModuleDict({"tm": tm, "sde": sde})
    net = build_network(kind, cfg.arch)
    if init and cfg.init_from:
        init_from(net, **cfg.init_from)
    return net


def init_from(net: nn.Module, path: str, skip: tuple[str, ...] = (), zero: tuple[str, ...] = ()) -> dict:
    """Start a network from another one's weights (IDM from the face prior; a deeper RM from the
    shipped one). Tensors of equal shape are copied; an input conv with more input channels gets
    the old ones copied and the new ones zeroed (so it starts by ignoring them); names starting
    with a `skip` prefix keep their fresh init; tensors the source lacks whose name contains one of
    `zero` start at zero (`zero: [conv2]` makes the residual blocks a deeper ResUNet adds start as
    the identity, so it starts as the network it grew from). A diffusion UNet with more residual
    blocks per level than the source's gets the new ones as identities (networks/deepen.py), so it
    too starts as the network it grew from. `embedded:NAME` names a file of the embedded model set.
    Returns counts of copied / widened / zeroed / kept tensors and of the blocks deepening added."""
    source = load_network(embedded_or_path(path))
    src = source.state_dict()
    own = net.state_dict()
    counts = {"copied": 0, "widened": 0, "zeroed": 0, "kept": 0, "deepened": 0}
    src_unet, own_unet = getattr(source, "unet", None), getattr(net, "unet", None)
    if (isinstance(src_unet, UNetModel) and isinstance(own_unet, UNetModel)
            and src_unet.config.num_res_blocks != own_unet.config.num_res_blocks):
        src = {**src, **deepened_state(src, src_unet.config, own_unet, prefix="unet.")}
        counts["deepened"] = new_blocks(src_unet.config, own_unet.config)
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


def data_label(cfg: TrainConfig) -> str:
    """What a run trained on, for an export's record and the model card: its folder, or its sources
    with their weights (and the generated faces it drew on the fly). A folder `dynface synth` made
    (its synth.json) is named by what it holds, not by the machine's path to it."""
    cfg = TrainConfig.of(cfg)
    if isinstance(cfg.data, list):
        parts = [f"{folder_label(d['path'])} (weight {d.get('weight', 1)})" for d in cfg.data]
    else:
        parts = [folder_label(cfg.data)]
    if cfg.synth:
        parts.append(f"generated faces (weight {cfg.synth.get('weight', 1)})")
    return ", ".join(parts)


def folder_label(path) -> str:
    """A data folder as an export names it: generated faces by their recipe (synth.json), else its path."""
    import json

    try:
        meta = json.loads((Path(data_mod.expand(path)) / "synth.json").read_text())
        return f"generated FFHQ-aligned faces (dynface synth, {meta['size']} px, seed {meta['seed']})"
    except (OSError, ValueError, KeyError, TypeError):
        return str(path)


def init_record(kind: str, cfg: TrainConfig | dict) -> dict:
    """Training already in the weights a run starts from (same kind via init_from / init_tm), so
    that curves and exports count cumulative iterations, images and hours; zeros for a fresh net."""
    from dynface.modelset.checkpoint import read_metadata

    cfg = TrainConfig.of(cfg)
    src = (cfg.init_from or {}).get("path") if kind != "se" else cfg.init_tm
    if src:
        meta = read_metadata(embedded_or_path(src))
        if meta.get("kind") == kind or (kind == "se" and meta.get("kind") == "tm"):
            iters = int(meta.get("iters") or 0)
            images = int(meta.get("images") or iters * cfg.batch)
            return {"iters": iters, "images": images, "wall_time_s": float(meta.get("wall_time_s") or 0)}
    return {"iters": 0, "images": 0, "wall_time_s": 0.0}


def build_adversary(kind: str, cfg: TrainConfig | dict, world: int = 1, device="cpu", init: bool = True):
    """The PatchGAN critic of an RM or upsampler config with `gan:` (a dict of GAN_DEFAULTS overrides,
    or true; training/adversarial.py), else None; `init` applies `gan: {init: PATH}` (a saved critic)."""
    cfg = TrainConfig.of(cfg)
    if cfg.gan in (None, False):
        return None
    if kind not in ("rm", "up"):
        raise ValueError(f"`gan:` is an RM and upsampler training option, not one of {kind!r}")
    if world > 1:
        raise ValueError("`gan:` is not supported under torchrun (the critic is not synchronised across ranks)")
    from dynface.training.adversarial import Adversary, load_critic

    gan = cfg.gan if isinstance(cfg.gan, dict) else {}
    adv = Adversary(gan, device=device)
    if init and gan.get("init"):
        load_critic(adv.critic, gan, embedded_or_path(gan["init"]))
    return adv


def load_frozen(kind: str, cfg: TrainConfig | dict, device="cpu") -> dict:
    """The config's `frozen` helper networks (on `device`, no gradients) and, for DGSA, its DSST table."""
    cfg = TrainConfig.of(cfg)
    frozen = {}
    for name, path in (cfg.frozen or {}).items():
        net = load_network(embedded_or_path(path)).to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        frozen[name] = net
    if kind == "dgsa" and cfg.dsst:
        from dynface.core.dsst import DSST

        frozen["dsst"] = DSST.load(embedded_or_path(cfg.dsst))
    return frozen


def frozen_fingerprints(kind: str, cfg: TrainConfig | dict) -> dict:
    """sha256 (16 hex digits) of each file `load_frozen` reads: a checkpoint keeps them, so that a run
    is not resumed beside other frozen networks than it trained with (say, a prior exported anew)."""
    cfg = TrainConfig.of(cfg)
    files = dict(cfg.frozen or {})
    if kind == "dgsa" and cfg.dsst:
        files["dsst"] = cfg.dsst
    return {name: sha256_file(embedded_or_path(path))[:16] for name, path in files.items()}


# ---------------------------------------------------------------- the loop

class EvaluationCut(BaseException):
    """SIGTERM / SIGINT arrived during an evaluation: the row is dropped (taken again on resume)."""


class _StopOnSignal:
    """While training, SIGTERM and SIGINT ask the loop to checkpoint and stop after this iteration;
    inside `cutting()` (an evaluation) they raise EvaluationCut at once instead, so that a stop
    does not wait for a learning-curve row (a prior's takes many minutes on a CPU)."""

    def __init__(self):
        import signal

        self.requested = False
        self._cut = False
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._ask)
            except ValueError:  # not the main thread: no handler, the caller's own handling applies
                pass

    def _ask(self, signum, frame):
        self.requested = True
        if self._cut:
            self._cut = False
            raise EvaluationCut

    @contextmanager
    def cutting(self, allowed: bool = True):
        """Within this block a stop request cuts the work short (EvaluationCut)."""
        if self.requested and allowed:
            raise EvaluationCut
        self._cut = allowed and bool(self._old)
        try:
            yield
        finally:
            self._cut = False

    def restore(self):
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


class TrainLoop:
    """One training run, in the shape of guided-diffusion's `TrainLoop`: `__init__` sets up (process
    group, data, networks, optimiser, resume), `run()` repeats `run_step()` (`_set_lr` the
    schedule, `_forward_backward`, `_optimise`, `_update_ema`) and calls `log_step`, `evaluate`
    and `save` at their intervals, and `export` writes the final weights.

    Set-up draws from the global RNG in a fixed order (data, networks, critic, then a resumed
    checkpoint's RNG states), so a run resumed from any checkpoint is bit-exact to one that never
    stopped; checkpoints hold exactly the entries `save` lists."""

    def __init__(self, kind: str, cfg: TrainConfig | dict, run_dir=None, resume: bool = False, data=None,
                 iters: int | None = None, threads: int | None = None, progress: bool = True, device="cpu"):
        from dynface.modelset.folder import resolve_device

        if kind not in LOSSES:
            raise ValueError(f"unknown kind {kind!r}; choose from {sorted(LOSSES)}")
        cfg = TrainConfig.of(cfg)
        if data:
            cfg = cfg.replace(data=str(data))
        if iters:
            cfg = cfg.replace(iters=int(iters))
        cfg.check_complete()
        self.kind, self.cfg, self.progress = kind, cfg, progress
        self.device = resolve_device(device)
        self.dd = dd = distributed.setup()  # torchrun: join the process group; one process: rank 0 of 1
        if self.device.type != "cpu" and dd.world > 1:
            raise ValueError("torchrun runs train on the CPU only; train on one GPU with a single process")
        set_threads(threads or cfg.threads or distributed.default_threads(dd))
        self.run_dir = Path(run_dir) if run_dir else cfg.default_run_dir(kind)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.run_dir / "ckpt.pt"
        if self.ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.ckpt_path} exists: pass --resume to continue it, or choose another --run-dir")
        self._setup_data()
        ck = distributed.load_checkpoint(dd, self.ckpt_path, load_torch_file) if resume else None
        self.frozen_ids = frozen_fingerprints(kind, cfg)
        if ck is not None and ck.get("frozen") not in (None, self.frozen_ids):
            changed = sorted(k for k in {*ck["frozen"], *self.frozen_ids} if ck["frozen"].get(k) != self.frozen_ids.get(k))
            raise ConfigError(f"{self.ckpt_path}: its frozen {', '.join(changed)} changed since it was saved; "
                              f"put the files back, or move {self.run_dir} aside to start afresh")
        self._setup_model(ck)
        if dd.main:
            write_bytes_atomic(self.run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
        self._setup_context(ck)
        if ck is not None:  # after every network is built: building draws from the global RNG
            distributed.restore_rng(dd, ck, self.batcher, cfg.seed)
        self.images_seen = distributed.step_stats(dd, torch.zeros(()), self.batcher.drawn)[1]  # all ranks' draws
        self.precision = config_precision(cfg, self.device)
        self.validator = Validator(kind, cfg, self.ctx.frozen) if cfg.eval_every and dd.main else None
        self.curve_path = self.run_dir / "curve.csv"

    # ------------------------------------------------------------ set-up

    def _setup_data(self) -> None:
        """This rank's faces (its shard under torchrun) and the batcher that draws from them."""
        cfg, dd = self.cfg, self.dd
        self.rank_seed = distributed.rank_seed(cfg.seed, dd.rank)  # each rank its own batches, noise and degradations
        torch.manual_seed(self.rank_seed)
        self.batcher = data_mod.training_batcher(cfg, self.rank_seed, shard=(dd.rank, dd.world))
        if dd.main:
            data_mod.write_split(cfg.data, self.run_dir / "split.json")

    def refresh_data(self) -> int:
        """Re-read the data folders (`refresh_data_every`): faces added since the start (a synthetic
        folder still being made) join the draws; the batcher's random state carries on. Only the new
        files are decoded (the cache). Returns the number of images now drawn from."""
        cfg, dd = self.cfg, self.dd
        before = len(self.batcher.images)
        images, probs, windows = data_mod.training_images(cfg, shard=(dd.rank, dd.world))
        self.batcher.images, self.batcher.probs, self.batcher.windows = images, probs, windows
        if dd.main and len(images) != before:
            data_mod.write_split(cfg.data, self.run_dir / "split.json")
            print(f"step {self.base['iters'] + self.step}: data re-read, {before} -> {len(images)} images", flush=True)
        return len(images)

    def _setup_model(self, ck: dict | None) -> None:
        """The trained network(s), their EMA copy and the optimiser; a checkpoint's states when resuming."""
        cfg = self.cfg
        self.model = build_trainable(self.kind, cfg, init=ck is None).to(self.device)
        self.ema = copy.deepcopy(self.model).eval() if cfg.ema else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.wall = 0, 0.0
        # a checkpoint carries its start's record: a resumed run (or a fork) needs no init_from file
        self.base = (ck or {}).get("base") or init_record(self.kind, cfg)
        if ck is not None:
            self.model.load_state_dict(ck["model"])
            if self.ema is not None and ck.get("ema") is not None:
                self.ema.load_state_dict(ck["ema"])
            self.opt.load_state_dict(ck["opt"])
            self.step, self.wall = int(ck["step"]), float(ck.get("wall", 0.0))

    def _setup_context(self, ck: dict | None) -> None:
        """What the loss sees (`training.batches.Ctx`): frozen helpers, the critic, the schedule."""
        kind, cfg, dev = self.kind, self.cfg, self.device
        self.ctx = Ctx(cfg=cfg.replace(seed=self.rank_seed), batcher=self.batcher, schedule=Schedule.linear(),
                       frozen=load_frozen(kind, cfg, dev),
                       adversary=build_adversary(kind, cfg, self.dd.world, dev, init=ck is None), device=dev,
                       channels_last=cfg.channels_last)
        if ck is not None and self.ctx.adversary is not None and ck.get("adversary") is not None:
            self.ctx.adversary.load_state_dict(ck["adversary"])
        if ck is not None:
            self.ctx.state = distributed.restore_loss_state(self.dd, ck)
        self.step_loss = distributed.loss_step(self.dd, self.model, LOSSES[kind], self.ctx, find_unused=kind == "se")

    # ------------------------------------------------------------ one step

    def _set_lr(self) -> float:
        """The schedule: this step's rate (training/lr_schedule.py) on every parameter group."""
        lr = learning_rate(self.cfg, self.step, self.base["iters"] + self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def _forward_backward(self) -> torch.Tensor:
        self.ctx.step = self.step
        self.model.train()
        with autocast(self.device.type, self.precision):
            loss = self.step_loss()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def _optimise(self) -> None:
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.opt.step()

    def _update_ema(self) -> None:
        """EMA of the weights with the warm-up decay min(ema, (1 + step) / (10 + step)); buffers copied."""
        if self.ema is None:
            return
        d = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(pm, 1 - d)
            for be, bm in zip(self.ema.buffers(), self.model.buffers()):
                be.copy_(bm)

    def run_step(self) -> tuple[float, float]:
        """One iteration; returns (the loss averaged over ranks, the rate it used)."""
        t0 = time.time()
        lr = self._set_lr()
        loss = self._forward_backward()
        self._optimise()
        self._update_ema()
        self.step += 1
        self.wall += time.time() - t0
        loss_mean, self.images_seen = distributed.step_stats(self.dd, loss, self.batcher.drawn)
        return loss_mean, lr

    # ------------------------------------------------------------ around the steps

    def save(self) -> None:
        """The checkpoint (`ckpt.pt`, atomic): every rank takes part, rank 0 writes."""
        ranks = distributed.rank_states(self.dd, self.batcher, self.ctx.state)
        if self.dd.main:
            adv = self.ctx.adversary
            save_torch_file({"step": self.step, "wall": self.wall, "images": self.images_seen, "base": self.base,
                             "model": self.model.state_dict(),
                             "ema": self.ema.state_dict() if self.ema is not None else None,
                             "opt": self.opt.state_dict(),
                             "batcher_rng": self.batcher.state(), "torch_rng": torch.get_rng_state(),
                             "adversary": adv.state_dict() if adv is not None else None,
                             "loss_state": self.ctx.state, "frozen": self.frozen_ids,
                             **({"ranks": ranks} if ranks else {})}, self.ckpt_path)

    def write_row(self, metrics: dict) -> None:
        """One learning-curve row of the validator's `metrics`: cumulative iterations / images / hours
        (shipped weights included), and a prior's sample grid."""
        base = self.base
        if self.validator.last_samples is not None:  # a prior's unconditional samples: a grid per evaluation
            from dynface.core.grid import save_grid

            (self.run_dir / "samples").mkdir(exist_ok=True)
            save_grid(self.validator.last_samples, self.run_dir / "samples" / f"{base['iters'] + self.step:07d}.jpg")
        append_row(self.curve_path, {"step": base["iters"] + self.step, "images": base["images"] + self.images_seen,
                                     "wall_h": round((base["wall_time_s"] + self.wall) / 3600, 3), **metrics})
        plot_curve(self.curve_path, self.run_dir / "curve.png", f"{self.kind}: {self.run_dir.name}")

    def _due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.cfg.iters

    def _open_log(self) -> None:
        """log.csv (rank 0; appended to on resume) and the progress bar."""
        self._log_f = open(self.run_dir / "log.csv" if self.dd.main else os.devnull, "a", newline="")
        self._log = csv.writer(self._log_f)
        if self._log_f.tell() == 0:
            self._log.writerow(["step", "loss", "lr", "sec_per_iter", "wall_s"])
        self._bar = tqdm(total=self.cfg.iters, initial=self.step, desc=f"train {self.kind}",
                         disable=not (self.progress and self.dd.main), unit="it")

    def log_step(self, loss: float, lr: float) -> None:
        """Count one iteration; every `log_every` a log.csv row: mean loss, rate, seconds per iteration."""
        self._running.append(loss)
        self._bar.update(1)
        if self._due(self.cfg.log_every):
            now = time.time()
            sec = (now - self._t_last) / max(1, len(self._running))
            mean = np.mean(self._running)
            self._log.writerow([self.step, f"{mean:.6f}", f"{lr:.3e}", f"{sec:.3f}", f"{self.wall:.0f}"])
            self._log_f.flush()
            self._bar.set_postfix(loss=f"{mean:.4f}")
            self._running, self._t_last = [], now

    def run(self) -> Path:
        """Train to `iters` (or until SIGTERM / SIGINT, after a checkpoint); returns the export's path.
        A stop during an evaluation drops that row; the resumed run takes it before training on."""
        cfg, dd = self.cfg, self.dd
        self._open_log()
        stop = _StopOnSignal()
        stopping = not self._evaluate_unless_stopped(stop, at_start=True)
        self._running, self._t_last = [], time.time()
        while (not stopping and self.step < cfg.iters
               and not (stopping := distributed.any_rank(dd, stop.requested))):
            self.log_step(*self.run_step())
            if cfg.refresh_data_every and self.step % cfg.refresh_data_every == 0:
                self.refresh_data()
            if (self.validator is not None and self._due(cfg.eval_every)
                    and not self._evaluate_unless_stopped(stop)):
                stopping = True
                break
            if self._due(cfg.ckpt_every):
                self.save()
        if stopping:
            self.save()  # SIGTERM / SIGINT: keep every finished iteration, then stop
        stop.restore()
        self._bar.close()
        self._log_f.close()
        out = export(self.kind, cfg, self.run_dir, device=self.device) if dd.main else self.run_dir / "final.safetensors"
        distributed.teardown(dd)
        return out

    def _evaluate_unless_stopped(self, stop: _StopOnSignal, at_start: bool = False) -> bool:
        """Take the curve row that is due (at the start: the starting point of a fresh curve, or the
        row a stop cut short); False where a stop request cut it (single-process runs only: under
        torchrun the other ranks wait for rank 0, which finishes the row)."""
        if self.validator is None or (at_start and not self._row_missing()):
            return True
        try:
            with stop.cutting(allowed=self.dd.world == 1):
                metrics = self.validator(self.ema if self.ema is not None else self.model)
        except EvaluationCut:
            print(f"step {self.base['iters'] + self.step}: evaluation cut short by a stop request; "
                  "the resumed run takes it first", flush=True)
            return False
        self.write_row(metrics)
        return True

    def _row_missing(self) -> bool:
        """No curve yet, or the checkpoint stands at an evaluation step whose row is not in it."""
        if not self.curve_path.exists():
            return True
        if self.step == 0 or not (self.cfg.eval_every and self._due(self.cfg.eval_every)):
            return False
        done = {int(float(r["step"])) for r in read_curve(self.curve_path) if r.get("step")}
        return self.base["iters"] + self.step not in done


def train(kind: str, cfg: TrainConfig | dict, run_dir=None, resume: bool = False, data=None, iters: int | None = None,
          threads: int | None = None, progress: bool = True, device="cpu") -> Path:
    """Train `kind` per `cfg` on `device` (cpu | cuda | cuda:N | mps | auto); returns the path of
    the exported final.safetensors."""
    return TrainLoop(kind, cfg, run_dir, resume=resume, data=data, iters=iters, threads=threads,
                     progress=progress, device=device).run()


def export(kind: str, cfg: TrainConfig | dict, run_dir, device=None) -> Path:
    """Export the EMA (else the model) of a run's checkpoint as fp16 safetensors (built on the CPU
    whatever the run trained on; a GPU that trained it is named in the record); a run with a
    critic also writes it to critic.safetensors (a later run's `gan: {init: ...}`)."""
    cfg = TrainConfig.of(cfg)
    run_dir = Path(run_dir)
    ck = load_torch_file(run_dir / "ckpt.pt")
    model = build_trainable(kind, cfg, init=False)
    model.load_state_dict(ck["ema"] if ck.get("ema") is not None else ck["model"])
    base = ck.get("base") or {"iters": 0, "images": 0, "wall_time_s": 0}
    record = {"iters": base["iters"] + int(ck["step"]), "images": base["images"] + int(ck.get("images", 0)),
              "wall_time_s": round(base["wall_time_s"] + float(ck.get("wall", 0.0))), "cpu": cpu_summary(),
              "run_iters": int(ck["step"]), "data": data_label(cfg), "config": cfg.to_dict()}
    if device is not None and torch.device(device).type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if ck.get("adversary") is not None:
        from dynface.training.adversarial import save_critic

        save_critic(ck["adversary"]["critic"], cfg.gan, run_dir / "critic.safetensors", record)
    if kind == "se":
        export_safetensors(model["tm"], run_dir / "tm.safetensors", "tm", cfg.arch["tm"], record)
        return export_safetensors(model["sde"], run_dir / "sde.safetensors", "sde", cfg.arch["sde"], record)
    return export_safetensors(model, run_dir / "final.safetensors", kind, cfg.arch, record)
