"""Dynamic Guidance Scaling Adjuster (paper Eq. 12-14, supplement Tab. 5).

M_t = DGSA(y_g, x0_hat, t) in [0, 1]^{3 x H x W}: concat (6 ch) -> conv3x3 6-64, ELU ->
conv3x3 64-64, ELU -> conv3x3 64-3 -> clamp to [0, 1] ("ReLU-1"). A timestep embedding is added
to both hidden feature maps. The output bias starts at 0.9, so an untrained DGSA is close to
M = 1 (plain guidance).

In training the clamp passes its gradient straight through (its values are the same): a hard
clamp has no gradient where it clips, and a map trained with it saturates (M = 1 on every pixel
at large t, M = 0 on nearly all at t = 0) where no loss can move it any more.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from dynface.networks.unet import timestep_embedding


class DGSA(nn.Module):
    def __init__(self, width: int = 64, temb: int = 64, num_steps: int = 1000):
        super().__init__()
        self.temb = temb
        self.num_steps = num_steps
        self.conv1 = nn.Conv2d(6, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, 3, 3, padding=1)
        self.t1 = nn.Linear(temb, width)
        self.t2 = nn.Linear(temb, width)
        self.act = nn.ELU()
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.constant_(self.conv3.bias, 0.9)

    def forward(self, y_g: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=y_g.device).reshape(-1).expand(y_g.shape[0])
        e = timestep_embedding(t, self.temb).to(y_g.dtype)
        h = self.act(self.conv1(torch.cat([y_g, x0], 1)) + self.t1(e)[..., None, None])
        h = self.act(self.conv2(h) + self.t2(e)[..., None, None])
        m = self.conv3(h)
        if self.training and torch.is_grad_enabled():  # straight-through clamp: same values, live gradient
            return m.clamp(0.0, 1.0).detach() + (m - m.detach())
        return m.clamp(0.0, 1.0)
