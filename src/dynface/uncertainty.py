"""Uncertainty maps: where K posterior samples of the guided sampler disagree.

`RestoreOptions.samples = K` draws K samples as K copies in one batch (pipeline.py), sample k from
its own noise stream `sample_seed(seed, k)`. Here: the per-pixel standard deviation of those
samples, its heat map (inferno, with a colour bar beside the map), and the map pasted into a whole
photo's frame inside the face masks only (the same geometry as `face.paste.paste_faces`).
What the map is worth is measured in docs/uncertainty.md (benchmarks/uncertainty_validation.py).
"""
from __future__ import annotations

import hashlib
import math

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


def paste_maps(shape_hw: tuple[int, int], maps, upscale: float = 1.0):
    """Paste per-face float maps into a photo frame of input size `shape_hw`, scaled by `upscale`.

    maps: ``(map (h, w) float, M, crop_size)`` as for `paste_faces` (M: photo -> aligned crop).
    Returns (map, mask) of the output size: map is 0 wherever the union mask is 0; inside, later
    faces are blended over earlier ones with the feathered paste mask, as the faces themselves are."""
    from .face.align import apply_affine, compose_affine, inverse_affine
    from .face.paste import _up_size, face_mask, upscale_affine

    h, w = shape_hw
    H, W = _up_size(h, w, upscale)
    out = np.zeros((H, W), np.float32)
    union = np.zeros((H, W), np.float32)
    up = upscale_affine(W / w, H / h)
    for fmap, M, cs in maps:
        fmap = np.asarray(fmap, np.float32)
        rh, rw = fmap.shape
        M = np.asarray(M, np.float64)
        cw, ch = (cs, cs) if np.isscalar(cs) else cs
        if (cw, ch) != (rw, rh):
            M = compose_affine(upscale_affine(rw / cw, rh / ch), M)
        A = compose_affine(up, inverse_affine(M))
        c = apply_affine(A, [[-0.5, -0.5], [rw - 0.5, -0.5], [-0.5, rh - 0.5], [rw - 0.5, rh - 0.5]])
        x0, y0 = max(0, int(math.floor(c[:, 0].min())) - 2), max(0, int(math.floor(c[:, 1].min())) - 2)
        x1, y1 = min(W, int(math.ceil(c[:, 0].max())) + 3), min(H, int(math.ceil(c[:, 1].max())) + 3)
        if x1 <= x0 or y1 <= y0:
            continue
        A_roi = A.copy()
        A_roi[:, 2] -= (x0, y0)
        size = (x1 - x0, y1 - y0)
        warped = cv2.warpAffine(fmap, A_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        foot = cv2.warpAffine(np.ones((rh, rw), np.float32), A_roi, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        m = face_mask(foot, upscale)
        roi = out[y0:y1, x0:x1]
        roi[:] = m * np.maximum(warped, 0) + (1 - m) * roi
        np.maximum(union[y0:y1, x0:x1], m, out=union[y0:y1, x0:x1])
    out[union <= 0] = 0.0
    return out, union


def mean_and_std(samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3, H, W) samples of one face in [-1, 1] -> (mean as uint8 RGB (H, W, 3), std (H, W) float32)."""
    from .imageio import to_uint8

    return to_uint8(samples.float().mean(0)), pixel_std(samples[:, None])[0].cpu().numpy().astype(np.float32)


def write_uncertainty(rgb: np.ndarray, res, stem: str, out_dir, sfx: str, final_ext: str, faces: list) -> list[str]:
    """Write a photo's uncertainty/ files; rgb = the input photo, res = its `WholeResult`,
    `faces[i]` = (mean uint8, std float) of restored record i, in the restored face's framing.

        uncertainty/<stem>_<NN>_mean.png     mean of the K samples (the restored face's framing)
        uncertainty/<stem>_<NN>_std.png      per-pixel std heat map + colour bar (same framing)
        uncertainty/<stem>[_sfx]_mean<ext>   the photo with the mean faces pasted (final_results' frame)
        uncertainty/<stem>[_sfx]_std.png     the std pasted into the photo's frame inside the face masks
    """
    from pathlib import Path

    from .face.paste import paste_faces
    from .imageio import write_image

    d = Path(out_dir) / "uncertainty"
    recs = res.restored_records
    if len(faces) != len(recs):
        raise ValueError(f"{len(faces)} uncertainty maps for {len(recs)} restored faces")
    out = []
    for r, (mean, std) in zip(recs, faces):
        name = f"{stem}_{r.index:02d}"
        out.append(str(write_image(d / f"{name}_mean.png", mean)))
        out.append(str(write_image(d / f"{name}_std.png", heatmap(std))))
    if recs:
        crops = [r.cropped.shape[1::-1] for r in recs]
        mean_img = paste_faces(rgb, [(m, r.affine, c) for (m, _), r, c in zip(faces, recs, crops)], res.upscale)
        out.append(str(write_image(d / f"{stem}{sfx}_mean{final_ext}", mean_img)))
        smap, mask = paste_maps(rgb.shape[:2], [(s, r.affine, c) for (_, s), r, c in zip(faces, recs, crops)],
                                res.upscale)
        out.append(str(write_image(d / f"{stem}{sfx}_std.png", heatmap(smap, background=res.image, mask=mask))))
    return out
