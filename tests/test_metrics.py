"""Known-answer tests for dynface.metrics (PSNR/SSIM, ID (dlib), LMD, NIQE, FID/KID, evaluate).

Faces come from ../shared/data/val/clean (research data, never committed); tests that need them
skip with a reason when it is absent.  Everything runs on one thread.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d
from scipy.stats import norm

from dynface.core.imageio import read_rgb, write_image
from dynface.metrics import fidelity, noref
from dynface.metrics.evaluate import evaluate
from dynface.metrics.matching import match_files
from dynface.metrics.report import format_table, write_report

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLEAN = DATA / "val" / "clean"


def _needs_data():
    if not CLEAN.is_dir():
        pytest.skip(f"shared data not found at {CLEAN}")


def _face(name: str, size: int | None = None) -> np.ndarray:
    _needs_data()
    p = CLEAN / name
    if not p.exists():
        pytest.skip(f"{p} not found")
    img = read_rgb(p)
    if size is not None and img.shape[0] != size:
        import cv2
        interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2
    return img.copy() if sigma == 0 else cv2.GaussianBlur(img, (0, 0), sigma)


def _synthetic(h=96, w=128, seed=0, lo=0, hi=255) -> np.ndarray:
    """Smooth colour image with edges, values in [lo, hi]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in (0.0, 1.0, 2.0)], -1)
    base += 0.5 * ((xx > 0.4) & (yy < 0.6))[..., None]
    base += 0.05 * rng.standard_normal(base.shape)
    base = (base - base.min()) / (base.max() - base.min())
    return np.round(lo + (hi - lo) * base).astype(np.uint8)


# ------------------------------------------------------------------ PSNR / SSIM

def test_identical_images_psnr_inf_ssim_one():
    img = _synthetic()
    for y in (False, True):
        assert fidelity.psnr(img, img, y_channel=y) == math.inf
        assert fidelity.ssim(img, img, y_channel=y) == pytest.approx(1.0, abs=1e-12)


def _expected_mse_noisy(img: np.ndarray, sigma: float) -> float:
    """E[(clip(round(x + n), 0, 255) - x)^2], n ~ N(0, sigma^2), averaged over the pixels x."""
    vals, counts = np.unique(img, return_counts=True)
    k = np.arange(256.0)
    total = 0.0
    for x, c in zip(vals.astype(float), counts):
        hi = norm.cdf((k + 0.5 - x) / sigma)
        lo = norm.cdf((k - 0.5 - x) / sigma)
        hi[-1], lo[0] = 1.0, 0.0            # clipping puts the tails on 0 and 255
        total += c * np.sum((hi - lo) * (k - x) ** 2)
    return total / img.size


def _add_noise(img, sigma, seed=1):
    n = np.random.default_rng(seed).normal(0.0, sigma, img.shape)
    return np.clip(np.round(img + n), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma", [5.0, 15.0])
def test_psnr_of_gaussian_noise_matches_theory(sigma):
    # values in [64, 191]: clipping is > 4 sigma away, so PSNR = 10 log10(255^2 / (sigma^2 + 1/12))
    # (the 1/12 is the variance rounding to uint8 adds), i.e. ~ 20 log10(255 / sigma)
    img = _synthetic(256, 256, lo=64, hi=191)
    noisy = _add_noise(img, sigma)
    theory = 10 * math.log10(255 ** 2 / (sigma ** 2 + 1 / 12))
    assert fidelity.psnr(noisy, img) == pytest.approx(theory, abs=0.05)
    assert fidelity.psnr(noisy, img) == pytest.approx(20 * math.log10(255 / sigma), abs=0.06)
    # Y channel: independent noise per channel -> variance scaled by sum of squared BT.601 weights
    wy = np.array([65.481, 128.553, 24.966]) / 255
    theory_y = 10 * math.log10(255 ** 2 / ((sigma ** 2 + 1 / 12) * np.sum(wy ** 2)))
    assert fidelity.psnr(noisy, img, y_channel=True) == pytest.approx(theory_y, abs=0.05)


def test_psnr_of_noise_with_clipping_matches_exact_expectation():
    img = _synthetic(256, 256, lo=0, hi=255)
    img = np.clip((img.astype(int) - 128) * 3 + 128, 0, 255).astype(np.uint8)  # ~40 % saturated
    sigma = 25.0
    noisy = _add_noise(img, sigma, seed=3)
    expected = 10 * math.log10(255 ** 2 / _expected_mse_noisy(img, sigma))
    naive = 20 * math.log10(255 / sigma)
    got = fidelity.psnr(noisy, img)
    assert got == pytest.approx(expected, abs=0.05)
    assert got > naive + 1.0  # clipping removes error: the naive formula is > 1 dB off here


def test_ssim_matches_direct_2d_window_and_drops_with_noise():
    img = _synthetic(64, 80)
    noisy = _add_noise(img, 10.0)
    # reference: explicit 11x11 Gaussian window, valid 2-D convolution, per channel
    g = fidelity.gaussian_window(11, 1.5)
    win = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(3):
        a, b = img[..., c].astype(float), noisy[..., c].astype(float)
        f = lambda z: convolve2d(z, win, mode="valid")  # noqa: E731
        mu1, mu2 = f(a), f(b)
        s1, s2, s12 = f(a * a) - mu1 ** 2, f(b * b) - mu2 ** 2, f(a * b) - mu1 * mu2
        vals.append(np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))))
    assert fidelity.ssim(noisy, img) == pytest.approx(np.mean(vals), abs=1e-10)
    assert fidelity.ssim(img, noisy) == pytest.approx(fidelity.ssim(noisy, img), abs=1e-12)
    assert fidelity.ssim(_add_noise(img, 30.0), img) < fidelity.ssim(noisy, img) < 1.0


