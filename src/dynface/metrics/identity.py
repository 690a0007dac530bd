"""Identity and landmark metrics with dlib: "ID (dlib)" and LMD.

This is **not** ArcFace (the paper's IDA uses ArcFace, which is not available offline here).
It uses dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, 128-D,
99.38 % on LFW; dlib's own rule: same person when the Euclidean distance is < 0.6) and dlib's
68-point shape predictor, as shipped by the ``face-recognition-models`` package.

Face rectangle: dlib's HOG frontal detector on the image (no upsampling; on aligned face
crops it finds the face), the largest detection wins.  If nothing is detected, the whole image
is used as the face rectangle, and the row says so (``face_* = "whole-image"``).

ID (dlib): descriptors of restored and ground truth, each from its own rectangle and 68
landmarks (dlib aligns a 150x150 chip from them), compared by cosine similarity and by
Euclidean distance.

LMD: mean over the 68 points of the L2 distance (pixels) between the landmarks of the restored
image and those of the ground truth.  The landmarks of both come from the *same anchor
rectangle* (the ground-truth detection; else the restored one; else the whole image), so that
detector jitter does not enter the number:

* every landmark set is the average over 9 runs of the predictor on the anchor rectangle moved
  by (-3, 0, +3) px in x and y (dlib's cascade is sensitive to the initial rectangle: one pixel
  can move its output by several pixels on some faces; the average is much steadier);
* for the restored image the anchor is moved by an integer translation t chosen so that the
  predicted landmarks are self-consistent with it (their mean displacement from the GT
  landmarks equals t: a short fixed-point iteration, then a local search minimising
  |mean displacement - t|).  For a pure integer shift of the image by (dx, dy) the exact
  solution t = (dx, dy) exists (the predictor is translation-equivariant when rectangle and
  image move together), so LMD returns sqrt(dx^2 + dy^2).

Running the predictor on the full-image rectangle (the first idea) was measured and rejected:
on 512^2 aligned faces its landmarks are 40-100 px away from those from the detected
rectangle, and it recovers a (6, 8) px shift as 12-80 px.  See docs/metrics.md.
"""
from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "MetricUnavailable", "dlib_model_dir", "face_rect", "landmarks", "face_descriptor",
    "identity", "landmark_distance", "DLIB_SAME_PERSON_DIST",
]

DLIB_SAME_PERSON_DIST = 0.6
_JITTER = [(jx, jy) for jx in (-3, 0, 3) for jy in (-3, 0, 3)]


class MetricUnavailable(RuntimeError):
    """A metric cannot run here (missing package or model file); the message says why."""


def package_dir(package: str, missing: str) -> Path:
    """The folder of an installed package, found without importing it (MetricUnavailable(missing)
    when it is not installed): model files ship inside such packages."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(missing)
    return Path(list(spec.submodule_search_locations)[0])


def dlib_model_dir() -> Path:
    """The models/ folder of the face-recognition-models package, found without importing it
    (its __init__ imports pkg_resources, which new setuptools no longer ships)."""
    d = package_dir("face_recognition_models", "ID (dlib)/LMD need the 'face-recognition-models' package "
                    "(pip install face-recognition-models)") / "models"
    if not d.is_dir():
        raise MetricUnavailable(f"face-recognition-models is installed but {d} is missing")
    return d


@lru_cache(maxsize=1)
def _models():
    try:
        import dlib
    except ImportError as e:
        raise MetricUnavailable(f"ID (dlib)/LMD need dlib (pip install dlib-bin): {e}") from None
    d = dlib_model_dir()
    paths = {k: d / f for k, f in (("sp68", "shape_predictor_68_face_landmarks.dat"),
                                     ("rec", "dlib_face_recognition_resnet_model_v1.dat"))}
    for p in paths.values():
        if not p.is_file():
            raise MetricUnavailable(f"dlib model file missing: {p}")
    return (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(str(paths["sp68"])),
            dlib.face_recognition_model_v1(str(paths["rec"])))


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
    return np.ascontiguousarray(img)


def face_rect(img: np.ndarray) -> tuple[tuple[int, int, int, int], bool]:
    """(left, top, right, bottom) of the largest frontal-detector face, and whether one was
    detected; the whole image (0, 0, W-1, H-1) otherwise."""
    dlib, det, _, _ = _models()
    img = _as_rgb(img)
    dets = det(img, 0)
    if len(dets) == 0:
        h, w = img.shape[:2]
        return (0, 0, w - 1, h - 1), False
    r = max(dets, key=lambda r: r.width() * r.height())
    return (r.left(), r.top(), r.right(), r.bottom()), True


def _rect(rect, t=(0, 0)):
    dlib = _models()[0]
    l, tp, r, b = rect
    return dlib.rectangle(int(l + t[0]), int(tp + t[1]), int(r + t[0]), int(b + t[1]))


def _shape_points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def landmarks(img: np.ndarray, rect, offset=(0, 0), jitter: bool = True) -> np.ndarray:
    """68 landmarks (68, 2) in pixels from the predictor on `rect` moved by `offset`; with
    `jitter`, the mean over the 9 rectangles offset by (-3, 0, 3)^2 px."""
    _, _, sp, _ = _models()
    img = _as_rgb(img)
    offs = _JITTER if jitter else [(0, 0)]
    pts = [_shape_points(sp(img, _rect(rect, (offset[0] + jx, offset[1] + jy)))) for jx, jy in offs]
    return np.mean(pts, axis=0)


def face_descriptor(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """dlib's 128-D face descriptor (float64), and whether a face was detected."""
    _, _, sp, rec = _models()
    img = _as_rgb(img)
    rect, found = face_rect(img)
    shape = sp(img, _rect(rect))
    return np.array(rec.compute_face_descriptor(img, shape), dtype=np.float64), found


