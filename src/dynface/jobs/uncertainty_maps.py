"""Uncertainty maps of a photo's faces: per-face std maps pasted into the photo frame, and the
`uncertainty/` files a restore job writes (the K-sample statistics are in core/uncertainty.py)."""
from __future__ import annotations


import cv2
import numpy as np

from dynface.core.uncertainty import heatmap


def paste_maps(shape_hw: tuple[int, int], maps, upscale: float = 1.0):
    """Paste per-face float maps into a photo frame of input size `shape_hw`, scaled by `upscale`.

    maps: ``(map (h, w) float, M, crop_size)`` as for `paste_faces` (M: photo -> aligned crop).
    Returns (map, mask) of the output size: map is 0 wherever the union mask is 0; inside, later
    faces are blended over earlier ones with the feathered paste mask, as the faces themselves are."""
    from dynface.face.paste import _up_size, upscale_affine, warp_to_photo

    h, w = shape_hw
    H, W = _up_size(h, w, upscale)
    out = np.zeros((H, W), np.float32)
    union = np.zeros((H, W), np.float32)
    up = upscale_affine(W / w, H / h)
    for fmap, M, cs in maps:
        fmap = np.asarray(fmap, np.float32)
        placed = warp_to_photo(fmap, M, cs, up, (H, W), upscale, cv2.INTER_LINEAR)
        if placed is None:
            continue
        x0, y0, warped, m = placed
        y1, x1 = y0 + m.shape[0], x0 + m.shape[1]
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
