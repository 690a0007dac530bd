"""Similarity alignment: estimate, warp, invert.

Affine matrices are OpenCV's 2x3 float64 ``M`` mapping a source pixel (x, y, 1) to the
destination (as `cv2.warpAffine` uses them, pixel centres at integer coordinates).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["estimate_similarity", "warp_face", "inverse_affine", "compose_affine", "affine_scale",
           "apply_affine", "BORDER_MODES", "GRAY_RGB"]

#: facexlib's gray border (135, 133, 132) BGR, here in RGB
GRAY_RGB = (132, 133, 135)
BORDER_MODES = {
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
}


def estimate_similarity(src_pts, dst_pts) -> np.ndarray:
    """Least-squares similarity (rotation + uniform scale + translation, no reflection).

    Closed form (Umeyama 1991 in 2-D): minimises sum ||dst - (s R src + t)||^2 over all points,
    no random sampling, so it is deterministic and uses every landmark.  Returns 2x3 float64.
    """
    src = np.asarray(src_pts, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst_pts, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"need matching point sets of at least 2 points, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = float((s ** 2).sum())
    if var <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / var
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var
    A = np.array([[a, -b], [b, a]])
    t = mu_d - A @ mu_s
    return np.hstack([A, t[:, None]])


def inverse_affine(M) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (float64)."""
    return cv2.invertAffineTransform(np.asarray(M, dtype=np.float64))


def compose_affine(A, B) -> np.ndarray:
    """The 2x3 affine ``A o B`` (apply B first, then A)."""
    A3 = np.vstack([np.asarray(A, np.float64), [0, 0, 1]])
    B3 = np.vstack([np.asarray(B, np.float64), [0, 0, 1]])
    return (A3 @ B3)[:2]


def apply_affine(M, pts) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(M, np.float64)[:, :2].T + np.asarray(M, np.float64)[:, 2]


def affine_scale(M) -> float:
    """The (geometric-mean) scale factor of an affine map."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(M, np.float64)[:, :2]))))


def _size_wh(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = size
    return int(w), int(h)


def warp_face(rgb: np.ndarray, M, size, *, border: str = "reflect", border_value=GRAY_RGB) -> np.ndarray:
    """Warp `rgb` with the image->crop affine `M` into a crop of `size` (int, or (w, h)).

    Border: "reflect" (default, `BORDER_REFLECT_101`) fills the part of the crop that falls
    outside the photo with mirrored content, so the restorer (trained on full-frame faces
    without flat bands) sees plausible context; that area never reaches the final image,
    because paste-back only uses crop pixels that land inside the photo.  "constant" fills
    with facexlib's gray (`border_value`) instead, "replicate" repeats the edge.

    Bilinear interpolation; when the warp shrinks by more than 2x the image is first
    area-downsampled so the crop is not aliased.
    """
    if border not in BORDER_MODES:
        raise ValueError(f"border must be one of {sorted(BORDER_MODES)}, got {border!r}")
    w, h = _size_wh(size)
    M = np.asarray(M, dtype=np.float64)
    src = rgb
    s = affine_scale(M)
    if s < 0.5:
        H, W = rgb.shape[:2]
        r = min(1.0, 2.0 * s)  # leave a 2x bilinear shrink, which does not alias visibly
        nw, nh = max(1, round(W * r)), max(1, round(H * r))
        src = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        rx, ry = nw / W, nh / H
        # resized pixel x' = rx * x + (rx - 1) / 2  (cv2.resize centre alignment)
        down = np.array([[rx, 0, (rx - 1) / 2], [0, ry, (ry - 1) / 2]])
        M = compose_affine(M, inverse_affine(down))
    bv = tuple(int(v) for v in border_value) if border == "constant" else 0
    return cv2.warpAffine(src, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=BORDER_MODES[border], borderValue=bv)
