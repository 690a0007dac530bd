"""The fidelity knob (--fidelity w) and the uncertainty map (--samples K) on the tiny model set."""
import math

import numpy as np
import pytest
import torch

from conftest import smooth_image
from tiny_models import SIZE
from dynface.cli import main
from dynface.core.fidelity_control import FIDELITY_DEFAULT, check_fidelity, fidelity_controls
from dynface.core.imageio import read_rgb, to_uint8, write_image
from dynface.core.uncertainty import STD_VMAX, colorize, heatmap, pixel_std, sample_seed
from dynface.jobs.uncertainty_maps import paste_maps
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions
from dynface.sampling.chain import randn


@pytest.fixture(scope="module")
def restorer(ms):
    return Restorer(ModelSet.load(ms))


@pytest.fixture(scope="module")
def y():
    return torch.cat([smooth_image(SIZE, seed=20), smooth_image(SIZE, seed=21)])


def run(restorer, y, **kw):
    return restorer.restore(y, RestoreOptions(**{"precision": "fp32", "steps": 4, **kw}))


# ------------------------------------------------------------------------------------ fidelity
def test_fidelity_mapping_known_values():
    mid = fidelity_controls(None)
    assert mid == fidelity_controls(FIDELITY_DEFAULT)
    assert (mid.sigma_scale, mid.zeta_scale, mid.n_shift) == (1.0, 1.0, 0)
    lo, hi = fidelity_controls(0.0), fidelity_controls(1.0)
    assert (lo.sigma_scale, lo.zeta_scale, lo.n_guidance(3)) == (2.0, 0.5, 1)
    assert (hi.sigma_scale, hi.zeta_scale, hi.n_guidance(3)) == (0.5, 2.0, 4)
    ws = np.linspace(0, 1, 21)
    c = [fidelity_controls(float(w)) for w in ws]
    assert all(a.sigma_scale > b.sigma_scale and a.zeta_scale < b.zeta_scale and a.n_shift <= b.n_shift
               for a, b in zip(c, c[1:]))  # every control moves towards fidelity as w rises


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf"), "high", None])
def test_bad_fidelity_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="fidelity must be a number in \\[0, 1\\]"):
        check_fidelity(bad)


def test_default_fidelity_is_bit_exact(restorer, y):
    base = run(restorer, y)
    assert torch.equal(base.images, run(restorer, y, fidelity=FIDELITY_DEFAULT).images)
    assert not torch.equal(base.images, run(restorer, y, fidelity=0.9).images)


def test_a_model_sets_default_fidelity_applies_when_none_is_given(ms, tmp_path, restorer, y):
    import json
    import shutil

    from dynface.modelset.folder import ModelError

    root = tmp_path / "set"
    shutil.copytree(ms, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.setdefault("defaults", {})["fidelity"] = 1.0
    (root / "manifest.json").write_text(json.dumps(manifest))
    own = Restorer(ModelSet.load(root))
    assert own.resolve(RestoreOptions()).fidelity == 1.0 and restorer.resolve(RestoreOptions()).fidelity is None
    assert torch.equal(run(own, y).images, run(restorer, y, fidelity=1.0).images)
    assert torch.equal(run(own, y, fidelity=0.0).images, run(restorer, y, fidelity=0.0).images)  # a given w wins
    manifest["defaults"]["fidelity"] = 1.5
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="defaults.fidelity = 1.5 is not a finite number in 0..1"):
        ModelSet.load(root)


def test_fidelity_moves_start_step_and_guidances(restorer, y):
    r0, r5, r1 = run(restorer, y, fidelity=0.0), run(restorer, y), run(restorer, y, fidelity=1.0)
    assert (r1.t_start <= r5.t_start).all() and (r5.t_start <= r0.t_start).all()
    assert r0.sigmas_refined.shape[0] == 1 and r5.sigmas_refined.shape[0] == 3 and r1.sigmas_refined.shape[0] == 4
    d = restorer.models.nets["dsst"]
    lo, hi = restorer.models.sigma_range
    assert torch.equal(r1.t_start, d.lookup((r1.sigma_hat * 0.5).clamp(lo, hi)))


