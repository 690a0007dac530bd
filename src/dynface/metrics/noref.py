"""No-reference quality: NIQE (own implementation, MATLAB-compatible) and BRISQUE (OpenCV contrib).

NIQE (Mittal, Soundararajan & Bovik 2013, "Making a 'completely blind' image quality analyzer"),
re-implemented after basicsr's ``calculate_niqe`` (which matches the official MATLAB release:
baboon.png 5.7296).  Lower is better.  Steps:

1. uint8 RGB -> BT.601 Y (MATLAB ``rgb2ycbcr``), optional border crop, round to integers;
2. crop to a multiple of the 96x96 block size (blocks do not overlap);
3. on two scales (full, then MATLAB-``imresize`` bicubic x0.5 with antialiasing): MSCN
   coefficients (7x7 Gaussian local mean/std, replicate borders, (I - mu) / (sigma + 1));
   per block 18 features: AGGD (alpha, mean of the two betas) of the coefficients and AGGD
   (alpha, mean, beta_l, beta_r) of their products with the 4 circular neighbours
   (H, V, two diagonals);
4. fit a multivariate Gaussian to the 36-D block features (NaN-aware) and return
   sqrt((mu_p - mu_d)^T pinv((S_p + S_d)/2) (mu_p - mu_d)) against the pristine model.

The pristine model (``niqe_pris_params.npz``: mu_pris_param (1, 36), cov_pris_param (36, 36),
gaussian_window (7, 7)) is vendored from basicsr 1.4.2 (Apache-2.0), which took it from the
official MATLAB release.

BRISQUE (Mittal et al. 2012) runs through ``cv2.quality.QualityBRISQUE_compute`` and needs
both opencv-contrib (the ``quality`` module) and the LIVE model files
``brisque_model_live.yml`` / ``brisque_range_live.yml`` (Debian package ``opencv-data``
installs them in /usr/share/opencv4/quality/; or point ``DYNFACE_BRISQUE_MODELS`` at a folder
holding them).  Otherwise :func:`brisque` raises :class:`MetricUnavailable` with one message.
Lower is better (0..100-ish).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

from dynface.metrics.fidelity import rgb_to_y
from dynface.metrics.identity import MetricUnavailable

__all__ = ["niqe", "niqe_y", "matlab_imresize", "brisque", "brisque_available", "NIQE_PARAMS"]

NIQE_PARAMS = Path(__file__).with_name("niqe_pris_params.npz")
BRISQUE_DIRS = ("/usr/share/opencv4/quality", "/usr/share/opencv/quality", "/usr/local/share/opencv4/quality")


@lru_cache(maxsize=1)
def _niqe_params():
    if not NIQE_PARAMS.is_file():
        raise MetricUnavailable(f"NIQE: pristine model {NIQE_PARAMS} is missing")
    with np.load(NIQE_PARAMS) as d:
        return d["mu_pris_param"].astype(np.float64), d["cov_pris_param"].astype(np.float64), \
            d["gaussian_window"].astype(np.float64)


# ------------------------------------------------------------------ MATLAB imresize (bicubic)

def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """(out_len, in_len) matrix of MATLAB imresize's bicubic weights, symmetric borders."""
    kernel_width = 4.0
    aa = scale < 1 and antialiasing
    if aa:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]            # 1-based input indices
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if aa else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])  # mirror padding
    cols = aux[np.mod(idx.astype(np.int64) - 1, len(aux))]
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), p), cols.ravel()), w.ravel())
    return mat


