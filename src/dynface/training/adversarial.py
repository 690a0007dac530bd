"""An adversarial loss for the restorer: a small PatchGAN critic trained beside it.

L1 alone regresses to the blurry mean of the faces a degraded input could come from; a critic that
scores every ~30x30 patch as real or restored (pix2pix's PatchGAN, Isola et al. 2017) penalises
that blur. Hinge losses (Lim & Ye 2017; as in SAGAN/BigGAN) with spectral normalisation (Miyato
et al. 2018) keep a critic this small stable without tuning:

    critic:    L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(y)))]
    generator: L_adv = -E[D(G(y))]

`Adversary` owns the critic and its optimiser, so the training loop only checkpoints its
`state_dict()`; its critic step runs inside the restorer's loss on the detached output, and so
never touches the restorer's gradients.

A critic that starts from scratch pulls a trained restorer's detail down for ~1,000 iterations
while it learns (the "restart dip" of every new machine, docs/history/training-log.md), so a run can start its
critic from a saved one: `gan: {init: PATH}` (a `save_critic` file, fp16 safetensors).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

GAN_DEFAULTS = {"weight": 0.01, "channels": 32, "layers": 3, "lr": 2.0e-4, "start": 0, "init": None}


def patch_critic(channels: int = 32, layers: int = 3) -> nn.Module:
    """PatchGAN: `layers` stride-2 4x4 convs (channels doubling, capped at 8x), a stride-1 4x4 conv,
    then a 1-channel score map; receptive field 34 px for 3 layers. Spectral norm on every conv."""
    mods, c_in, c = [], 3, channels
    for i in range(layers):
        mods += [spectral_norm(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        c_in, c = c, min(c * 2, channels * 8)
    mods += [spectral_norm(nn.Conv2d(c_in, c, 4, 1, 1)), nn.LeakyReLU(0.2, inplace=True),
             spectral_norm(nn.Conv2d(c, 1, 4, 1, 1))]
    return nn.Sequential(*mods)


def critic_arch(cfg: dict | None) -> dict:
    """The critic's shape from a `gan:` config (defaults filled in): what a saved critic must match."""
    cfg = {**GAN_DEFAULTS, **(cfg if isinstance(cfg, dict) else {})}  # `gan: true`: the defaults
    return {"channels": int(cfg["channels"]), "layers": int(cfg["layers"])}


def save_critic(state: dict, cfg: dict | None, path, extra: dict | None = None) -> Path:
    """Write a critic's state_dict (an Adversary checkpoint's "critic") as fp16 safetensors of kind
    `critic`, with its arch in the metadata."""
    from dynface.modelset.checkpoint import export_safetensors

    arch = critic_arch(cfg)
    critic = patch_critic(**arch)
    critic.load_state_dict(state)
    return export_safetensors(critic, path, "critic", arch, extra)


def load_critic(critic: nn.Module, cfg: dict | None, path) -> None:
    """Load a `save_critic` file into `critic` (float32); ValueError when it holds another shape."""
    from dynface.modelset.checkpoint import read_metadata
    from dynface.modelset.weights import load_model_safetensors

    meta, arch = read_metadata(path), critic_arch(cfg)
    if meta.get("kind") != "critic" or meta.get("arch") != arch:
        raise ValueError(f"{path}: not a critic of this run's shape {arch} "
                         f"(it holds {meta.get('kind')!r} {meta.get('arch')})")
    load_model_safetensors(critic, path)


class Adversary:
    """The critic, its AdamW (betas 0.5, 0.999) and its hinge losses; `weight` scales L_adv."""

    def __init__(self, cfg: dict | None = None, device="cpu"):
        cfg = {**GAN_DEFAULTS, **(cfg or {})}
        self.weight, self.start = float(cfg["weight"]), int(cfg["start"])
        self.critic = patch_critic(int(cfg["channels"]), int(cfg["layers"])).to(device)
        self.opt = torch.optim.AdamW(self.critic.parameters(), lr=float(cfg["lr"]), betas=(0.5, 0.999),
                                     weight_decay=0.0)
        self.last = {"d_loss": float("nan"), "g_adv": float("nan")}

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """-E[D(G(y))] with the critic frozen (gradients flow to the restorer only)."""
        self.critic.requires_grad_(False)
        try:
            loss = -self.critic(fake.float()).mean()
        finally:
            self.critic.requires_grad_(True)
        self.last["g_adv"] = float(loss.detach())
        return loss

    def critic_step(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        """One hinge step of the critic on a real and a (detached) restored batch; returns L_D."""
        with torch.enable_grad():
            self.critic.train()
            d_real, d_fake = self.critic(real.float()), self.critic(fake.detach().float())
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.last["d_loss"] = float(loss.detach())
        return float(loss.detach())

    def state_dict(self) -> dict:
        return {"critic": self.critic.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
