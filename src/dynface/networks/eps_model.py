"""eps_theta wrappers around the UNet: the unconditional face prior and IDM's conditional restorer.

`coord_channels` appends two channels of image coordinates in [-1, 1] (Patch Diffusion, Wang et
al. 2023): the prior is trained on random patches that know where they lie in the face, and at
sampling time sees the full grid. `cond_channels` is the SR3/IDM condition (the degraded face).
If the UNet learns its variance (learn_sigma, 2*3 output channels) the second half is returned
as `v` for `schedule.learned_log_variance`.

`prediction` says what the UNet's output means. "eps" (DDPM, guided-diffusion) is returned as it
is. "x0_residual" (our IDM default) reads it as a correction of the condition,
x0_hat = cond + out, and returns the equivalent eps (the inverse of Eq. 3), so every sampler
sees an eps model. A zero-initialised output layer then starts as "return the degraded face"
instead of noise, which is what lets a small conditional model train in CPU hours.
"v" (Salimans & Ho 2022, progressive distillation §4) reads it as v = sqrt(abar) eps -
sqrt(1 - abar) x0 and returns eps = sqrt(abar) v + sqrt(1 - abar) x_t (`core/schedule.py`).
Our UNet's GroupNorm has one channel per group at its top level, so it cannot see the per-channel
mean of x_t; an eps model then leaves the colour of x0_hat = (x_t - sqrt(1-abar) eps)/sqrt(abar)
to the noise's mean times 1/sqrt(abar) (x158 at t = T-1): unconditional samples come out as
saturated single-hue faces. A v model passes x_t's mean through exactly, and its x0_hat at the
noisiest steps is -v, a bounded output (docs/training.md, "Prediction target").
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dynface.core.schedule import Schedule, eps_from_v, eps_from_x0
from dynface.networks.unet import UNetConfig, UNetModel

PREDICTIONS = ("eps", "x0_residual", "v")


def coord_grid(size: int, batch: int = 1, top: int = 0, left: int = 0, patch: int | None = None,
               device=None) -> torch.Tensor:
    """(batch, 2, patch, patch) pixel-centre coordinates of a patch inside a size x size image."""
    patch = patch or size
    ax = (torch.arange(size, dtype=torch.float32, device=device) * 2 + 1) / size - 1
    ys, xs = ax[top:top + patch], ax[left:left + patch]
    g = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=0)
    return g[None].expand(batch, -1, -1, -1)


class EpsModel(nn.Module):
    def __init__(self, unet: UNetConfig | dict, coord_channels: bool = False, cond_channels: int = 0,
                 image_channels: int = 3, prediction: str = "eps"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {prediction!r}")
        if prediction == "x0_residual" and not cond_channels:
            raise ValueError("prediction 'x0_residual' needs a condition image (cond_channels > 0)")
        cfg = unet if isinstance(unet, UNetConfig) else UNetConfig(**unet)
        extra = (2 if coord_channels else 0) + cond_channels
        if cfg.in_channels != image_channels + extra:
            raise ValueError(f"UNet in_channels {cfg.in_channels} != {image_channels} + {extra} extra channels")
        self.unet = UNetModel(cfg)
        self.coord_channels = coord_channels
        self.cond_channels = cond_channels
        self.image_channels = image_channels
        self.learn_sigma = cfg.out_channels == 2 * image_channels
        self.prediction = prediction
        # x0 <-> eps conversion uses the training schedule (linear, 1000 steps); not saved.
        self.register_buffer("abar", Schedule.linear().alphas_cumprod.float(), persistent=False)

    @property
    def image_size(self) -> int:
        return self.unet.config.image_size

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                coords: torch.Tensor | None = None):
        """Return (eps, v): v is None unless the UNet learns its variance."""
        out, v = self._unet_out(x, t, cond, coords)
        if self.prediction == "eps":
            return out, v
        if self.prediction == "v":
            return eps_from_v(x.float(), out.float(), self.abar[t.long()]), v
        x0 = cond.float() + out.float()
        return eps_from_x0(x.float(), x0, self.abar[t.long()]), v

    def predict_x0(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                   coords: torch.Tensor | None = None) -> torch.Tensor:
        """x0_hat directly (no round trip through eps); for x0-parameterised models only."""
        if self.prediction != "x0_residual":
            raise ValueError("predict_x0 is for prediction='x0_residual' models")
        out, _ = self._unet_out(x, t, cond, coords)
        return cond.float() + out.float()

    def unet_output(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                    coords: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's own output (what `prediction` names), before any conversion to eps."""
        return self._unet_out(x, t, cond, coords)[0]

    def _unet_out(self, x, t, cond, coords):
        extra = []
        if self.coord_channels:
            extra.append(coords if coords is not None else coord_grid(x.shape[-1], x.shape[0], device=x.device).to(x.dtype))
        if self.cond_channels:
            if cond is None:
                raise ValueError("this model needs a condition image")
            extra.append(cond.to(x.dtype))
        out = self.unet(x, t, torch.cat(extra, 1) if extra else None)
        if self.learn_sigma:
            return out[:, : self.image_channels], out[:, self.image_channels:]
        return out, None
