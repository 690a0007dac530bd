"""Architectures (network config functions) of the public checkpoints this project can load.

Each function reproduces the network definition the checkpoint was trained with, so that
``load_into(model, state, strict=True)`` succeeds on the released file. Sources read:

* ``difface_unet512`` -- DifFace (zsyOAOA/DifFace) ``models/unet.py`` with the ``model``
  block of ``configs/sample/iddpm_ffhq512_swinir.yaml`` (also ``configs/training/
  diffusion_ffhq512.yaml``); checkpoint ``iddpm_ffhq512_ema500000.pth``. DifFace tests
  ``ds in attention_resolutions`` with ``ds`` starting at ``image_size`` and halving, i.e.
  attention at feature maps of 32, 16 and 8 pixels -- the convention of dynface's UNet.
  ``num_res_blocks`` is per level; output blocks use ``num_res_blocks[level] + 1``.
  DifFace leaves ``num_heads`` at its default 1, which ``num_head_channels = 64`` overrides.
  Diffusion settings of that model (not part of the network): 1000 linear-beta steps,
  learn_sigma (out_channels 6: epsilon and the variance interpolation), predict epsilon.
* ``dps_unet256`` -- DPS (DPS2022/diffusion-posterior-sampling) ``guided_diffusion/unet.py``
  ``create_model`` with ``configs/model_config.yaml``; checkpoint ``ffhq_10m.pt``.
  ``channel_mult: ""`` means (1, 1, 2, 2, 4, 4) at 256 px; ``attention_resolutions: 16`` is
  turned into the rate ``256 // 16 = 16``, i.e. the 16-pixel feature map; num_heads 4 is
  overridden by num_head_channels 64; num_heads_upsample -1; use_new_attention_order False;
  resblock_updown True; use_scale_shift_norm True; learn_sigma True -> 6 output channels.
  (use_fp16 only changes the dtype of the torso, not the keys.)
* ``difface_swinir512`` -- DifFace ``models/swinir.py`` (class SwinIR) with the ``model_ir``
  block of ``configs/sample/iddpm_ffhq512_swinir.yaml``; checkpoint
  ``swinir_restoration512_L1.pth``. img_size 64 (token grid), patch 1, embed_dim 180,
  depths/num_heads [6]*8, window 8, mlp_ratio 2, sf 8, img_range 1, "nearest+conv",
  "1conv", unshuffle by 8 (512^2 x 3 -> 64^2 x 192 -> conv_first.1). DifFace feeds it [0, 1]
  images (``io_range="0,1"``); its training default drop_path_rate is 0.1.

Parameter counts (derived from the public code, see tests/fixtures/derive_official_keys.py):
DifFace UNet 159,788,454; DPS UNet 93,563,910; DifFace SwinIR 15,792,587.
"""
from __future__ import annotations

from contextlib import nullcontext

from dynface.networks.swinir import SwinIRConfig
from dynface.networks.unet import UNetConfig

__all__ = ["difface_unet512", "dps_unet256", "difface_swinir512", "build_architecture"]


def difface_unet512() -> UNetConfig:
    """DifFace FFHQ 512^2 diffusion UNet (iddpm_ffhq512_ema500000.pth), 159.8 M parameters."""
    return UNetConfig(
        image_size=512,
        in_channels=3,
        model_channels=32,
        out_channels=6,  # learn_sigma
        num_res_blocks=[1, 2, 2, 2, 2, 3, 4],
        attention_resolutions=[32, 16, 8],
        dropout=0.0,
        channel_mult=[1, 2, 4, 8, 8, 16, 16],
        conv_resample=True,
        num_heads=1,
        num_head_channels=64,
        num_heads_upsample=-1,
        use_scale_shift_norm=True,
        resblock_updown=False,
        use_new_attention_order=False,
    )


def dps_unet256() -> UNetConfig:
    """DPS FFHQ 256^2 diffusion UNet (ffhq_10m.pt), 93.6 M parameters."""
    return UNetConfig(
        image_size=256,
        in_channels=3,
        model_channels=128,
        out_channels=6,  # learn_sigma
        num_res_blocks=1,
        attention_resolutions=[16],
        dropout=0.0,
        channel_mult=[1, 1, 2, 2, 4, 4],
        conv_resample=True,
        num_heads=4,
        num_head_channels=64,
        num_heads_upsample=-1,
        use_scale_shift_norm=True,
        resblock_updown=True,
        use_new_attention_order=False,
    )


def difface_swinir512() -> SwinIRConfig:
    """DifFace's face restorer (swinir_restoration512_L1.pth), 15.8 M parameters, [0,1] -> [0,1]."""
    return SwinIRConfig(
        in_chans=3,
        embed_dim=180,
        depths=[6] * 8,
        num_heads=[6] * 8,
        window_size=8,
        mlp_ratio=2.0,
        img_size=64,
        unshuffle_scale=8,
        upscale=8,
        upsampler="nearest+conv",
        resi_connection="1conv",
        num_feat=64,
        img_range=1.0,
        rgb_mean=(0.4488, 0.4371, 0.4040),
        io_range="0,1",
        drop_path_rate=0.1,
    )


def build_architecture(cfg: UNetConfig | SwinIRConfig, device=None):
    """The network of an architecture config (``device="meta"`` builds it without memory).
    Which checkpoint uses which architecture: `dynface.modelset.catalogue`."""
    import torch

    from dynface.networks.swinir import SwinIR
    from dynface.networks.unet import UNetModel

    with torch.device(device) if device is not None else nullcontext():
        return SwinIR(cfg) if isinstance(cfg, SwinIRConfig) else UNetModel(cfg)
