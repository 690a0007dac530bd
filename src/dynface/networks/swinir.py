"""SwinIR image restorer (Liang et al., ICCV-W 2021) with DifFace's pixel-unshuffle front end.

The module tree -- and so every ``state_dict`` key and shape -- follows the public SwinIR
checkpoints (JingyunLiang/SwinIR ``models/network_swinir.py``) and DifFace's face restorer
(zsyOAOA/DifFace ``models/swinir.py``, file ``swinir_restoration512_L1.pth``):

    conv_first[.1]                       3x3 conv (``conv_first.1`` when a PixelUnshuffle precedes it)
    patch_embed.norm                     LayerNorm on the tokens
    layers.N.residual_group.blocks.M.    norm1, attn.relative_position_bias_table,
                                         attn.relative_position_index (persistent buffer),
                                         attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2,
                                         attn_mask (persistent buffer, shifted blocks only)
    layers.N.conv                        RSTB's closing conv ("1conv"; "3conv" -> conv.0/.2/.4)
    norm, conv_after_body
    conv_before_upsample.0, conv_up1[,2,3], conv_hr, conv_last        ("nearest+conv")
    conv_before_upsample.0, upsample.K, conv_last                    ("pixelshuffle")
    upsample.0                                                        ("pixelshuffledirect")
    conv_last                                                         ("" = same-size residual)

As in the public code, the buffers ``relative_position_index`` and ``attn_mask`` are stored in
the checkpoints; ``attn_mask`` is sized for the nominal token grid ``img_size`` and recomputed
on the fly for any other size. The RGB mean is *not* stored (a plain attribute upstream; a
non-persistent buffer here).

Value range. The network core works exactly like the public code on [0, 1] images: it
subtracts ``rgb_mean`` (DIV2K mean), multiplies by ``img_range`` and undoes both at the end
(DifFace feeds its SwinIR [0, 1] images and clamps the output to [0, 1]). ``io_range`` says
what the caller passes in and gets back: ``"-1,1"`` (default, dynface's pipeline convention:
the input is mapped to [0, 1] first and the output mapped back to [-1, 1]) or ``"0,1"`` (the
official behaviour, used by the DifFace preset). Outputs are not clamped.

Sizes. With ``unshuffle_scale = s`` the image is pixel-unshuffled by ``s`` (3 -> 3*s*s channels,
H/s x W/s tokens), as DifFace does (it unshuffles the 512^2 input by 8 to 64^2 x 192 inside
``conv_first``). The upsampler then enlarges the token grid by ``upscale``; with
``upscale == unshuffle_scale`` the output has the input's size. Any input size works: the
input is reflect-padded on the bottom/right to a multiple of ``s * window_size`` (replicate
padding where the image is too small to reflect) and the output cropped back to
``round(H * upscale / s) x round(W * upscale / s)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _grad_checkpoint

__all__ = ["SwinIRConfig", "SwinIR", "embedded_swinir_config"]

_IO_RANGES = ("-1,1", "0,1")
_UPSAMPLERS = ("nearest+conv", "pixelshuffle", "pixelshuffledirect", "")


@dataclass
class SwinIRConfig:
    """Hyper-parameters of :class:`SwinIR` (names follow the public constructor where they exist).

    ``img_size`` is the nominal *token* grid (after pixel-unshuffle): DifFace uses 64 for its
    512^2 faces (512 / 8). It only sets the shape of the stored ``attn_mask`` buffers (and, as
    upstream, shrinks the window when ``img_size <= window_size``); other sizes run fine.
    ``unshuffle_scale <= 1`` means no pixel-unshuffle (classic SwinIR, key ``conv_first.weight``).
    """

    in_chans: int = 3
    embed_dim: int = 60
    depths: list[int] = field(default_factory=lambda: [4, 4, 4, 4])
    num_heads: list[int] = field(default_factory=lambda: [6, 6, 6, 6])
    window_size: int = 8
    mlp_ratio: float = 2.0
    img_size: int = 32
    unshuffle_scale: int = 4
    upscale: int = 4
    upsampler: str = "nearest+conv"
    resi_connection: str = "1conv"
    num_feat: int = 64
    img_range: float = 1.0
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
    io_range: str = "-1,1"
    qkv_bias: bool = True
    patch_norm: bool = True
    drop_path_rate: float = 0.0
    use_checkpoint: bool = False

    def __post_init__(self) -> None:
        self.depths = [int(d) for d in self.depths]
        self.num_heads = [int(h) for h in self.num_heads]
        self.rgb_mean = tuple(float(m) for m in self.rgb_mean)
        if len(self.depths) != len(self.num_heads):
            raise ValueError("depths and num_heads need one entry per residual group")
        for h in self.num_heads:
            if self.embed_dim % h:
                raise ValueError(f"embed_dim {self.embed_dim} is not divisible by {h} heads")
        if self.io_range not in _IO_RANGES:
            raise ValueError(f"io_range must be one of {_IO_RANGES}, got {self.io_range!r}")
        if self.upsampler not in _UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {_UPSAMPLERS}, got {self.upsampler!r}")
        if self.resi_connection not in ("1conv", "3conv"):
            raise ValueError(f"resi_connection must be '1conv' or '3conv', got {self.resi_connection!r}")
        if self.upsampler == "nearest+conv" and self.upscale not in (2, 4, 8):
            raise ValueError("the 'nearest+conv' upsampler supports upscale 2, 4 or 8")
        if self.upsampler == "" and self.unshuffle_scale > 1:
            raise ValueError("upsampler '' (same-size residual) cannot be combined with pixel-unshuffle")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rgb_mean"] = list(self.rgb_mean)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SwinIRConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SwinIRConfig field(s): {sorted(unknown)}")
        return cls(**d)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this many pixels."""
        return max(self.unshuffle_scale, 1) * self.window_size

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        s = max(self.unshuffle_scale, 1)
        up = self.upscale if self.upsampler else 1
        return round(h * up / s), round(w * up / s)


