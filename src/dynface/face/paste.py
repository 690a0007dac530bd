"""Paste restored faces back into the (upscaled) photo with a feathered mask.

Guarantee: every output pixel outside the union of the face masks (mask value exactly 0) is
bit-identical to the (upscaled) background; at ``upscale == 1`` the background is the input
image itself, untouched.  Inside a mask the result is ``m * face + (1 - m) * background``,
rounded to uint8.

The mask follows facexlib's paste (without a face-parsing net): the crop's footprint in the
output, eroded a little to drop interpolated edge pixels, then eroded by ``2 * e`` and
Gaussian-blurred over ``2 * e + 1`` px, where ``e = sqrt(footprint area) // 20``, so the
feathered band lies entirely inside the footprint and a face touching the photo edge still
reaches the edge.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from dynface.face.align import apply_affine, compose_affine, inverse_affine

__all__ = ["paste_faces", "upscale_image", "upscale_affine", "face_mask"]

MINIFY_LIMIT = 0.75  # a face shrunk more than this when pasted is area-averaged first (warp_to_photo)


def upscale_affine(sx: float, sy: float | None = None) -> np.ndarray:
    """The 2x3 map from input pixels to pixels of the image resized by (sx, sy) with cv2.resize
    (pixel centres aligned: ``x' = sx * x + (sx - 1) / 2``)."""
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]])


def _up_size(h: int, w: int, upscale: float) -> tuple[int, int]:
    return max(1, round(h * upscale)), max(1, round(w * upscale))


def upscale_image(rgb: np.ndarray, upscale: float) -> np.ndarray:
    """Resize by `upscale` (>= 1) with Lanczos; a copy of `rgb` when upscale == 1."""
    _check_upscale(upscale)
    h, w = rgb.shape[:2]
    H, W = _up_size(h, w, upscale)
    if (H, W) == (h, w):
        return rgb.copy()
    return cv2.resize(rgb, (W, H), interpolation=cv2.INTER_LANCZOS4)


def _check_upscale(upscale) -> None:
    if not (isinstance(upscale, (int, float, np.integer, np.floating)) and math.isfinite(upscale) and upscale >= 1):
        raise ValueError(f"upscale must be a number >= 1, got {upscale!r}")


def face_mask(footprint: np.ndarray, upscale: float = 1.0) -> np.ndarray:
    """Feathered mask (float32 in [0, 1]) from a warped all-ones footprint."""
    k = max(2, int(round(2 * upscale)))
    m = cv2.erode(footprint, np.ones((k, k), np.uint8))
    m = (m >= 1.0 - 1e-4).astype(np.float32)  # drop partially covered (interpolated) pixels
    e = int(math.sqrt(float(m.sum()))) // 20
    if e > 0:
        m = cv2.erode(m, np.ones((2 * e, 2 * e), np.uint8))
        m = cv2.GaussianBlur(m, (2 * e + 1, 2 * e + 1), 0)
    return m


