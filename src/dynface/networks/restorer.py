"""A compact convolutional U-Net restorer for the CPU-trained embedded models (RM and TM).

The paper uses SwinIR for RM and TM; windowed attention trains ~5x slower than convolutions on
this 2-core CPU (measured: 7.3 s vs ~1.3 s per batch of 8 at 128^2), so the embedded default uses
this network and `networks/swinir.py` stays available (DifFace's SwinIR for official weights, or a
small SwinIR via the training config). Encoder-decoder with residual blocks for a receptive field
that covers the strongest blurs, and a global residual: out = y + f(y), in [-1, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ResUNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    blocks: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(self.act(x))))


class ResUNet(nn.Module):
    def __init__(self, config: ResUNetConfig | None = None, **kwargs):
        super().__init__()
        self.config = cfg = config or ResUNetConfig(**kwargs)
        ch = cfg.channels
        self.head = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.enc = nn.ModuleList([nn.Sequential(*[ResBlock(c) for _ in range(cfg.blocks)]) for c in ch])
        self.down = nn.ModuleList([nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1) for i in range(len(ch) - 1)])
        self.up = nn.ModuleList([nn.Conv2d(ch[i + 1], ch[i], 3, padding=1) for i in range(len(ch) - 1)])
        self.fuse = nn.ModuleList([nn.Conv2d(2 * ch[i], ch[i], 1) for i in range(len(ch) - 1)])
        self.dec = nn.ModuleList([nn.Sequential(*[ResBlock(ch[i]) for _ in range(cfg.blocks)]) for i in range(len(ch) - 1)])
        self.tail = nn.Conv2d(ch[0], cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.config.channels) - 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(y, (0, pw, 0, ph), mode="reflect") if ph or pw else y
        f = self.head(x)
        skips = []
        for i, enc in enumerate(self.enc):
            f = enc(f)
            if i < len(self.down):
                skips.append(f)
                f = self.down[i](f)
        for i in reversed(range(len(self.up))):
            f = self.up[i](F.interpolate(f, scale_factor=2, mode="nearest"))
            f = self.dec[i](self.fuse[i](torch.cat([f, skips[i]], 1)))
        out = x + self.tail(f)
        return out[..., :h, :w]