def identity(restored: np.ndarray, gt: np.ndarray) -> dict:
    """ID (dlib) of a restored face against its ground truth.

    Returns ``id_cos`` (cosine similarity of the 128-D descriptors, higher is better),
    ``id_dist`` (Euclidean distance, lower is better; < 0.6 = same person by dlib's rule) and
    ``face_restored`` / ``face_gt`` = "detected" or "whole-image".
    """
    e1, f1 = face_descriptor(restored)
    e2, f2 = face_descriptor(gt)
    cos = float(np.dot(e1, e2) / (np.linalg.norm(e1) * np.linalg.norm(e2) + 1e-12))
    return {"id_cos": cos, "id_dist": float(np.linalg.norm(e1 - e2)),
            "face_restored": "detected" if f1 else "whole-image",
            "face_gt": "detected" if f2 else "whole-image"}


def _track_offset(img: np.ndarray, rect, ref_pts: np.ndarray, max_shift: int) -> tuple[tuple[int, int], np.ndarray]:
    """Integer offset t of `rect` whose landmarks on `img` move by t on average from ref_pts."""
    cache: dict[tuple[int, int], tuple[float, np.ndarray, np.ndarray]] = {}

    def ev(t):
        if t not in cache:
            pts = landmarks(img, rect, t)
            d = (pts - ref_pts).mean(axis=0)
            cache[t] = (float(math.hypot(d[0] - t[0], d[1] - t[1])), pts, d)
        return cache[t]

    def clamp(v):
        return int(max(-max_shift, min(max_shift, round(v))))

    t = (0, 0)
    for _ in range(10):  # fixed-point iteration t <- round(mean displacement)
        _, _, d = ev(t)
        nt = (clamp(d[0]), clamp(d[1]))
        if nt == t or nt in cache:
            break
        t = nt
    best = min(cache, key=lambda k: cache[k][0])
    for _ in range(4):  # local search around the best self-consistent offset
        if cache[best][0] < 0.5:
            break
        for ox in (-1, 0, 1):
            for oy in (-1, 0, 1):
                ev((max(-max_shift, min(max_shift, best[0] + ox)), max(-max_shift, min(max_shift, best[1] + oy))))
        nb = min(cache, key=lambda k: cache[k][0])
        if nb == best:
            break
        best = nb
    return best, cache[best][1]


def landmark_distance(restored: np.ndarray, gt: np.ndarray, gt_rect=None) -> dict:
    """LMD (pixels): mean L2 distance of the 68 dlib landmarks, restored vs ground truth.

    `gt_rect` (left, top, right, bottom) may be passed to skip detection.  Returns ``lmd``,
    ``lmd_anchor`` ("gt-detected", "restored-detected" or "whole-image") and ``lmd_offset``
    (the rectangle translation used for the restored image, "dx,dy").
    """
    restored = _as_rgb(restored)
    gt = _as_rgb(gt)
    if restored.shape != gt.shape:
        raise ValueError(f"LMD needs images of the same size: {restored.shape} vs {gt.shape}")
    if gt_rect is not None:
        rect, anchor = tuple(gt_rect), "given"
    else:
        rect, found = face_rect(gt)
        anchor = "gt-detected"
        if not found:
            rect, found = face_rect(restored)
            anchor = "restored-detected" if found else "whole-image"
    ref = landmarks(gt, rect)
    max_shift = max(4, int(0.25 * min(rect[2] - rect[0], rect[3] - rect[1])))
    t, pts = _track_offset(restored, rect, ref, max_shift)
    return {"lmd": float(np.linalg.norm(pts - ref, axis=1).mean()), "lmd_anchor": anchor,
            "lmd_offset": f"{t[0]},{t[1]}"}