def embedded_swinir_config(image_size: int = 128, embed_dim: int = 60, depths=(4, 4, 4, 4),
                           num_heads: int = 6, unshuffle_scale: int = 4, window_size: int = 8,
                           **overrides) -> SwinIRConfig:
    """Small CPU restorer: [-1,1] -> [-1,1], output size == input size (upscale == unshuffle)."""
    depths = list(depths)
    cfg = dict(embed_dim=embed_dim, depths=depths, num_heads=[num_heads] * len(depths),
               window_size=window_size, img_size=max(image_size // unshuffle_scale, 1),
               unshuffle_scale=unshuffle_scale, upscale=unshuffle_scale, upsampler="nearest+conv",
               io_range="-1,1")
    cfg.update(overrides)
    return SwinIRConfig(**cfg)


# ----------------------------------------------------------------------------------- helpers
def _relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into the (2ws-1)^2 relative-position table (row-major offsets)."""
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + ws - 1) * (2 * ws - 1) + (rel[1] + ws - 1)


def _shift_mask(h: int, w: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """(nW, ws*ws, ws*ws) additive mask for shifted windows: 0 inside a region, -100 across."""
    region = torch.zeros(h, w, device=device)
    label = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            region[hs, wsl] = label
            label += 1
    win = region.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))


def _to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _from_windows(x: torch.Tensor, ws: int, b: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample); identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # persistent, as in the public code (the released checkpoints contain it)
        self.register_buffer("relative_position_index", _relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        n = self.window_size * self.window_size
        idx = self.relative_position_index.reshape(-1).long()
        return self.relative_position_bias_table[idx].view(n, n, -1).permute(2, 0, 1)  # nH, N, N

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B*nW, N, C) windows of one or more images; mask: (nW, N, N) additive or None."""
        bw, n, c = x.shape
        nh = self.num_heads
        q, k, v = self.qkv(x).view(bw, n, 3, nh, c // nh).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias().unsqueeze(0)  # 1, nH, N, N
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias + mask.unsqueeze(1).to(bias.dtype))  # nW, nH, N, N
            bias = bias.unsqueeze(0).expand(bw // nw, nw, nh, n, n).reshape(bw, nh, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, window_size, shift_size, mlp_ratio,
                 qkv_bias=True, drop_path=0.0):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:  # as upstream: one window, no shift
            self.window_size, self.shift_size = min(self.input_resolution), 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if self.shift_size > 0:
            h, w = self.input_resolution
            self.register_buffer("attn_mask", _shift_mask(h, w, self.window_size, self.shift_size))
        else:
            self.attn_mask = None

    def mask_for(self, h: int, w: int, device) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None
        if (h, w) == self.input_resolution:
            return self.attn_mask
        return _shift_mask(h, w, self.window_size, self.shift_size, device=device)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], mask: torch.Tensor | None) -> torch.Tensor:
        h, w = hw
        b, length, c = x.shape
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(_to_windows(y, ws), mask)
        y = _from_windows(y, ws, b, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, length, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                 drop_path, use_checkpoint=False):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias, drop_path[i])
            for i in range(depth)])

    def forward(self, x, hw, masks):
        for blk in self.blocks:
            mask = masks.get((blk.window_size, blk.shift_size)) if blk.shift_size else None
            if mask is None and blk.shift_size:
                mask = blk.mask_for(hw[0], hw[1], x.device)
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = _grad_checkpoint(blk, x, hw, mask, use_reentrant=False)
            else:
                x = blk(x, hw, mask)
        return x


def _tokens_to_image(x: torch.Tensor, hw) -> torch.Tensor:
    b, _, c = x.shape
    return x.transpose(1, 2).reshape(b, c, hw[0], hw[1])


