"""Synthetic degradation of METHOD §1 (paper Eq. 16 / 18):

    y = [ (x (x) k_sigma) down_r + n_delta ]_JPEG(q) up_r

sigma ~ U[sigma], r ~ U[scale], delta ~ U[noise] (on the 0..255 scale), q ~ U[jpeg].
Every draw comes from a numpy Generator seeded by (seed, index), so a sample repeats exactly,
and the parameters are returned with the image.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from .imageio import resize
from .kernels import gaussian_blur


@dataclass
class DegradationConfig:
    """Ranges of the four degradation parameters; defaults are the paper's (defined at 512^2)."""

    sigma: tuple[float, float] = (0.1, 15.0)
    scale: tuple[float, float] = (0.8, 32.0)
    noise: tuple[float, float] = (0.0, 20.0)
    jpeg: tuple[float, float] = (30.0, 100.0)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DegradationConfig":
        d = dict(d or {})
        return cls(**{k: tuple(float(v) for v in d[k]) for k in ("sigma", "scale", "noise", "jpeg") if k in d})

    def scaled(self, factor: float) -> "DegradationConfig":
        """The same physical degradation at another resolution: pixel-valued sigma and r scale by `factor`."""
        return DegradationConfig(sigma=(self.sigma[0] * factor, self.sigma[1] * factor),
                                 scale=(self.scale[0] * factor, self.scale[1] * factor),
                                 noise=self.noise, jpeg=self.jpeg)

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


@dataclass
class DegradationParams:
    sigma: float
    scale: float
    noise: float
    jpeg: int

    def to_dict(self) -> dict:
        return asdict(self)


def sample_params(cfg: DegradationConfig, rng: np.random.Generator) -> DegradationParams:
    return DegradationParams(sigma=float(rng.uniform(*cfg.sigma)), scale=float(rng.uniform(*cfg.scale)),
                             noise=float(rng.uniform(*cfg.noise)), jpeg=int(round(rng.uniform(*cfg.jpeg))))


def make_rng(seed: int, index: int = 0) -> np.random.Generator:
    """One independent stream per (seed, sample index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]))


def jpeg_roundtrip(img01: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress an (H, W, 3) float image in [0, 1] with OpenCV and decode it again."""
    u8 = np.clip(img01 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def degrade(x: torch.Tensor, params: DegradationParams, rng: np.random.Generator) -> torch.Tensor:
    """Degrade one image x (1, 3, H, W) in [-1, 1] with the given parameters (Eq. 16)."""
    with torch.autocast("cpu", enabled=False), torch.no_grad():
        return _degrade(x, params, rng)


def _degrade(x: torch.Tensor, params: DegradationParams, rng: np.random.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    x01 = (x.float() + 1) / 2
    blurred = gaussian_blur(x01, params.sigma)
    sh, sw = max(1, round(h / params.scale)), max(1, round(w / params.scale))
    small = resize(blurred, (sh, sw)).clamp(0, 1)
    arr = small[0].permute(1, 2, 0).numpy()
    arr = arr + rng.normal(0.0, params.noise / 255.0, size=arr.shape).astype(np.float32)
    arr = jpeg_roundtrip(np.clip(arr, 0, 1), params.jpeg)
    up = resize(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None], (h, w))
    return up.clamp(0, 1) * 2 - 1


def degrade_random(x: torch.Tensor, cfg: DegradationConfig, seed: int, index: int = 0):
    """Draw parameters for sample `index` under `seed` and degrade; returns (y, params)."""
    rng = make_rng(seed, index)
    p = sample_params(cfg, rng)
    return degrade(x, p, rng), p
