"""The one catalogue of official public weights: the released checkpoint files and the official
model sets built from them. Facts only; loading is in `weights` (files) and `official` (model sets).

Words: an *architecture* is a network config function (`networks/architectures.py`); a
*checkpoint* is one released file (`CHECKPOINTS`, keyed by its checkpoint name, e.g.
``difface_unet512``); an *official model set* (`MODEL_SETS`: ``difface512``, ``dps256``) pairs a
prior checkpoint with a restorer checkpoint and the sampler settings of that size. On the command
line an official model set is chosen with ``--preset``.

``difface512``  prior: DifFace ``iddpm_ffhq512_ema500000.pth`` (improved-DDPM UNet, 512², learned
                variance, 1000 linear-beta steps -- the schedule of ``Schedule.linear()``);
                RM: DifFace ``swinir_restoration512_L1.pth`` (SwinIR; DifFace feeds it [0, 1]
                images, `official.build_official_rm` builds it with ``io_range="-1,1"``, which maps
                [-1, 1] to [0, 1] and back around the same network, so the weights are used as upstream).
``dps256``      prior: DPS ``ffhq_10m.pt`` (guided-diffusion UNet, 256², learned variance, same
                schedule). **No public 256² face restorer exists**, so there is no official RM:
                put your own ``rm.safetensors`` (dynface format, e.g. ``dynface train rm`` with
                ``size: 256``) in the weights folder, or run the DM-only ablation
                (``--method dynface --no-dblm --no-dsst``), which needs only the prior.

Sigma grid: the paper's 0.1 .. 15 (150 entries) at 512²; at 256² the same physical blur is
0.05 .. 7.5 (the project's convention for other sizes, cf. the 128² configs). Multi-guidance
spacing 1.0 at 512² (docs/method.md §7), 0.5 at 256² (the same blur seen at half the resolution).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from dynface.networks.architectures import difface_swinir512, difface_unet512, dps_unet256
from dynface.networks.swinir import SwinIRConfig
from dynface.networks.unet import UNetConfig

__all__ = ["OfficialCheckpoint", "CHECKPOINTS", "OfficialModelSet", "MODEL_SETS"]


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One released checkpoint file and the architecture that loads it strictly."""

    name: str
    filename: str
    url: str
    architecture: Callable[[], UNetConfig | SwinIRConfig]
    params: int  # parameter count of the architecture (derived from the public code)
    size: int | None = None  # bytes, when publicly stated
    sha256: str | None = None  # when publicly stated
    description: str = ""
    note: str = ""


_NO_HASH = "no size or sha256 is stated publicly for this file (checked: README, code, release notes); not verified"

CHECKPOINTS: dict[str, OfficialCheckpoint] = {c.name: c for c in (
    OfficialCheckpoint(
        name="difface_unet512",
        filename="iddpm_ffhq512_ema500000.pth",
        url="https://github.com/zsyOAOA/DifFace/releases/download/V1.0/iddpm_ffhq512_ema500000.pth",
        architecture=difface_unet512,
        params=159_788_454,
        description="DifFace FFHQ 512x512 diffusion prior (improved-DDPM UNet, EMA 0.999 at 500k iterations)",
        note=_NO_HASH + ". License: NTU S-Lab License 1.0 (DifFace).",
    ),
    OfficialCheckpoint(
        name="dps_unet256",
        filename="ffhq_10m.pt",
        url="https://drive.google.com/drive/folders/1jElnRoFv7b31fG0v6pTSQkelbSX3xGZh",
        architecture=dps_unet256,
        params=93_563_910,
        description="DPS FFHQ 256x256 diffusion prior (guided-diffusion UNet), file 'ffhq_10m.pt' in the DPS "
                    "README's Google Drive folder",
        note=_NO_HASH + ". The URL is a folder: download ffhq_10m.pt from it.",
    ),
    OfficialCheckpoint(
        name="difface_swinir512",
        filename="swinir_restoration512_L1.pth",
        url="https://github.com/zsyOAOA/DifFace/releases/download/V1.0/swinir_restoration512_L1.pth",
        architecture=difface_swinir512,
        params=15_792_587,
        description="DifFace's SwinIR face restorer for 512x512 faces (L1-trained, [0,1] in and out)",
        note=_NO_HASH + ". License: NTU S-Lab License 1.0 (DifFace).",
    ),
)}


@dataclass(frozen=True)
class OfficialModelSet:
    """A model set of official checkpoints (``--preset NAME``); the other stages are the user's own."""

    name: str
    size: int
    prior: str                      # checkpoint name of the official prior
    rm: str | None                  # checkpoint name of the official restorer, or None
    sigma_grid: tuple = (0.1, 15.0, 150)
    guidance_spacing: float = 1.0
    prior_iters: int | None = None  # training iterations of the released prior, where stated
    degradation: dict = field(default_factory=dict)
    note: str = ""


_DEG512 = {"sigma": [0.1, 15.0], "scale": [0.8, 32.0], "noise": [0.0, 20.0], "jpeg": [30, 100]}
_DEG256 = {"sigma": [0.05, 7.5], "scale": [0.4, 16.0], "noise": [0.0, 20.0], "jpeg": [30, 100]}

MODEL_SETS: dict[str, OfficialModelSet] = {m.name: m for m in (
    OfficialModelSet(
        "difface512", 512, prior="difface_unet512", rm="difface_swinir512", sigma_grid=(0.1, 15.0, 150),
        guidance_spacing=1.0, prior_iters=500_000, degradation=_DEG512,
        note="official DifFace prior + SwinIR restorer (512x512, FFHQ-aligned faces)"),
    OfficialModelSet(
        "dps256", 256, prior="dps_unet256", rm=None, sigma_grid=(0.05, 7.5, 150),
        guidance_spacing=0.5, degradation=_DEG256,
        note="official DPS FFHQ prior (256x256); no public 256x256 face restorer exists: put your own "
             "rm.safetensors in the weights folder for --dblm / --method rm, or run DM-only with "
             "--no-dblm --no-dsst"),
)}