def _image_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(dim // 4, dim, 3, 1, 1))


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin blocks, a conv, and a skip around both."""

    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                 drop_path, resi_connection, use_checkpoint=False):
        super().__init__()
        self.residual_group = BasicLayer(dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                                         qkv_bias, drop_path, use_checkpoint)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x, hw, masks):
        y = self.residual_group(x, hw, masks)
        return _image_to_tokens(self.conv(_tokens_to_image(y, hw))) + x


class _PatchEmbed(nn.Module):
    """Flattens the feature map to tokens (patch size 1) and applies the optional LayerNorm."""

    def __init__(self, dim: int, norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x):
        x = _image_to_tokens(x)
        return self.norm(x) if self.norm is not None else x


class SwinIR(nn.Module):
    """SwinIR restorer. ``forward(x)``: (B, C, H, W) in ``config.io_range`` -> (B, C, H', W') in
    the same range, with (H', W') = ``config.output_size(H, W)`` (== (H, W) when
    ``upscale == unshuffle_scale``, as in DifFace and the embedded configs)."""

    def __init__(self, config: SwinIRConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = SwinIRConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a SwinIRConfig or keyword arguments, not both")
        self.config = cfg = config
        e, nf = cfg.embed_dim, cfg.num_feat
        s = max(cfg.unshuffle_scale, 1)
        self.register_buffer("mean", torch.tensor(cfg.rgb_mean if cfg.in_chans == 3 else (0.0,) * cfg.in_chans)
                             .view(1, -1, 1, 1), persistent=False)

        # 1. shallow features (DifFace: PixelUnshuffle then conv -> key conv_first.1)
        if s > 1:
            self.conv_first = nn.Sequential(nn.PixelUnshuffle(s), nn.Conv2d(cfg.in_chans * s * s, e, 3, 1, 1))
        else:
            self.conv_first = nn.Conv2d(cfg.in_chans, e, 3, 1, 1)

        # 2. deep features
        self.patch_embed = _PatchEmbed(e, cfg.patch_norm)
        res = (cfg.img_size, cfg.img_size)
        n_blocks = sum(cfg.depths)  # stochastic-depth rate rising linearly 0 -> drop_path_rate
        dpr = [cfg.drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.layers = nn.ModuleList()
        for i, (d, nh) in enumerate(zip(cfg.depths, cfg.num_heads)):
            start = sum(cfg.depths[:i])
            self.layers.append(RSTB(e, res, d, nh, cfg.window_size, cfg.mlp_ratio, cfg.qkv_bias,
                                    dpr[start:start + d], cfg.resi_connection, cfg.use_checkpoint))
        self.norm = nn.LayerNorm(e)
        self.conv_after_body = _resi_conv(e, cfg.resi_connection)

        # 3. reconstruction
        out_ch = cfg.in_chans
        if cfg.upsampler == "nearest+conv":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(e, nf, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.n_up = int(round(math.log2(cfg.upscale)))
            for k in range(1, self.n_up + 1):
                setattr(self, f"conv_up{k}", nn.Conv2d(nf, nf, 3, 1, 1))
            self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
            self.conv_last = nn.Conv2d(nf, out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        elif cfg.upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(e, nf, 3, 1, 1), nn.LeakyReLU(inplace=True))
            up = []
            if cfg.upscale & (cfg.upscale - 1) == 0:
                for _ in range(int(math.log2(cfg.upscale))):
                    up += [nn.Conv2d(nf, 4 * nf, 3, 1, 1), nn.PixelShuffle(2)]
            elif cfg.upscale == 3:
                up += [nn.Conv2d(nf, 9 * nf, 3, 1, 1), nn.PixelShuffle(3)]
            else:
                raise ValueError(f"pixelshuffle supports upscale 2^n or 3, got {cfg.upscale}")
            self.upsample = nn.Sequential(*up)
            self.conv_last = nn.Conv2d(nf, out_ch, 3, 1, 1)
        elif cfg.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(e, cfg.upscale ** 2 * out_ch, 3, 1, 1),
                                          nn.PixelShuffle(cfg.upscale))
        else:
            self.conv_last = nn.Conv2d(e, out_ch, 3, 1, 1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # -------------------------------------------------------------------------------- forward
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.size_multiple
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph == 0 and pw == 0:
            return x
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        hw = (x.shape[2], x.shape[3])
        t = self.patch_embed(x)
        masks: dict = {}
        if hw != (self.config.img_size, self.config.img_size):  # one mask per (ws, shift), shared
            for layer in self.layers:
                for blk in layer.residual_group.blocks:
                    key = (blk.window_size, blk.shift_size)
                    if blk.shift_size and key not in masks:
                        masks[key] = blk.mask_for(hw[0], hw[1], x.device)
        for layer in self.layers:
            t = layer(t, hw, masks)
        return _tokens_to_image(self.norm(t), hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        h, w = x.shape[-2:]
        if cfg.io_range == "-1,1":
            x = (x + 1.0) * 0.5
        x = self._pad(x)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * cfg.img_range
        if cfg.upsampler == "nearest+conv":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_before_upsample(x)
            for k in range(1, self.n_up + 1):
                x = self.lrelu(getattr(self, f"conv_up{k}")(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        elif cfg.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif cfg.upsampler == "pixelshuffledirect":
            x = self.conv_first(x)
            x = self.upsample(self.conv_after_body(self.forward_features(x)) + x)
        else:
            first = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(first)) + first)
        x = x / cfg.img_range + mean
        oh, ow = cfg.output_size(h, w)
        x = x[..., :oh, :ow]
        if cfg.io_range == "-1,1":
            x = x * 2.0 - 1.0
        return x
