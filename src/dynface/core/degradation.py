"""Synthetic degradation of docs/method.md §1 (paper Eq. 16 / 18):

    y = [ (x (x) k_sigma) down_r + n_delta ]_JPEG(q) up_r

sigma ~ U[sigma], r ~ U[scale], delta ~ U[noise] (on the 0..255 scale), q ~ U[jpeg].
Every draw comes from a numpy Generator seeded by (seed, index), so a sample repeats exactly,
and the parameters are returned with the image.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from dynface.core.imageio import resize
from dynface.core.kernels import gaussian_blur


# accepted ranges: blur sigma and down-scale r in pixels, noise on the 0..255 scale, JPEG quality
RANGE_LIMITS = {"sigma": (0.0, 256.0), "scale": (0.1, 256.0), "noise": (0.0, 255.0), "jpeg": (1.0, 100.0)}


@dataclass
class DegradationConfig:
    """Ranges of the four degradation parameters; defaults are the paper's (defined at 512^2)."""

    sigma: tuple[float, float] = (0.1, 15.0)
    scale: tuple[float, float] = (0.8, 32.0)
    noise: tuple[float, float] = (0.0, 20.0)
    jpeg: tuple[float, float] = (30.0, 100.0)

    @classmethod
    def from_dict(cls, d: dict | None) -> "DegradationConfig":
        """From a config's `degradation:` block; ValueError (one line) for anything but known ranges."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ValueError(f"`degradation:` must be a mapping of ranges, got {type(d).__name__}")
        unknown = sorted(set(map(str, d)) - set(RANGE_LIMITS))
        if unknown:
            raise ValueError(f"`degradation:` has unknown key(s) {', '.join(unknown)} (known: {', '.join(RANGE_LIMITS)})")
        ranges = {}
        for k, v in d.items():
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ValueError(f"degradation {k}: expected [low, high], got {v!r}")
            try:
                ranges[k] = (float(v[0]), float(v[1]))
            except (TypeError, ValueError):
                raise ValueError(f"degradation {k}: expected two numbers, got {v!r}") from None
        return cls(**ranges).check()

    @classmethod
    def from_file(cls, path) -> "DegradationConfig":
        """The `degradation:` block of a YAML file; ValueError (one line) when it is not one."""
        import yaml

        from dynface.core.files import FileRefused, read_regular

        try:  # a FIFO is refused, never waited on; a config is a few hundred bytes
            doc = yaml.safe_load(read_regular(path, 1 << 20, "a YAML config").decode("utf-8"))
        except FileRefused as e:
            why = str(e)[len(str(path)) + 2:] if str(e).startswith(f"{path}: ") else str(e)
            raise ValueError(f"{path}: cannot read ({why})") from None
        except OSError as e:
            raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a YAML file ({str(e).splitlines()[0]})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("degradation"), dict):
            raise ValueError(f"{path}: no `degradation:` block of ranges (sigma, scale, noise, jpeg)")
        try:
            return cls.from_dict(doc["degradation"])
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def check(self) -> "DegradationConfig":
        """Every range finite, low <= high, within RANGE_LIMITS; returns self or raises ValueError."""
        for k, (lo_lim, hi_lim) in RANGE_LIMITS.items():
            lo, hi = getattr(self, k)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < lo_lim or hi > hi_lim:
                raise ValueError(f"degradation {k}: [{lo:g}, {hi:g}] must be finite, low <= high, "
                                 f"within [{lo_lim:g}, {hi_lim:g}]")
        return self

    def scaled(self, factor: float) -> "DegradationConfig":
        """The same physical degradation at another resolution: pixel-valued sigma and r scale by `factor`."""
        return DegradationConfig(sigma=(self.sigma[0] * factor, self.sigma[1] * factor),
                                 scale=(self.scale[0] * factor, self.scale[1] * factor),
                                 noise=self.noise, jpeg=self.jpeg).check()

    def scale_range(self) -> tuple[float, float]:
        """The factors `scaled` accepts for these ranges: sigma and r scaled stay within RANGE_LIMITS."""
        lo, hi = 0.0, math.inf
        for k in ("sigma", "scale"):
            (a, b), (lim_lo, lim_hi) = getattr(self, k), RANGE_LIMITS[k]
            if a > 0:
                lo = max(lo, lim_lo / a)
            if b > 0:
                hi = min(hi, lim_hi / b)
        return lo, hi

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