def test_fidelity_bad_value_in_library(restorer, y):
    with pytest.raises(ValueError, match="fidelity"):
        run(restorer, y, fidelity=1.5)


# ------------------------------------------------------------------------------------ samples
def test_randn_streams_split_rows_by_generator():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    assert torch.equal(randn((4, 3), [g(5)]), randn((4, 3), g(5)))
    two = randn((4, 3), [g(1), g(2)])
    assert torch.equal(two[:2], randn((2, 3), g(1))) and torch.equal(two[2:], randn((2, 3), g(2)))
    with pytest.raises(ValueError, match="noise streams"):
        randn((5, 3), [g(1), g(2)])


def test_sample_seeds():
    assert sample_seed(7, 0) == 7
    seeds = {sample_seed(s, k) for s in range(5) for k in range(1, 6)}
    assert len(seeds) == 25 and not seeds & set(range(5))


def test_k_samples_in_one_batch(restorer, y):
    one = run(restorer, y, seed=3)
    k3 = run(restorer, y, seed=3, samples=3)
    assert k3.samples.shape == (3, *y.shape) and torch.equal(k3.images, k3.samples[0])
    # sample 0 runs the plain restoration's noise stream (K copies only change the batch size)
    assert torch.allclose(k3.samples[0], one.images, atol=1e-4)
    # sample k is reproducible alone: it is the plain restoration seeded with sample_seed(seed, k)
    alone = run(restorer, y, seed=sample_seed(3, 2))
    assert torch.allclose(k3.samples[2], alone.images, atol=1e-4)
    assert torch.equal(k3.samples, run(restorer, y, seed=3, samples=3).samples)  # same seed, same samples
    assert pixel_std(k3.samples).gt(0).any()
    assert one.samples is None


def test_identical_seeds_give_zero_std(restorer, y, monkeypatch):
    import dynface.pipeline as P

    monkeypatch.setattr(P, "sample_seed", lambda seed, k: seed)
    r = run(restorer, y, samples=4)
    assert pixel_std(r.samples).abs().max().item() == 0.0


