"""Build each network of the method from its architecture dict (stored in every checkpoint)."""
from __future__ import annotations

import torch.nn as nn


def build_network(kind: str, arch: dict) -> nn.Module:
    """kind: prior | idm (EpsModel), rm | tm (SwinIR, or ResUNet with arch type "resunet"), sde, dgsa,
    up (FaceUpsampler)."""
    arch = dict(arch)
    if kind in ("prior", "idm"):
        from dynface.networks.eps_model import EpsModel

        return EpsModel(arch.pop("unet"), **arch)
    if kind in ("rm", "tm"):
        net_type = arch.pop("type", "swinir")
        if net_type == "resunet":
            from dynface.networks.restorer import ResUNet, ResUNetConfig

            return ResUNet(ResUNetConfig(**arch))
        from dynface.networks.swinir import SwinIR, SwinIRConfig

        return SwinIR(SwinIRConfig(**arch))
    if kind == "sde":
        from dynface.networks.sde import SDE

        return SDE(**arch)
    if kind == "dgsa":
        from dynface.networks.dgsa import DGSA

        return DGSA(**arch)
    if kind == "up":
        from dynface.networks.upsampler import FaceUpsampler, UpsamplerConfig

        return FaceUpsampler(UpsamplerConfig(**arch))
    raise ValueError(f"unknown network kind {kind!r}")


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
