"""One training step's context and inputs: the batch context, degraded batches and random patches."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.schedule import Schedule
from dynface.training.config import TrainConfig
from dynface.training.data import Batcher


@dataclass
class Ctx:
    """What a loss function sees: config, batcher, schedule, frozen helper networks, step, the
    critic of an adversarial loss (None without one), the device the networks live on and the
    loss's own state between steps (DGSA's running chains).

    Batches, degradations and every random draw are made on the CPU (the batcher's generator and
    torch's CPU stream, both in the checkpoint), then moved with `on_device`: a run is the same on
    every device up to arithmetic, and a checkpoint resumes on another device."""

    cfg: TrainConfig
    batcher: Batcher
    schedule: Schedule
    frozen: dict = field(default_factory=dict)
    step: int = 0
    adversary: object = None       # training/adversarial.Adversary when the config has `gan:`
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False    # config `channels_last`: 4-D inputs in NHWC (the layout oneDNN convolves fastest)
    state: dict = field(default_factory=dict)  # what a loss carries from step to step (CPU tensors; checkpointed)

    def __post_init__(self):
        self.cfg = TrainConfig.of(self.cfg)

    def on_device(self, *tensors):
        """The tensors moved to the networks' device (None stays None; a no-op on the CPU), 4-D
        ones in channels_last when the run trains in that layout (values unchanged)."""
        return tuple(None if t is None else self._to(t) for t in tensors)

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        if self.channels_last and t.dim() == 4:
            return t.to(self.device, memory_format=torch.channels_last)
        return t.to(self.device)


def degrade_batch(x: torch.Tensor, cfg: TrainConfig | dict, step: int) -> torch.Tensor:
    """Degrade a batch with seeds derived from (config seed, step, index): repeatable on resume."""
    cfg = TrainConfig.of(cfg)
    dcfg = DegradationConfig.from_dict(cfg.degradation)
    seed = cfg.seed
    ys = [degrade_random(x[i:i + 1], dcfg, seed * 1_000_003 + step, i)[0] for i in range(x.shape[0])]
    return torch.cat(ys)


def pick_patch(ctx: Ctx) -> tuple[int, int]:
    """(patch size, batch) for this step: Patch Diffusion draws a size by `patch.probs` and scales
    the batch by (smallest/p)^2 so every step costs about the same."""
    cfg, size = ctx.cfg, ctx.cfg.size
    patch = cfg.patch or {"sizes": [size], "probs": [1.0]}
    u, acc, p = ctx.batcher.rand(), 0.0, patch["sizes"][-1]
    for s, pr in zip(patch["sizes"], patch["probs"]):
        acc += pr
        if u < acc:
            p = s
            break
    return p, max(1, int(cfg.batch * (min(patch["sizes"]) / p) ** 2))


def crop_patch(ctx: Ctx, p: int, *images: torch.Tensor):
    """The same random p x p window of each image, and its coordinate channels (None if p = size).
    Where the batcher drew from windowed sources (`Batcher.last_windows`), each image's window is
    cut at its own random place inside its source's window, with its own coordinates."""
    from dynface.networks.eps_model import coord_grid

    size, b = images[0].shape[-1], images[0].shape[0]
    if p >= size:
        return images, None
    wins = ctx.batcher.last_windows
    if wins is None:
        top, left = ctx.batcher.randint(0, size - p + 1), ctx.batcher.randint(0, size - p + 1)
        return tuple(im[..., top:top + p, left:left + p] for im in images), coord_grid(size, b, top, left, p)
    places = []
    for wt, wl, side in wins.tolist():
        if side < p:
            raise ValueError(f"a {p}-pixel patch does not fit in a {side}-pixel window")
        places.append((wt + ctx.batcher.randint(0, side - p + 1), wl + ctx.batcher.randint(0, side - p + 1)))
    crops = tuple(torch.stack([im[i, ..., t:t + p, l:l + p] for i, (t, l) in enumerate(places)]) for im in images)
    return crops, torch.cat([coord_grid(size, 1, t, l, p) for t, l in places])


def crop_scaled(ctx: Ctx, p: int, big: torch.Tensor, small: torch.Tensor):
    """The same random window of an image (p x p) and of its smaller version (p/s x p/s, where
    s = big size / small size), on the small image's pixel grid so both hold the same content."""
    s = big.shape[-1] // small.shape[-1]
    q, size = p // s, small.shape[-1]
    if q >= size:
        return big, small
    top, left = ctx.batcher.randint(0, size - q + 1), ctx.batcher.randint(0, size - q + 1)
    return big[..., s * top:s * (top + q), s * left:s * (left + q)], small[..., top:top + q, left:left + q]