def test_mean_psnr_excludes_inf_and_counts_it():
    assert fidelity.mean_psnr([math.inf, 30.0, 40.0]) == (35.0, 1)
    m, n = fidelity.mean_psnr([math.inf, math.inf])
    assert m == math.inf and n == 2
    with pytest.raises(ValueError):
        fidelity.psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


# ------------------------------------------------------------------ ID (dlib) and LMD

@pytest.fixture(scope="module")
def dlib_ok():
    from dynface.metrics.identity import MetricUnavailable, _models
    try:
        _models()
    except MetricUnavailable as e:
        pytest.skip(str(e))


def test_identity_mirror_keeps_person_other_face_does_not(dlib_ok):
    from dynface.metrics.identity import identity
    a = _face("pgdiff_00042.png")
    same = identity(a[:, ::-1].copy(), a)
    assert same["face_restored"] == same["face_gt"] == "detected"
    assert same["id_dist"] < 0.4 and same["id_cos"] > 0.9
    other = identity(_face("hfgi_00044.jpg", 512), a)
    assert other["id_dist"] > 0.6 and other["id_cos"] < same["id_cos"] - 0.05
    ident = identity(a, a)
    assert ident["id_dist"] == pytest.approx(0.0, abs=1e-9) and ident["id_cos"] == pytest.approx(1.0, abs=1e-9)


def _shift(img, dx, dy):
    import cv2
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("name,size,dx,dy", [("pgdiff_00042.png", None, 3, 4), ("pgdiff_00042.png", None, -6, 8),
                                             ("hfgi_00044.jpg", None, 5, -2)])
def test_lmd_of_shifted_image_is_the_shift(dlib_ok, name, size, dx, dy):
    from dynface.metrics.identity import landmark_distance
    img = _face(name, size)
    out = landmark_distance(_shift(img, dx, dy), img)
    assert out["lmd_anchor"] == "gt-detected"
    assert out["lmd"] == pytest.approx(math.hypot(dx, dy), rel=0.05)
    assert landmark_distance(img, img)["lmd"] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ NIQE / BRISQUE

def test_matlab_imresize_basics():
    const = np.full((40, 30), 77.0)
    assert np.allclose(noref.matlab_imresize(const, 0.5), 77.0)
    assert noref.matlab_imresize(np.zeros((41, 30)), 0.5).shape == (21, 15)
    ramp = np.tile(np.arange(32.0), (8, 1))  # a linear ramp stays linear in the interior
    out = noref.matlab_imresize(ramp, 0.5)[:, 3:-3]
    assert np.allclose(np.diff(out, axis=1), 2.0, atol=1e-9)


def test_niqe_increases_with_blur_on_a_face():
    face = _face("pgdiff_00042.png")
    scores = [noref.niqe(_blur(face, s)) for s in (0, 1.5, 3.0)]
    assert scores[0] < scores[1] < scores[2], scores
    assert 2.0 < scores[0] < 8.0


def test_niqe_agrees_with_basicsr_value():
    # basicsr 1.4.2 calculate_niqe(img_bgr, crop_border=0) on this file gives 4.45327 (basicsr
    # computes in float32; this implementation in float64 -> agreement within 0.2 %).
    face = _face("pgdiff_00042.png")
    assert noref.niqe(face) == pytest.approx(4.45327, rel=2e-3)


def test_brisque_runs_or_says_why():
    ok, why = noref.brisque_available()
    if not ok:
        assert "BRISQUE unavailable" in why
        with pytest.raises(Exception, match="BRISQUE unavailable"):
            noref.brisque(_synthetic())
    else:
        assert math.isfinite(noref.brisque(_synthetic(128, 128)))


