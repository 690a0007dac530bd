"""A network as the sampling chain sees it: (x_t, t) -> (eps, v), under autocast, with an optional
condition (the IDM's degraded face), counting its evaluations and seconds in a `SampleStats`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from dynface.core.hardware import autocast

STAGES = ("unet_forward", "backward", "dgsa", "other")


@dataclass
class SampleStats:
    """Per-stage seconds and network evaluations. The wrappers fill unet_forward (Denoiser),
    backward and dgsa (GuidedModel); `finish` books the rest of a chain's time as other."""

    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    nfe: int = 0

    def finish(self, elapsed: float) -> None:
        """other = elapsed (wall time of every chain so far) - the measured stages."""
        self.seconds["other"] = elapsed - sum(v for k, v in self.seconds.items() if k != "other")


class Denoiser:
    """net(x_t, t[, cond=cond]) under the autocast of a resolved `precision` (fp32 | fp16 | bf16,
    core/hardware.py), eps returned as float32. Grad mode is the caller's (GuidedModel differentiates)."""

    def __init__(self, net, precision: str = "fp32", cond: torch.Tensor | None = None,
                 stats: SampleStats | None = None):
        self.net, self.precision, self.cond = net, precision, cond
        self.stats = stats if stats is not None else SampleStats()

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        t0 = time.perf_counter()
        with autocast(x.device.type, self.precision):
            eps, v = self.net(x, t) if self.cond is None else self.net(x, t, cond=self.cond)
        eps = eps.float()
        self.stats.seconds["unet_forward"] += time.perf_counter() - t0
        self.stats.nfe += 1
        return eps, v
