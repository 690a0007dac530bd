"""Uncertainty maps: where K posterior samples of the guided sampler disagree.

`RestoreOptions.samples = K` draws K samples as K copies in one batch (pipeline.py), sample k from
its own noise stream `sample_seed(seed, k)`. Here: the per-pixel standard deviation of those
samples and its heat map (inferno, with a colour bar beside the map); pasting the map into a whole
photo's frame is jobs/uncertainty_maps.py.
What the map is worth is measured in docs/uncertainty.md (benchmarks/uncertainty_validation.py).
"""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import torch

STD_VMAX = 0.05   # heat-map scale: std (on [0, 1] intensities) shown at the top of the colour bar


def sample_seed(seed: int, k: int) -> int:
    """Seed of posterior sample k: `seed` itself for k = 0 (the plain restoration), a hash of (seed, k) else."""
    if k == 0:
        return int(seed)
    return int.from_bytes(hashlib.sha256(f"dynface-sample:{int(seed)}:{int(k)}".encode()).digest()[:7], "little")


def check_samples(k) -> int:
    """K as an int >= 1, or ValueError with one line."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"samples must be an integer >= 1, got {k!r}")
    return int(k)


def pixel_std(samples: torch.Tensor) -> torch.Tensor:
    """(K, B, C, H, W) samples in [-1, 1] -> (B, H, W) std on [0, 1] intensities, RMS over channels."""
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f"pixel_std needs (K >= 2, B, C, H, W) samples, got {tuple(samples.shape)}")
    var = (samples.float() / 2).var(dim=0, correction=0)  # (B, C, H, W)
    return var.mean(dim=1).sqrt()


def _lut(name: str = "inferno") -> np.ndarray:
    import matplotlib

    return (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(std: np.ndarray, vmax: float = STD_VMAX) -> np.ndarray:
    """(H, W) std -> uint8 RGB through the inferno colour map, 0 .. vmax (clipped)."""
    idx = np.clip(np.asarray(std, np.float64) / vmax, 0, 1) * 255
    return _lut()[np.rint(idx).astype(np.int64)]


def colour_bar(height: int, vmax: float = STD_VMAX) -> np.ndarray:
    """A vertical colour bar strip (uint8 RGB) labelled 0 .. vmax, `height` rows."""
    width = max(40, height // 5)
    bar_w = max(6, width // 4)
    strip = np.full((height, width, 3), 255, np.uint8)
    ramp = colorize(np.linspace(vmax, 0, height)[:, None].repeat(bar_w, 1), vmax)
    strip[:, 2:2 + bar_w] = ramp
    scale = max(0.28, height / 700)
    for frac, text in ((0.0, f"{vmax:g}"), (0.5, f"{vmax / 2:g}"), (1.0, "0")):
        yy = int(round(frac * (height - 1)))
        yy = min(max(yy + 4, 9), height - 2)
        cv2.putText(strip, text, (4 + bar_w, yy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(strip, "std", (4 + bar_w, height // 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def heatmap(std: np.ndarray, vmax: float = STD_VMAX, background: np.ndarray | None = None,
            mask: np.ndarray | None = None) -> np.ndarray:
    """Heat map of `std` in the output's framing (left H x W block) with a colour bar on the right.

    With `background` and `mask` (whole photos), the heat colours are blended in by the mask and the
    rest shows the photo in dimmed grey, so the map reads in the photo's frame."""
    rgb = colorize(std, vmax)
    if background is not None and mask is not None:
        grey = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)[..., None].astype(np.float32) * 0.5
        m = np.asarray(mask, np.float32)[..., None]
        rgb = np.clip(np.rint(m * rgb + (1 - m) * grey), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, colour_bar(rgb.shape[0], vmax)], axis=1)


def mean_and_std(samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3, H, W) samples of one face in [-1, 1] -> (mean as uint8 RGB (H, W, 3), std (H, W) float32)."""
    from dynface.core.imageio import to_uint8

    return to_uint8(samples.float().mean(0)), pixel_std(samples[:, None])[0].cpu().numpy().astype(np.float32)
