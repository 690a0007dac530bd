"""Noise-predicting UNet in the improved-/guided-diffusion layout.

The module tree (and so every state_dict key) follows that family's checkpoints:
`time_embed`, `input_blocks`, `middle_block`, `output_blocks`, `out`; ResBlocks with
`in_layers`/`emb_layers`/`out_layers`/`skip_connection`; AttentionBlocks with `norm`/`qkv`/
`proj_out`; `op` (strided conv) for Downsample and `conv` for Upsample. `num_res_blocks` may be
an int or one count per level (DifFace's variant). `attention_resolutions` are feature-map
sizes in pixels (e.g. 32, 16, 8), converted to downsample rates with `image_size`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    image_size: int = 128
    in_channels: int = 3
    model_channels: int = 64
    out_channels: int = 3
    num_res_blocks: int | list[int] = 2
    attention_resolutions: list[int] = field(default_factory=lambda: [16])
    dropout: float = 0.0
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2, 2])
    conv_resample: bool = True
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def blocks_per_level(self) -> list[int]:
        """`num_res_blocks` as one count per channel_mult level."""
        nrb = self.num_res_blocks
        return [int(nrb)] * len(self.channel_mult) if isinstance(nrb, int) else [int(n) for n in nrb]


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as in guided-diffusion)."""

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> nn.Module:
    return GroupNorm32(32 if channels % 32 == 0 else math.gcd(32, channels), channels)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        p.detach().zero_()
    return m


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding [cos, sin] of (possibly fractional) timesteps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepBlock(nn.Module):
    """A module whose forward takes the timestep embedding as a second argument."""


class TimestepEmbedSequential(nn.Sequential, TimestepBlock):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.use_conv = use_conv
        out_channels = out_channels or channels
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(2, 2)

    def forward(self, x):
        return self.op(x)


class ResBlock(TimestepBlock):
    def __init__(self, channels, emb_channels, dropout, out_channels=None, use_conv=False,
                 use_scale_shift_norm=False, up=False, down=False):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, self.out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels))
        self.out_layers = nn.Sequential(
            normalization(self.out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)))
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels not divisible by {num_head_channels} per head")
            self.num_heads = channels // num_head_channels
        self.new_order = use_new_attention_order
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        length = qkv.shape[-1]
        ch = c // self.num_heads
        if self.new_order:
            q, k, v = (t.reshape(b * self.num_heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * self.num_heads, ch * 3, length).split(ch, dim=1)
        # softmax(q^T k / sqrt(ch)) v, with the fused kernel
        h = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = h.transpose(1, 2).reshape(b, c, length)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class UNetModel(nn.Module):
    """ADM UNet. forward(x, t, cond=None): `cond` (B, Cc, H, W) is concatenated to x (SR3/IDM)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        nrb = cfg.blocks_per_level()
        if len(nrb) != len(cfg.channel_mult):
            raise ValueError("num_res_blocks needs one entry per channel_mult level")
        attn_ds = {cfg.image_size // int(r) for r in cfg.attention_resolutions}
        heads_up = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample
        mc = cfg.model_channels
        ted = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        ch = input_ch = int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        chans, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(nrb[level]):
                layers = [ResBlock(ch, ted, cfg.dropout, out_channels=int(mult * mc),
                                   use_scale_shift_norm=cfg.use_scale_shift_norm)]
                ch = int(mult * mc)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, cfg.use_new_attention_order))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = (ResBlock(ch, ted, cfg.dropout, out_channels=ch, use_scale_shift_norm=cfg.use_scale_shift_norm,
                                 down=True) if cfg.resblock_updown else Downsample(ch, cfg.conv_resample, ch))
                self.input_blocks.append(TimestepEmbedSequential(down))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, ted, cfg.dropout, use_scale_shift_norm=cfg.use_scale_shift_norm),
            AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels, cfg.use_new_attention_order),
            ResBlock(ch, ted, cfg.dropout, use_scale_shift_norm=cfg.use_scale_shift_norm))
        self.output_blocks = nn.ModuleList([])
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(nrb[level] + 1):
                ich = chans.pop()
                layers = [ResBlock(ch + ich, ted, cfg.dropout, out_channels=int(mc * mult),
                                   use_scale_shift_norm=cfg.use_scale_shift_norm)]
                ch = int(mc * mult)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, heads_up, cfg.num_head_channels, cfg.use_new_attention_order))
                if level and i == nrb[level]:
                    layers.append(ResBlock(ch, ted, cfg.dropout, out_channels=ch,
                                           use_scale_shift_norm=cfg.use_scale_shift_norm, up=True)
                                  if cfg.resblock_updown else Upsample(ch, cfg.conv_resample, ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(input_ch, cfg.out_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(x.dtype))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h).type(x.dtype)