def warp_to_photo(img: np.ndarray, M, crop_size, up: np.ndarray, out_hw: tuple[int, int], upscale: float,
                  interp: int):
    """Warp a restored face (or a per-pixel map of it) from its aligned crop into the output photo, within
    the box around its footprint: (x0, y0, warped, feathered mask) of that box, or None when the face
    lies outside the photo. M maps photo -> crop px; crop_size (if given and not the image's size)
    rescales it to the image's px; `up` maps input photo px -> output px."""
    rh, rw = img.shape[:2]
    M = np.asarray(M, dtype=np.float64)
    if crop_size is not None:
        cw, ch = (crop_size, crop_size) if np.isscalar(crop_size) else crop_size
        if (cw, ch) != (rw, rh):  # restorer changed the size: crop px -> restored px
            M = compose_affine(upscale_affine(rw / cw, rh / ch), M)
    A = compose_affine(up, inverse_affine(M))  # restored-face px -> output px
    shrink = math.sqrt(abs(np.linalg.det(A[:, :2])))
    if shrink < MINIFY_LIMIT:  # a face larger than its place (an upsampled face in a small footprint):
        # area-average it to about its place's size first; a cubic warp would alias its fine detail
        nw, nh = max(1, round(rw * shrink)), max(1, round(rh * shrink))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        A = compose_affine(A, inverse_affine(upscale_affine(nw / rw, nh / rh)))
        rh, rw = nh, nw
    H, W = out_hw
    corners = apply_affine(A, [[-0.5, -0.5], [rw - 0.5, -0.5], [-0.5, rh - 0.5], [rw - 0.5, rh - 0.5]])
    x0 = max(0, int(math.floor(corners[:, 0].min())) - 2)
    y0 = max(0, int(math.floor(corners[:, 1].min())) - 2)
    x1 = min(W, int(math.ceil(corners[:, 0].max())) + 3)
    y1 = min(H, int(math.ceil(corners[:, 1].max())) + 3)
    if x1 <= x0 or y1 <= y0:
        return None
    A_roi = A.copy()
    A_roi[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(img, A_roi, size, flags=interp, borderMode=cv2.BORDER_REPLICATE)
    footprint = cv2.warpAffine(np.ones((rh, rw), np.float32), A_roi, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return x0, y0, warped, face_mask(footprint, upscale)


def paste_faces(
    background_rgb: np.ndarray,
    faces: Sequence[tuple],
    upscale: float = 1,
    *,
    background_up: np.ndarray | None = None,
    return_mask: bool = False,
):
    """Inverse-warp restored faces into the photo.

    background_rgb: the original photo, uint8 (H, W, 3).
    faces: ``(restored_rgb, M)`` or ``(restored_rgb, M, crop_size)`` per face, where `M` is the
        2x3 affine that mapped the photo to the aligned crop (as given to `warp_face`) and
        `crop_size` (int or (w, h)) is that crop's size if the restorer returned a different
        size (e.g. a 2x super-resolved face); later faces are painted over earlier ones.
    upscale: output scale (>= 1); the background is Lanczos-resized unless `background_up`
        (already upscaled, e.g. by a background restorer, of size round(H*s) x round(W*s)) is given.
    Returns the uint8 image, or (image, union_mask float32) with `return_mask`.
    """
    _check_upscale(upscale)
    bg = np.asarray(background_rgb)
    if bg.dtype != np.uint8 or bg.ndim != 3 or bg.shape[2] != 3:
        raise ValueError(f"background must be uint8 (H, W, 3), got {bg.dtype} {bg.shape}")
    h, w = bg.shape[:2]
    H, W = _up_size(h, w, upscale)
    if background_up is not None:
        if background_up.shape != (H, W, 3) or background_up.dtype != np.uint8:
            raise ValueError(f"background_up must be uint8 {(H, W, 3)}, got {background_up.dtype} {background_up.shape}")
        out = background_up.copy()
    else:
        out = upscale_image(bg, upscale)
    up = upscale_affine(W / w, H / h)
    union = np.zeros((H, W), np.float32) if return_mask else None

    for item in faces:
        restored, M = item[0], item[1]
        restored = np.asarray(restored)
        if restored.dtype != np.uint8 or restored.ndim != 3 or restored.shape[2] != 3:
            raise ValueError(f"restored face must be uint8 (h, w, 3), got {restored.dtype} {restored.shape}")
        placed = warp_to_photo(restored, M, item[2] if len(item) > 2 else None, up, (H, W), upscale,
                               cv2.INTER_CUBIC)
        if placed is None:
            continue  # the face lies outside the photo
        x0, y0, face, m = placed
        y1, x1 = y0 + m.shape[0], x0 + m.shape[1]
        sel = m > 0
        if not sel.any():
            continue
        roi = out[y0:y1, x0:x1]
        mm = m[sel][:, None]
        blended = mm * face[sel].astype(np.float32) + (1.0 - mm) * roi[sel].astype(np.float32)
        roi[sel] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        if union is not None:
            np.maximum(union[y0:y1, x0:x1], m, out=union[y0:y1, x0:x1])
    return (out, union) if return_mask else out
