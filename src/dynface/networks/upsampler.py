"""The face upsampler: a learned x4 stage from the restored face at the working size to the output size.

The model set restores faces at a small working size (128 px, docs/speed/working-size.md), and a
perfect 128 px face enlarged bicubically keeps only ~17 % of the fine detail of the real 512 px face.
This network enlarges the restored face instead, adding the hair strands, pores and eyelashes that
a face of its kind has at the output size (trained on sharp 512 px faces downsampled by 4, with an
adversarial term so it draws detail rather than the blurry mean: training/losses.py `loss_up`).

Residual design (as ESPCN/EDSR-style super-resolution networks): residual blocks at the input size,
two x2 sub-pixel (pixel-shuffle) stages, and the output is bicubic(x) + f(x) with the last conv
zeroed at construction, so an untrained network is bicubic enlargement. With `project` (the
default) one back-projection step follows, out += bicubic(x - shrink(out)): the output shrunk back
to the input's size is the input, up to the bicubic pair's own error, so the network adds detail
above the input's resolution and leaves what the restoration decided (shape, colour, the
restoration's own detail at 128 px) as it is. Cost grows with the input size only (every layer but
the last two runs at the input size).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from dynface.core.imageio import resize
from dynface.networks.restorer import ResBlock


@dataclass
class UpsamplerConfig:
    channels: int = 48       # feature width at the input size
    blocks: int = 8          # residual blocks at the input size
    scale: int = 4           # 2 or 4: one x2 sub-pixel stage per factor of 2
    project: bool = True     # one back-projection step: shrink(out) = the input (module docstring)

    def __post_init__(self):
        if self.scale not in (2, 4):
            raise ValueError(f"upsampler scale must be 2 or 4, got {self.scale}")

    def to_dict(self) -> dict:
        return asdict(self)


class FaceUpsampler(nn.Module):
    """(B, 3, s, s) in [-1, 1] -> (B, 3, scale*s, scale*s): bicubic enlargement plus learned detail."""

    def __init__(self, config: UpsamplerConfig | None = None, **kwargs):
        super().__init__()
        self.config = cfg = config or UpsamplerConfig(**kwargs)
        c = cfg.channels
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(cfg.blocks)], nn.Conv2d(c, c, 3, padding=1))
        stages, c_in = [], c
        for _ in range(cfg.scale // 2):  # x2 each: conv to 4 c_out, pixel shuffle, halve the width
            c_out = max(16, c_in // 2)
            stages += [nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2), nn.SiLU()]
            c_in = c_out
        self.up = nn.Sequential(*stages)
        self.tail = nn.Conv2d(c_in, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, big = tuple(x.shape[-2:]), (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        f = self.head(x)
        f = f + self.body(f)
        out = resize(x.float(), big) + self.tail(self.up(f)).float()
        if self.config.project:
            out = out + resize(x.float() - resize(out, size), big)
        return out
