"""Whole-photo face restoration: detect -> align -> restore -> paste back (the geometry; the output
folders of a photo file are `face/folders.py`).

The restorer is any callable ``restore_fn(list of aligned uint8 RGB crops) -> list of uint8
RGB faces`` (same count; each the crop's size, or a uniform multiple of it for a
super-resolving restorer).  It is called once per photo with every face that is large enough.

Face order: faces are sorted left to right by the x of their box centre (ties: top to bottom),
so numbering (``_00``, ``_01`` ...) follows reading order and does not depend on detector
scores.  (facexlib/CodeFormer keep the detector's score order; that order is not stable
across tiny changes in the image, reading order is.)  ``only_center_face`` keeps the face
whose box centre is nearest the image centre (facexlib's ``get_center_face``), preferring
faces large enough to restore.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np

from dynface.face.align import apply_affine, estimate_similarity, inverse_affine, warp_face
from dynface.face.detect import DEFAULT_MIN_SCORE, Face, detect_faces
from dynface.face.paste import paste_faces
from dynface.face.templates import template_for

__all__ = ["FaceRecord", "WholeResult", "restore_whole_image", "reframe_aligned", "sort_faces", "DEFAULT_MIN_FACE"]

RestoreFn = Callable[[list], list]

#: faces whose box is smaller than this (shorter side, input pixels) are not restored
DEFAULT_MIN_FACE = 20
_BOX_RESTORED = (0, 255, 0)
_BOX_SKIPPED = (255, 0, 0)


@dataclass
class FaceRecord:
    """One face of a photo, in input-image pixel coordinates."""

    index: int                      # position in the sorted order (file names use it)
    box: np.ndarray                 # x0, y0, x1, y1
    landmarks: np.ndarray           # (5, 2): left eye, right eye, nose, left mouth, right mouth
    score: float                    # detector score (1.0 for a template in aligned mode)
    skipped: bool = False           # not restored (too small)
    reason: str = ""                # why it was skipped
    source: str = "detected"        # "detected" or "template" (aligned input)
    affine: np.ndarray | None = None      # 2x3 photo -> aligned crop
    cropped: np.ndarray | None = None     # aligned crop given to the restorer
    restored: np.ndarray | None = None    # what the restorer returned

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
            "skipped": self.skipped,
            "reason": self.reason,
            "source": self.source,
        }


@dataclass
class WholeResult:
    image: np.ndarray                            # final uint8 RGB (upscaled size)
    faces: list[FaceRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    upscale: float = 1
    mask: np.ndarray | None = None               # union of paste masks (float32, output size)

    @property
    def restored_records(self) -> list[FaceRecord]:
        return [f for f in self.faces if not f.skipped and f.restored is not None]

    @property
    def cropped_faces(self) -> list[np.ndarray]:
        return [f.cropped for f in self.restored_records]

    @property
    def restored_faces(self) -> list[np.ndarray]:
        return [f.restored for f in self.restored_records]

    @property
    def n_detected(self) -> int:
        return len(self.faces)

    @property
    def n_restored(self) -> int:
        return len(self.restored_records)

    @property
    def n_skipped(self) -> int:
        return sum(f.skipped for f in self.faces)


# --------------------------------------------------------------------------------------------
# helpers

def _crop_wh(crop_size) -> tuple[int, int]:
    if isinstance(crop_size, (int, np.integer)):
        return int(crop_size), int(crop_size)
    w, h = crop_size
    return int(w), int(h)


def _check_rgb(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"expected a uint8 RGB image (H, W, 3), got {desc}")
    return rgb


def _run_restorer(restore_fn: RestoreFn | None, crops: list[np.ndarray]) -> list[np.ndarray]:
    if not crops:
        return []
    if restore_fn is None:
        return [c.copy() for c in crops]
    out = restore_fn(list(crops))
    out = list(out) if out is not None else []
    if len(out) != len(crops):
        raise ValueError(f"restore_fn returned {len(out)} faces for {len(crops)} crops")
    for i, (c, r) in enumerate(zip(crops, out)):
        r = np.asarray(r)
        if r.dtype != np.uint8 or r.ndim != 3 or r.shape[2] != 3:
            raise ValueError(f"restore_fn face {i}: expected uint8 (h, w, 3), got {r.dtype} {r.shape}")
        kh, kw = r.shape[0] / c.shape[0], r.shape[1] / c.shape[1]
        if abs(kh - kw) > 1e-9:
            raise ValueError(f"restore_fn face {i}: size {r.shape[1]}x{r.shape[0]} is not a uniform "
                             f"scaling of the crop {c.shape[1]}x{c.shape[0]}")
        out[i] = r
    return out


def sort_faces(faces: Sequence[Face]) -> list[Face]:
    """Left to right by box centre x, then top to bottom (the documented order)."""
    return sorted(faces, key=lambda f: (round(float(f.center[0]), 3), round(float(f.center[1]), 3)))


def _center_index(faces: Sequence, h: int, w: int) -> int:
    c = np.array([w / 2, h / 2])
    d = [float(np.hypot(*(np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) - c))) for f in faces]
    return int(np.argmin(d))


def _draw_boxes(img: np.ndarray, records: Sequence[FaceRecord], sx: float, sy: float) -> None:
    t = max(1, int(round(2 * max(sx, sy))))
    for r in records:
        x0, y0, x1, y1 = r.box
        p0 = (int(round(sx * x0 + (sx - 1) / 2)), int(round(sy * y0 + (sy - 1) / 2)))
        p1 = (int(round(sx * x1 + (sx - 1) / 2)), int(round(sy * y1 + (sy - 1) / 2)))
        cv2.rectangle(img, p0, p1, _BOX_SKIPPED if r.skipped else _BOX_RESTORED, t)


def _finish(rgb, records, restore_fn, crop_size, upscale, draw_box, warnings, background_up) -> WholeResult:
    """Restore the non-skipped records (their .cropped set) and paste them back."""
    todo = [r for r in records if not r.skipped]
    restored = _run_restorer(restore_fn, [r.cropped for r in todo])
    for r, face in zip(todo, restored):
        r.restored = face
    image, mask = paste_faces(rgb, [(r.restored, r.affine, crop_size) for r in todo], upscale,
                              background_up=background_up, return_mask=True)
    if draw_box and records:
        H, W = image.shape[:2]
        _draw_boxes(image, records, W / rgb.shape[1], H / rgb.shape[0])
    return WholeResult(image=image, faces=list(records), warnings=warnings, upscale=upscale, mask=mask)


# --------------------------------------------------------------------------------------------
# public API

def restore_whole_image(
    rgb: np.ndarray,
    restore_fn: RestoreFn | None,
    template_pts,
    crop_size,
    *,
    aligned: bool = False,
    aligned_template: str = "ffhq",
    only_center_face: bool = False,
    upscale: float = 1,
    min_face: float = DEFAULT_MIN_FACE,
    min_score: float = DEFAULT_MIN_SCORE,
    draw_box: bool = False,
    border: str = "reflect",
    background_up: np.ndarray | None = None,
) -> WholeResult:
    """Restore every face of a photo and paste it back.

    rgb: uint8 RGB photo.  restore_fn: the restorer (None = identity).  template_pts: (5, 2)
    landmark template of the restorer's crop, of size `crop_size` (int or (w, h)), e.g.
    ``template_for("utkface", 128)``.  aligned: the input is already a face crop aligned to
    `aligned_template` (default the FFHQ framing of GFPGAN/CodeFormer); it is re-framed to
    `template_pts` with `reframe_aligned` instead of running the detector (only_center_face,
    min_face and min_score then do not apply).  min_face: faces
    whose box's shorter side is below this many input pixels are reported but not restored.
    upscale >= 1: output scale (background Lanczos-resized unless `background_up` is given).
    draw_box: outline faces on the final image (green restored, red skipped).

    A photo without a (large enough) face is passed through with a warning; nothing raises
    for that.  Returns a `WholeResult`.
    """
    rgb = _check_rgb(rgb)
    if aligned:
        return reframe_aligned(rgb, aligned_template, template_pts, crop_size, restore_fn,
                               upscale=upscale, border=border, draw_box=draw_box, background_up=background_up)
    template_pts = np.asarray(template_pts, dtype=np.float64).reshape(5, 2)
    cw, ch = _crop_wh(crop_size)
    h, w = rgb.shape[:2]
    warnings: list[str] = []

    faces = sort_faces(detect_faces(rgb, min_score=min_score))
    if not faces:
        warnings.append("no face detected; passed through" + (" (background upscaled)" if upscale != 1 else ""))
        return _finish(rgb, [], restore_fn, (cw, ch), upscale, draw_box, warnings, background_up)

    if only_center_face and len(faces) > 1:
        big = [f for f in faces if f.size >= min_face]
        pool = big or faces
        keep = pool[_center_index(pool, h, w)]
        warnings.append(f"only_center_face: kept the face nearest the centre, dropped {len(faces) - 1} other(s)")
        faces = [keep]

    records: list[FaceRecord] = []
    for i, f in enumerate(faces):
        rec = FaceRecord(index=i, box=f.box.copy(), landmarks=f.landmarks.copy(), score=f.score)
        if f.size < min_face:
            rec.skipped = True
            rec.reason = f"too small: {f.size:.0f} px < min_face {min_face:g} px"
            warnings.append(f"face {i:02d} ({f.width:.0f}x{f.height:.0f} px) is smaller than min_face "
                            f"{min_face:g} px; not restored")
        else:
            rec.affine = estimate_similarity(f.landmarks, template_pts)
            rec.cropped = warp_face(rgb, rec.affine, (cw, ch), border=border)
        records.append(rec)
    if all(r.skipped for r in records):
        warnings.append("every detected face is smaller than min_face; passed through")
    return _finish(rgb, records, restore_fn, (cw, ch), upscale, draw_box, warnings, background_up)


def reframe_aligned(
    rgb: np.ndarray,
    src_template_name: str,
    dst_template_pts,
    crop_size,
    restore_fn: RestoreFn | None = None,
    *,
    upscale: float = 1,
    border: str = "reflect",
    draw_box: bool = False,
    background_up: np.ndarray | None = None,
) -> WholeResult:
    """Restore a crop that is already aligned to template `src_template_name` ("ffhq", "utkface").

    The source template is scaled to the input size (x by W, y by H), the similarity between it
    and `dst_template_pts` (the restorer's template for `crop_size`) re-frames the crop (e.g. an
    FFHQ-512 crop to the tighter UTKFace-128 framing), `restore_fn` restores it (None =
    identity), and the result is mapped back into the input's size and framing with the same
    feathered paste as whole photos: outside the re-framed region the input is kept as is.
    """
    rgb = _check_rgb(rgb)
    h, w = rgb.shape[:2]
    cw, ch = _crop_wh(crop_size)
    warnings: list[str] = []
    if h != w:
        warnings.append(f"aligned input is not square ({w}x{h}); template scaled per axis")
    src = template_for(src_template_name, 512) * np.array([w / 512.0, h / 512.0])
    dst = np.asarray(dst_template_pts, dtype=np.float64).reshape(5, 2)
    M = estimate_similarity(src, dst)
    # the crop's footprint in the input, as the face box
    Minv = inverse_affine(M)
    corners = apply_affine(Minv, [[0, 0], [cw - 1, 0], [0, ch - 1], [cw - 1, ch - 1]])
    box = np.array([max(0.0, corners[:, 0].min()), max(0.0, corners[:, 1].min()),
                    min(float(w), corners[:, 0].max() + 1), min(float(h), corners[:, 1].max() + 1)])
    rec = FaceRecord(index=0, box=box, landmarks=src, score=1.0, source="template", affine=M,
                     cropped=warp_face(rgb, M, (cw, ch), border=border))
    return _finish(rgb, [rec], restore_fn, (cw, ch), upscale, draw_box, warnings, background_up)