def test_deterministic_methods_have_zero_spread_and_idm_samples(restorer, y):
    r = run(restorer, y, method="rm", samples=3)
    assert r.samples.shape[0] == 3 and pixel_std(r.samples).abs().max().item() == 0.0
    idm = run(restorer, y, method="idm", samples=2, seed=4)
    assert idm.samples.shape == (2, *y.shape) and torch.equal(idm.images, idm.samples[0])
    assert torch.allclose(idm.images, run(restorer, y, method="idm", seed=4).images, atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_samples(restorer, y, bad):
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        run(restorer, y, samples=bad)


def test_pixel_std_known_answer():
    a = torch.full((1, 3, 4, 4), 0.4)
    s = pixel_std(torch.stack([a, -a]))  # values 0.2 and -0.2 on [0, 1] scale -> std 0.2
    assert s.shape == (1, 4, 4) and torch.allclose(s, torch.full_like(s, 0.2))
    with pytest.raises(ValueError):
        pixel_std(a[None])


def test_heatmap_framing_and_colour_bar():
    std = np.zeros((40, 30), np.float32)
    std[:, 15:] = STD_VMAX
    hm = heatmap(std)
    assert hm.shape[0] == 40 and hm.shape[1] > 30
    assert (hm[:, :15] == colorize(np.zeros(1))[0]).all() and (hm[:, 15:30] == colorize(np.ones(1))[0]).all()


def test_paste_maps_only_inside_face_masks():
    from dynface.face.align import estimate_similarity
    from dynface.face.templates import template_for

    tmpl = template_for("utkface", 32)
    M = estimate_similarity(tmpl * 2 + np.array([20.0, 10.0]), tmpl)  # a 64-px face at (20, 10) in 120x100
    smap, mask = paste_maps((100, 120), [(np.ones((32, 32), np.float32), M, 32)], upscale=2)
    assert smap.shape == mask.shape == (200, 240)
    assert (smap[mask <= 0] == 0).all() and mask.max() > 0.99
    assert np.allclose(smap[mask > 0], mask[mask > 0], atol=1e-5)  # constant 1 blended with 0 by the mask
    ys, xs = np.nonzero(mask)
    assert 40 <= xs.min() and xs.max() < 40 + 128 + 2 and 20 <= ys.min() and ys.max() < 20 + 128 + 2


# ------------------------------------------------------------------------------------ CLI
def cli(args, ms, capsys):
    try:
        code = main(["restore", *args, "--weights-dir", str(ms), "--steps", "2", "--threads", "1", "-q", "--precision", "fp32"])
    except SystemExit as e:  # argument errors: argparse exits 2 with one line
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--fidelity", "nan"], ["--fidelity", "1.2"], ["--samples", "0"]])
def test_cli_bad_trust_options(ms, tmp_path, capsys, flag):
    write_image(tmp_path / "in" / "a.png", to_uint8(smooth_image(48)))
    code, err = cli([str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--aligned", *flag], ms, capsys)
    assert code != 0 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("model set", "note:"))]
    assert len(lines) == 1 and lines[0].startswith("dynface") and "error:" in lines[0] and "Traceback" not in err


def test_cli_aligned_samples_write_uncertainty(ms, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", to_uint8(smooth_image(48)))
    args = [str(tmp_path / "in"), "--aligned", "--samples", "3", "--fidelity", "0.25"]
    assert cli([*args, "-o", str(tmp_path / "o")], ms, capsys)[0] == 0
    u = tmp_path / "o" / "uncertainty"
    assert sorted(p.name for p in u.iterdir()) == ["a_00_mean.png", "a_00_std.png", "a_mean.png", "a_std.png"]
    face = read_rgb(tmp_path / "o" / "restored_faces" / "a_00.png")
    assert read_rgb(u / "a_00_mean.png").shape == face.shape
    assert read_rgb(u / "a_00_std.png").shape[0] == face.shape[0]  # same framing, colour bar beside
    final = read_rgb(tmp_path / "o" / "final_results" / "a.png")
    assert read_rgb(u / "a_std.png").shape[0] == final.shape[0] and read_rgb(u / "a_mean.png").shape == final.shape
    assert cli([*args, "-o", str(tmp_path / "o2")], ms, capsys)[0] == 0  # same seed, same bytes
    assert (u / "a_00_std.png").read_bytes() == (tmp_path / "o2" / "uncertainty" / "a_00_std.png").read_bytes()


def test_cli_whole_photo_map_pasted_in_frame(ms, tmp_path, capsys, data_dir):
    photo = data_dir / "whole" / "codeformer_00.jpg"
    out = tmp_path / "o"
    assert cli([str(photo), "-o", str(out), "--samples", "2", "--ext", "png"], ms, capsys)[0] == 0
    final = read_rgb(out / "final_results" / "codeformer_00.png")
    n = len(list((out / "restored_faces").iterdir()))
    assert n >= 1 and len(list((out / "uncertainty").glob("codeformer_00_*_std.png"))) == n
    hm = read_rgb(out / "uncertainty" / "codeformer_00_std.png")
    assert hm.shape[0] == final.shape[0] and hm.shape[1] > final.shape[1]
    import cv2

    grey = np.rint(cv2.cvtColor(final, cv2.COLOR_RGB2GRAY).astype(np.float32) * 0.5)
    outside = (hm[:, :final.shape[1]] == grey[..., None]).all(axis=2)
    assert outside.mean() > 0.5 and not outside.all()  # the photo shows through outside the face masks
    assert (out / "uncertainty" / "codeformer_00_mean.png").exists()
