"""5-point alignment templates (left eye, right eye, nose, left mouth, right mouth; viewer's left).

Points are pixel coordinates in a square crop; `template_for(name, size)` scales them to a
``size x size`` crop.  No data is needed at run time: the numbers are constants.

ffhq     The standard FFHQ 512 template of GFPGAN / CodeFormer: facexlib's
         ``FaceRestoreHelper.face_template`` (template_3points=False), copied from
         xinntao/facexlib ``facexlib/utils/face_restoration_helper.py`` (found with the code
         search tool; not derived here).  Cross-check with our detector
         (scripts/make_utk_template.py --check-ffhq ../shared/data/val/real): the mean detected
         landmarks on 58 of the 62 FFHQ-aligned val/real crops are within 0.7 px of it at the
         eyes, 1.9 px at the nose and 4.5 px at the mouth (our detector puts mouth corners a
         little higher), so the convention matches.

utkface  UTKFace "aligned & cropped" framing (tighter than FFHQ), for the embedded 128 model,
         which consumes UTKFace images resized 200 -> 128 (full image, no crop).  Derived by
         scripts/make_utk_template.py (-n 400): RetinaFace (dynface.face.detect, min_score 0.9)
         on 400 UTKFace images evenly spaced in the sorted file list, 395 used (exactly one
         face, box centre within 50 px of the image centre, 5 outliers beyond 4 robust sigma
         dropped), landmarks averaged in the 200x200 frame.  Per-point std 3-7 px at 200 px,
         so the standard error of the mean is < 0.4 px.  At size S the template is
         UTKFACE_200 * S / 200 (at 128: eyes (38.0, 37.6), (88.3, 37.1)).
"""
from __future__ import annotations

import numpy as np

__all__ = ["FFHQ_512", "UTKFACE_200", "TEMPLATES", "template_for", "template_names", "crop_window"]

#: facexlib's standard 5 landmarks for FFHQ-aligned faces at 512 x 512.
FFHQ_512 = np.array([
    [192.98138, 239.94708],
    [318.90277, 240.19360],
    [256.63416, 314.01935],
    [201.26117, 371.41043],
    [313.08905, 371.15118],
], dtype=np.float64)

#: mean detected landmarks of 395 UTKFace aligned&cropped 200 x 200 images (see module doc).
UTKFACE_200 = np.array([
    [59.3758, 58.6962],
    [137.9722, 58.0128],
    [96.8886, 104.3178],
    [64.0802, 136.0291],
    [134.2499, 135.4216],
], dtype=np.float64)

#: name -> (points, the crop size they are given for)
TEMPLATES: dict[str, tuple[np.ndarray, int]] = {
    "ffhq": (FFHQ_512, 512),
    "utkface": (UTKFACE_200, 200),
}
_ALIASES = {"utk": "utkface", "ffhq512": "ffhq", "gfpgan": "ffhq", "codeformer": "ffhq"}


def template_names() -> list[str]:
    return sorted(TEMPLATES)


def template_for(name: str, size: int) -> np.ndarray:
    """The (5, 2) float64 template `name` ("ffhq" or "utkface") for a ``size x size`` crop."""
    if int(size) != size or size < 16:
        raise ValueError(f"template size must be an integer >= 16, got {size!r}")
    pts, base = _template(name)
    return pts * (float(size) / base)


def _template(name: str) -> tuple[np.ndarray, int]:
    """(points, the crop size they are given for) of template `name` or one of its aliases."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TEMPLATES:
        raise ValueError(f"unknown face template {name!r}; choose from {', '.join(template_names())}")
    return TEMPLATES[key]


#: how far from upright one template may sit in another for `crop_window` (its window is axis-aligned)
MAX_WINDOW_ROTATION_DEG = 2.0


def crop_window(inner: str, outer: str, size: int) -> tuple[int, int, int]:
    """Where a whole ``inner``-framed crop lands in an ``outer``-framed ``size x size`` crop:
    (top, left, side) in pixels, rounded, the square clipped to the frame. The least-squares
    similarity between the two templates places it (a UTKFace crop in the FFHQ frame at 128:
    (36, 24, 82), the inner face without hair or background). ValueError if the two templates are
    rotated against each other by more than MAX_WINDOW_ROTATION_DEG or the window misses the frame."""
    from dynface.face.align import estimate_similarity

    pts, base = _template(inner)
    m = estimate_similarity(pts, template_for(outer, size))
    angle = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    if abs(angle) > MAX_WINDOW_ROTATION_DEG:
        raise ValueError(f"template {inner!r} sits {angle:.1f} degrees from upright in {outer!r}: no square window")
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    top, left, side = (round(float(m[1, 2])), round(float(m[0, 2])), round(scale * base))
    top2, left2 = min(size, top + side), min(size, left + side)
    top, left = max(0, top), max(0, left)
    side = min(top2 - top, left2 - left)
    if side < 1:
        raise ValueError(f"template {inner!r} falls outside the {outer!r} frame")
    return top, left, side
