"""Is an image one aligned face? Detection plus the 5 landmarks against an alignment template.

`check_framing(rgb, template)` detects faces (dynface.face.detect) and compares the landmarks of
the best one with `template` scaled to the image, as distances divided by the image side (one
threshold serves every size). The eyes fix the alignment and must sit close to the template; the
nose tip and mouth corners move with head pose and expression, so they get a wider bound. The
bounds hold for every one of 60 real FFHQ-aligned studio faces (`london/`: eyes at most 0.016,
nose 0.051, mouth 0.038) and of 48 generator faces at psi 0.7 (eyes 0.032, nose 0.114, mouth
0.054). It is how `dynface synth` vets the faces it writes; it applies to any aligned folder.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynface.face.detect import detect_faces
from dynface.face.templates import template_for

#: largest eye-landmark distance to the template, as a share of the image side, still aligned
MAX_EYE_DEVIATION = 0.04
#: the same for any of the 5 landmarks (the nose tip moves with head pose)
MAX_DEVIATION = 0.12
#: detection analysis size: enough for an aligned face, and fast (larger images are downsampled)
DETECT_SIDE = 512


@dataclass(frozen=True)
class FramingCheck:
    faces: int                  # faces found (score >= the detector's default threshold)
    score: float                # the best face's score (0 when none)
    eye_deviation: float        # max eye-landmark distance to the template / image side (inf when none)
    deviation: float            # the same over all 5 landmarks
    ok: bool
    reason: str                 # "" when ok, else what failed


def check_framing(rgb: np.ndarray, template: str = "ffhq", max_eye_deviation: float = MAX_EYE_DEVIATION,
                  max_deviation: float = MAX_DEVIATION) -> FramingCheck:
    """One face, its eyes within `max_eye_deviation` and all 5 landmarks within `max_deviation`
    (shares of the side) of `template` (uint8 RGB, square)."""
    h, w = rgb.shape[:2]
    inf = float("inf")
    if h != w:
        return FramingCheck(0, 0.0, inf, inf, False, f"not square ({w}x{h})")
    faces = detect_faces(rgb, max_side=DETECT_SIDE)
    if not faces:
        return FramingCheck(0, 0.0, inf, inf, False, "no face found")
    best = faces[0]
    dist = np.linalg.norm(best.landmarks - template_for(template, w), axis=1) / w
    eye, dev = float(dist[:2].max()), float(dist.max())
    if len(faces) > 1:
        return FramingCheck(len(faces), best.score, eye, dev, False, f"{len(faces)} faces found")
    if eye > max_eye_deviation:
        return FramingCheck(1, best.score, eye, dev, False,
                            f"eyes {eye:.3f} x side from the {template} template (max {max_eye_deviation})")
    if dev > max_deviation:
        return FramingCheck(1, best.score, eye, dev, False,
                            f"landmarks {dev:.3f} x side from the {template} template (max {max_deviation})")
    return FramingCheck(1, best.score, eye, dev, True, "")
