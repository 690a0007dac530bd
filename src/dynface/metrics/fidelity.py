"""Full-reference pixel fidelity: PSNR and SSIM on uint8 images, RGB or Y (BT.601).

Conventions follow basicsr (`calculate_psnr` / `calculate_ssim`), which the face-restoration
papers use:

* inputs are uint8 RGB (H, W, 3) (or (H, W) gray) of the same shape, range [0, 255];
* ``y_channel=True`` converts to the BT.601 luma of MATLAB's ``rgb2ycbcr``
  (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on 0..255 inputs, not rounded);
* PSNR uses peak 255 and returns ``inf`` for identical images (MSE = 0);
* SSIM is Wang et al. (2004): 11x11 Gaussian window, sigma = 1.5, K1 = 0.01, K2 = 0.03,
  L = 255, "valid" filtering (no padding), mean of the SSIM map, averaged over channels.

How ``inf`` enters set means is decided by :func:`mean_psnr` (finite values only; the count of
identical pairs is reported beside it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

__all__ = ["rgb_to_y", "psnr", "ssim", "mean_psnr", "gaussian_window"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image, float64 in [16, 235], unrounded (MATLAB rgb2ycbcr)."""
    img = np.asarray(img)
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {img.shape}")
    return img.astype(np.float64) @ _Y_WEIGHTS + 16.0


def _prepare(a: np.ndarray, b: np.ndarray, y_channel: bool, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if crop_border:
        c = int(crop_border)
        a = a[c:-c, c:-c, ...]
        b = b[c:-c, c:-c, ...]
    if y_channel and a.ndim == 3:
        return rgb_to_y(a), rgb_to_y(b)
    return a.astype(np.float64), b.astype(np.float64)


def psnr(img: np.ndarray, ref: np.ndarray, y_channel: bool = False, crop_border: int = 0) -> float:
    """PSNR in dB with peak 255; ``inf`` when the images are identical."""
    a, b = _prepare(img, ref, y_channel, crop_border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The 1-D normalised Gaussian (same values as cv2.getGaussianKernel(size, sigma))."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D filtering with window g, keeping only fully supported ('valid') pixels."""
    r = len(g) // 2
    y = correlate1d(x, g, axis=0, mode="reflect")
    y = correlate1d(y, g, axis=1, mode="reflect")
    return y[r:-r, r:-r]


def _ssim_channel(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    mu1 = _filter_valid(a, g)
    mu2 = _filter_valid(b, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a, g) - mu1_sq
    s2 = _filter_valid(b * b, g) - mu2_sq
    s12 = _filter_valid(a * b, g) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ssim(img: np.ndarray, ref: np.ndarray, y_channel: bool = False, crop_border: int = 0) -> float:
    """SSIM (Wang et al. 2004), 11x11 Gaussian sigma 1.5, valid region, mean over channels."""
    a, b = _prepare(img, ref, y_channel, crop_border)
    if min(a.shape[0], a.shape[1]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    g = gaussian_window(11, 1.5)
    if a.ndim == 2:
        return _ssim_channel(a, b, g)
    return float(np.mean([_ssim_channel(a[..., c], b[..., c], g) for c in range(a.shape[2])]))


def mean_psnr(values) -> tuple[float, int]:
    """Mean PSNR over a set, and how many pairs were identical (PSNR = inf).

    Infinite values (identical pairs) are left out of the mean and counted instead; NaN/None
    (failed pairs) are ignored.  If every pair is identical the mean is ``inf``.
    """
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    finite = [v for v in vals if math.isfinite(v)]
    n_inf = len(vals) - len(finite)
    if finite:
        return float(np.mean(finite)), n_inf
    return (math.inf if n_inf else math.nan), n_inf