# ------------------------------------------------------------------ FID / KID

@pytest.fixture(scope="module")
def few_faces():
    _needs_data()
    names = ["pgdiff_00010.png", "pgdiff_00042.png", "pgdiff_00070.png", "mat_test1.png",
             "hfgi_00044.jpg", "hfgi_00418.jpg"]
    return [_face(n, 256) for n in names]


@pytest.fixture(scope="module")
def inception_ok():
    from dynface.metrics.fid import load_inception
    from dynface.metrics.identity import MetricUnavailable
    try:
        load_inception()
    except MetricUnavailable as e:
        pytest.skip(str(e))


def test_fid_kid_zero_against_itself_and_monotone_in_blur(inception_ok, few_faces):
    from dynface.metrics.fid import fid_from_features, inception_features, kid_from_features
    ref = inception_features(few_faces)
    assert ref.shape == (len(few_faces), 2048)
    assert abs(fid_from_features(ref, ref)) < 1e-2
    assert kid_from_features(ref, ref, paired=True) == pytest.approx(0.0, abs=1e-12)
    # the independent-sets estimator is O(1/m) negative on identical sets, by a known amount
    m, k = len(ref), (ref @ ref.T / ref.shape[1] + 1) ** 3
    closed = -2 / (m * (m - 1)) * (np.trace(k) / m - k.sum() / m ** 2) * m
    assert kid_from_features(ref, ref) == pytest.approx(closed, rel=1e-9)
    fids, kids = [], []
    for s in (1.0, 2.5, 5.0):
        f = inception_features([_blur(im, s) for im in few_faces])
        fids.append(fid_from_features(f, ref))
        kids.append(kid_from_features(f, ref, paired=True))
    assert 0 < fids[0] < fids[1] < fids[2], fids
    assert kids[0] < kids[1] < kids[2], kids


def test_fid_trace_methods_agree():
    from dynface.metrics.fid import fid_from_features
    rng = np.random.default_rng(0)
    for n1, n2 in ((10, 12), (50, 60)):  # fewer and more samples than the 32 dimensions
        a, b = rng.random((n1, 32)), 1.1 * rng.random((n2, 32)) + 0.05
        ref = fid_from_features(a, b, method="sqrtm")
        for m in ("svd", "eigh", "auto"):
            assert fid_from_features(a, b, method=m) == pytest.approx(ref, rel=1e-6)
        assert abs(fid_from_features(a, a)) < 1e-9


def test_kid_subsets_use_stylegan_formula():
    rng = np.random.default_rng(0)
    a, b = rng.random((30, 16)), rng.random((25, 16)) + 0.2
    m = 10
    from dynface.metrics.fid import kid_from_features
    got = kid_from_features(a, b, num_subsets=5, subset_size=m, seed=7)
    r = np.random.default_rng(7)
    t = 0.0
    for _ in range(5):  # StyleGAN3 metrics/kernel_inception_distance.py
        x, y = a[r.choice(30, m, replace=False)], b[r.choice(25, m, replace=False)]
        aa = (x @ x.T / 16 + 1) ** 3 + (y @ y.T / 16 + 1) ** 3
        bb = (x @ y.T / 16 + 1) ** 3
        t += (aa.sum() - np.diag(aa).sum()) / (m - 1) - bb.sum() * 2 / m
    assert got == pytest.approx(t / 5 / m, rel=1e-12)
    assert got > 0


# ------------------------------------------------------------------ evaluate / reports

def test_match_files_rules(tmp_path):
    gt = [tmp_path / n for n in ("a.png", "b_x.jpg", "b.png", "c.png")]
    rs = [tmp_path / n for n in ("a.png", "b_00.png", "b_x_01.png", "c_restored.png", "zzz.png")]
    m = match_files(rs, gt)
    assert [(m[r][0].name if m[r][0] else None, m[r][1]) for r in rs] == [
        ("a.png", "exact"), ("b.png", "suffix"), ("b_x.jpg", "suffix"), ("c.png", "prefix"), (None, "none")]


