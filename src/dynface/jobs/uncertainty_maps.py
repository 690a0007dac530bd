"""Uncertainty maps of a photo's faces: per-face std maps pasted into the photo frame, and the
`uncertainty/` files a restore job writes (the K-sample statistics are in core/uncertainty.py)."""
from __future__ import annotations

import math

import cv2
import numpy as np

from dynface.core.uncertainty import heatmap


def paste_maps(shape_hw: tuple[int, int], maps, upscale: float = 1.0):
    """Paste per-face float maps into a photo frame of input size `shape_hw`, scaled by `upscale`.

    maps: ``(map (h, w) float, M, crop_size)`` as for `paste_faces` (M: photo -> aligned crop).
    Returns (map, mask) of the output size: map is 0 wherever the union mask is 0; inside, later
    faces are blended over earlier ones with the feathered paste mask, as the faces themselves are."""
    from dynface.face.align import apply_affine, compose_affine, inverse_affine
    from dynface.face.paste import _up_size, face_mask, upscale_affine

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


def write_uncertainty(rgb: np.ndarray, res, stem: str, out_dir, sfx: str, final_ext: str, faces: list) -> list[str]:
    """Write a photo's uncertainty/ files; rgb = the input photo, res = its `WholeResult`,
    `faces[i]` = (mean uint8, std float) of restored record i, in the restored face's framing.

        uncertainty/<stem>_<NN>_mean.png     mean of the K samples (the restored face's framing)
        uncertainty/<stem>_<NN>_std.png      per-pixel std heat map + colour bar (same framing)
        uncertainty/<stem>[_sfx]_mean<ext>   the photo with the mean faces pasted (final_results' frame)
        uncertainty/<stem>[_sfx]_std.png     the std pasted into the photo's frame inside the face masks
    """
    from pathlib import Path

    from dynface.core.imageio import write_image
    from dynface.face.paste import paste_faces

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
