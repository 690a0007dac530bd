"""The learning rate of each training iteration: a linear warm-up, then constant, with an optional
cosine decay over the run or a late anneal (the last fraction of a dB a constant rate leaves on
the table).

Config keys (a training config, e.g. campaign/rm_deep.yaml):
    lr: 2.0e-4                 # the peak rate
    warmup: 200                # linear ramp over the first run steps (of this run directory)
    cosine: true               # 1 -> 0 over the run's `iters` (a run trained in one go)
    anneal: {start: 15404, steps: 3000, final: 0.05}
        # cosine from 1 down to `final` between the cumulative iterations `start` and
        # `start + steps`, `final` after: the weights' whole history, as curves and manifests
        # count it, so an anneal forked from a long run says where it begins in that run's terms
"""
from __future__ import annotations

import math

from dynface.training.config import TrainConfig


def learning_rate(cfg: TrainConfig | dict, step: int, cumulative: int) -> float:
    """The rate at run step `step` (0-based, this run directory's) whose weights have
    `cumulative` iterations behind them (shipped ones included)."""
    cfg = TrainConfig.of(cfg)
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    if cfg.cosine:
        lr *= 0.5 * (1 + math.cos(math.pi * step / cfg.iters))
    if cfg.anneal:
        a = cfg.anneal
        start, steps, final = int(a["start"]), int(a["steps"]), float(a["final"])
        if not 0.0 <= final <= 1.0 or steps <= 0:
            raise ValueError(f"anneal needs steps > 0 and 0 <= final <= 1, got {a}")
        frac = min(1.0, max(0.0, (cumulative - start) / steps))
        lr *= final + (1.0 - final) * 0.5 * (1 + math.cos(math.pi * frac))
    return lr