def test_evaluate_synthetic_folder_reports_and_bad_image(tmp_path):
    gt, rs = tmp_path / "gt", tmp_path / "restored"
    gt.mkdir()
    rs.mkdir()
    imgs = [_synthetic(120, 120, seed=s) for s in range(3)]
    for i, im in enumerate(imgs):
        write_image(gt / f"f{i}.png", im)
    write_image(rs / "f0_00.png", imgs[0])                      # identical -> PSNR inf
    write_image(rs / "f1_00.png", _add_noise(imgs[1], 10.0))
    write_image(rs / "f2.png", _add_noise(imgs[2], 20.0))
    (rs / "broken.png").write_bytes(b"not an image")
    res = evaluate(rs, gt, metrics="psnr,ssim,niqe,lpips")
    rows = {r["name"]: r for r in res.rows}
    assert rows["broken.png"]["status"].startswith("error:")
    assert rows["f0_00.png"]["psnr"] == math.inf and rows["f0_00.png"]["match"] == "suffix"
    assert rows["f2.png"]["match"] == "exact"
    assert res.means["psnr_n_inf"] == 1
    assert res.means["psnr"] == pytest.approx((rows["f1_00.png"]["psnr"] + rows["f2.png"]["psnr"]) / 2)
    assert res.counts["ssim"] == 3 and "lpips" in res.skipped and res.n_errors == 1
    paths = write_report(res, tmp_path / "out")
    doc = json.loads(paths["json"].read_text())
    assert doc["rows"][[r["name"] for r in doc["rows"]].index("f0_00.png")]["psnr"] == "inf"
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert table[-1]["name"] == "MEAN" and float(table[-1]["psnr"]) == pytest.approx(res.means["psnr"], rel=1e-5)
    text = format_table(res)
    assert "MEAN" in text and "skipped lpips" in text and "broken.png" in text


def test_run_eval_cli(tmp_path, capsys):
    from argparse import Namespace
    from dynface.cli.eval import run_eval_cli
    (tmp_path / "gt").mkdir()
    (tmp_path / "r").mkdir()
    img = _synthetic(100, 100)
    write_image(tmp_path / "gt" / "a.png", img)
    write_image(tmp_path / "r" / "a_00.png", _add_noise(img, 8.0))
    args = Namespace(restored=str(tmp_path / "r"), gt=str(tmp_path / "gt"), ref=None, output=str(tmp_path / "o"),
                     metrics="psnr,ssim", y_channel=True)
    assert run_eval_cli(args) == 0
    assert (tmp_path / "o" / "metrics.csv").exists() and (tmp_path / "o" / "metrics.json").exists()
    assert "PSNR(Y)" in capsys.readouterr().out
    assert run_eval_cli(Namespace(restored=str(tmp_path / "missing"))) == 2


def test_evaluate_faces_all_metrics(tmp_path, dlib_ok, inception_ok):
    _needs_data()
    gt, rs = tmp_path / "gt", tmp_path / "restored"
    gt.mkdir()
    rs.mkdir()
    for n in ("pgdiff_00042.png", "pgdiff_00010.png", "hfgi_00044.jpg"):
        face = _face(n)
        write_image(gt / (Path(n).stem + ".png"), face)
        small = _face(n, 256)                                  # restored at half size: gt gets resized
        write_image(rs / (Path(n).stem + "_00.png"), _blur(small, 1.0))
    res = evaluate(rs, gt)
    assert res.n_errors == 0
    for k in ("psnr", "ssim", "id_cos", "id_dist", "lmd", "niqe"):
        assert math.isfinite(res.means[k]), k
    assert res.means["id_dist"] < 0.6 and res.means["lmd"] < 6
    assert res.set_info["kid_estimator"] == "paired U-statistic"
    assert res.set_metrics["fid"] > 0 and res.set_metrics["kid"] > 0
    assert any("gt resized" in r["note"] for r in res.rows)
    json.loads(write_report(res, tmp_path / "out")["json"].read_text())


def test_paired_psnr_reports_the_per_face_gain_of_a_candidate(tmp_path, capsys):
    """benchmarks/paired_psnr.py: halving a uniform error gains 20·log10(2) = 6.02 dB on every face."""
    from conftest import load_script

    mod = load_script("benchmarks/paired_psnr.py")
    gt = np.full((16, 16, 3), 100, np.uint8)
    for name, err in (("base", 10), ("cand", 5)):
        for i in range(3):
            write_image(tmp_path / name / "gt" / f"f{i}.png", gt)
            write_image(tmp_path / name / "RM_only" / f"f{i}.png", gt + err)
    d = mod.paired(tmp_path / "base", tmp_path / "cand", "RM_only")
    assert d == pytest.approx([20 * np.log10(2)] * 3)
    assert mod.main([str(tmp_path / "base"), str(tmp_path / "cand"), "-o", str(tmp_path / "t.md")]) == 0
    assert "| RM_only | 3 | +6.021 | 0.000 | 3/3 |" in (tmp_path / "t.md").read_text()
    assert mod.main([str(tmp_path), str(tmp_path / "cand")]) == 2  # not a bench folder: one line, exit 2
    assert "not a bench output folder" in capsys.readouterr().err