def matlab_imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` (bicubic) of a 2-D float image; output not rounded."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    oh, ow = int(math.ceil(h * scale)), int(math.ceil(w * scale))
    return _resize_matrix(h, oh, scale, antialiasing) @ img @ _resize_matrix(w, ow, scale, antialiasing).T


# ------------------------------------------------------------------ NIQE

_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = np.square(gamma(2.0 / _GAM)) / (gamma(1.0 / _GAM) * gamma(3.0 / _GAM))


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit: alpha, beta_left, beta_right (moment matching)."""
    b = block.ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.mean(b[b < 0] ** 2)) if np.any(b < 0) else np.nan
        right_std = np.sqrt(np.mean(b[b > 0] ** 2)) if np.any(b > 0) else np.nan
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(b)) ** 2 / np.mean(b ** 2)
        rhatnorm = (rhat * (gammahat ** 3 + 1) * (gammahat + 1)) / ((gammahat ** 2 + 1) ** 2)
    alpha = _GAM[np.argmin((_R_GAM - rhatnorm) ** 2)]
    k = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return float(alpha), float(left_std * k), float(right_std * k)


def _block_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feat = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = block * np.roll(block, shift, axis=(0, 1))
        alpha, bl, br = _aggd(prod)
        mean = (br - bl) * (gamma(2.0 / alpha) / gamma(1.0 / alpha))
        feat.extend([alpha, mean, bl, br])
    return feat


def niqe_y(y: np.ndarray, block_size: int = 96) -> float:
    """NIQE of a rounded Y (or gray) image, float in [0, 255], shape (H, W)."""
    mu_p, cov_p, window = _niqe_params()
    y = np.asarray(y, dtype=np.float64)
    h, w = y.shape
    nbh, nbw = h // block_size, w // block_size
    if nbh < 1 or nbw < 1:
        raise ValueError(f"NIQE needs at least {block_size}x{block_size} pixels, got {w}x{h}")
    img = y[: nbh * block_size, : nbw * block_size]
    feats = []
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
        mscn = (img - mu) / (sigma + 1)
        bs = block_size // scale
        rows = []
        for bw in range(nbw):
            for bh in range(nbh):
                rows.append(_block_features(mscn[bh * bs:(bh + 1) * bs, bw * bs:(bw + 1) * bs]))
        feats.append(np.array(rows))
        if scale == 1:
            img = matlab_imresize(img / 255.0, 0.5, antialiasing=True) * 255.0
    dist = np.concatenate(feats, axis=1)
    mu_d = np.nanmean(dist, axis=0)
    clean = dist[~np.isnan(dist).any(axis=1)]
    if len(clean) >= 2:
        cov_d = np.cov(clean, rowvar=False)
    else:  # a single block (e.g. a 96..191 px image): no spread to estimate
        cov_d = np.zeros_like(cov_p)
    inv = np.linalg.pinv((cov_p + cov_d) / 2)
    diff = (mu_p - mu_d).reshape(1, -1)
    return float(np.sqrt(np.squeeze(diff @ inv @ diff.T)))


def niqe(img: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8 RGB (or gray) image, on its Y channel (lower is better)."""
    img = np.asarray(img)
    y = rgb_to_y(img) if img.ndim == 3 else img.astype(np.float64)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_y(np.round(y))


# ------------------------------------------------------------------ BRISQUE

@lru_cache(maxsize=1)
def _brisque_setup() -> tuple[object, str, str]:
    try:
        import cv2
    except ImportError:
        raise MetricUnavailable("BRISQUE unavailable: OpenCV is not installed") from None
    if not hasattr(cv2, "quality") or not hasattr(cv2.quality, "QualityBRISQUE_compute"):
        raise MetricUnavailable(
            f"BRISQUE unavailable: OpenCV {cv2.__version__} has no contrib 'quality' module "
            "(needs opencv-contrib-python-headless instead of opencv-python[-headless])")
    dirs = [os.environ["DYNFACE_BRISQUE_MODELS"]] if os.environ.get("DYNFACE_BRISQUE_MODELS") else []
    dirs += list(BRISQUE_DIRS)
    for d in dirs:
        m, r = Path(d) / "brisque_model_live.yml", Path(d) / "brisque_range_live.yml"
        if m.is_file() and r.is_file():
            return cv2, str(m), str(r)
    raise MetricUnavailable(
        "BRISQUE unavailable: brisque_model_live.yml / brisque_range_live.yml not found in "
        f"{', '.join(dirs)} (apt-get install opencv-data, or set DYNFACE_BRISQUE_MODELS)")


def brisque_available() -> tuple[bool, str]:
    """(True, "") when BRISQUE can run, else (False, the reason)."""
    try:
        _brisque_setup()
        return True, ""
    except MetricUnavailable as e:
        return False, str(e)


def brisque(img: np.ndarray) -> float:
    """BRISQUE score of a uint8 RGB image via cv2.quality (lower is better)."""
    cv2, model, rng = _brisque_setup()
    bgr = np.ascontiguousarray(np.asarray(img)[..., ::-1]) if np.asarray(img).ndim == 3 else np.asarray(img)
    score = cv2.quality.QualityBRISQUE_compute(bgr, model, rng)
    return float(score[0])
