"""Learning curves: metrics with known answers, the curve file, cumulative counts, and
a training run that checkpoints when asked to stop."""
import os
import signal

import pytest
import torch

from conftest import faces_with_val_split, rm_config, shipped_rm, smooth_image
from tiny_models import ARCH, SIZE
from dynface.core.imagemetrics import detail_ratio, psnr
from dynface.core.kernels import gaussian_blur
from dynface.modelset.checkpoint import read_metadata
from dynface.modelset.weights import load_torch_file
from dynface.training.curves import append_row, plot_curve, read_curve
from dynface.training.loop import train
from dynface.training.losses import fft_loss


def test_psnr_and_detail_ratio_known_answers():
    x = smooth_image(SIZE, seed=1)
    assert psnr(x.clamp(-0.8, 0.8) + 0.1, x.clamp(-0.8, 0.8)) == pytest.approx(26.0206, abs=1e-3)  # 0.05 in [0,1]
    assert detail_ratio(x, x) == pytest.approx(1.0)
    blurred = gaussian_blur(x, torch.tensor([1.5]))
    assert detail_ratio(blurred, x) < 0.7  # blur removes fine detail
    assert detail_ratio(x, blurred) > 1.4


def test_fft_loss_is_zero_only_for_equal_images_and_sees_fine_detail():
    x = smooth_image(SIZE, seed=2)
    assert float(fft_loss(x, x)) == 0.0
    blurred = gaussian_blur(x, torch.tensor([1.0]))
    noise = 0.02 * torch.randn_like(x)
    assert float(fft_loss(blurred, x)) > 0 and float(fft_loss(x + noise, x)) > 0


def test_curve_rows_round_trip_and_plot(tmp_path):
    p = tmp_path / "curve.csv"
    append_row(p, {"step": 10, "images": 80, "wall_h": 0.1, "psnr": 25.5, "detail_ratio": 0.4})
    append_row(p, {"step": 20, "images": 160, "wall_h": 0.2, "psnr": 25.75, "detail_ratio": 0.45})
    rows = read_curve(p)
    assert [r["step"] for r in rows] == [10, 20] and rows[1]["psnr"] == pytest.approx(25.75)
    png = plot_curve(p, tmp_path / "curve.png", "test")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_curve_counts_are_cumulative_from_the_shipped_weights(tmp_path):
    cfg = rm_config(tmp_path, shipped_rm(tmp_path))
    out = train("rm", cfg, run_dir=tmp_path / "run", progress=False)
    rows = read_curve(tmp_path / "run" / "curve.csv")
    assert [r["step"] for r in rows] == [100, 102, 104]  # the shipped weights first, then every eval_every
    assert [r["images"] for r in rows] == [800, 804, 808]
    assert rows[0]["wall_h"] == pytest.approx(1.0, abs=0.01)
    assert {"psnr", "ssim", "detail_ratio", "input_psnr"} <= set(rows[0])
    assert (tmp_path / "run" / "curve.png").exists()
    meta = read_metadata(out)
    assert meta["iters"] == 104 and meta["images"] == 808 and meta["run_iters"] == 4 and meta["cpu"]
    # resuming does not evaluate the start again, and keeps counting
    train("rm", cfg, run_dir=tmp_path / "run", resume=True, iters=6, progress=False)
    assert [r["step"] for r in read_curve(tmp_path / "run" / "curve.csv")] == [100, 102, 104, 106]


def test_sigterm_checkpoints_and_stops(tmp_path, monkeypatch):
    import dynface.training.loop as tr

    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "iters": 10_000, "ckpt_every": 10_000, "eval_every": 0}
    real = tr.LOSSES["rm"]

    def loss_then_signal(model, ctx):
        if ctx.step == 2:  # SIGTERM arrives during the third iteration
            os.kill(os.getpid(), signal.SIGTERM)
        return real(model, ctx)

    monkeypatch.setitem(tr.LOSSES, "rm", loss_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    train("rm", cfg, run_dir=tmp_path / "run", progress=False)
    ck = load_torch_file(tmp_path / "run" / "ckpt.pt")
    assert ck["step"] == 3  # that iteration finished and was saved, then the run stopped
    assert signal.getsignal(signal.SIGTERM) == before  # the caller's handler is back


def test_a_stop_during_an_evaluation_cuts_it_short_and_the_resumed_run_takes_that_row(tmp_path, monkeypatch):
    """SIGTERM while a curve row is measured: the run stops at once (checkpoint at that step, row
    dropped); resumed, it measures that row first and ends with the straight run's curve."""
    import time

    from dynface.training.curves import Validator

    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "iters": 6}
    train("rm", cfg, run_dir=tmp_path / "straight", progress=False)
    straight = read_curve(tmp_path / "straight" / "curve.csv")

    real, calls = Validator._rm, []

    def slow_row_then_signal(self, net):
        calls.append(1)
        if len(calls) == 2:  # the row at the second evaluation (step 2): a stop arrives mid-row
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)  # the rest of a long row, never waited for
        return real(self, net)

    monkeypatch.setattr(Validator, "_rm", slow_row_then_signal)
    t0 = time.time()
    train("rm", cfg, run_dir=tmp_path / "run", progress=False)
    assert time.time() - t0 < 30
    assert load_torch_file(tmp_path / "run" / "ckpt.pt")["step"] == 2
    assert [r["step"] for r in read_curve(tmp_path / "run" / "curve.csv")] == [100]
    train("rm", cfg, run_dir=tmp_path / "run", resume=True, progress=False)
    assert read_curve(tmp_path / "run" / "curve.csv") == [{**r, "wall_h": r2["wall_h"]} for r, r2 in
                                                        zip(straight, read_curve(tmp_path / "run" / "curve.csv"))]
    assert len(calls) == 5  # start, the cut row, the same row again, then steps 4 and 6


def test_dgsa_curve_is_the_default_restoration_with_the_candidate_map(tmp_path):
    """The DGSA validator scores what `dynface restore` would return with the candidate DGSA; a
    short re-fit run (frozen nets and DSST named from a model folder) writes those columns."""
    from tiny_models import make_tiny_modelset
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import RestoreOptions, Restorer
    from dynface.training.curves import Validator
    from dynface.training.loop import build_trainable, load_frozen

    root = make_tiny_modelset(tmp_path / "set")
    cfg = {"kind": "dgsa", "data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "seed": 2,
           "stage1_iters": 0, "iters": 2, "batch": 2, "lr": 1e-3, "warmup": 1, "precision": "fp32",
           "ckpt_every": 2, "log_every": 1, "eval_every": 2, "val_faces": 3, "dgsa_val_faces": 2,
           "cache_dir": str(tmp_path / "cache"), "sigma_grid": [0.1, 3.0, 30], "eps": 0.025, "zeta": 0.5,
           "sampler_steps": 4, "degradation": {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]},
           "modelset": str(root), "init_from": {"path": str(root / "dgsa.safetensors")}, "dsst": str(root / "dsst.json"),
           "frozen": {k: str(root / f"{k}.safetensors") for k in ("prior", "rm", "tm", "sde")}, "arch": ARCH["dgsa"]}
    v = Validator("dgsa", cfg, load_frozen("dgsa", cfg))
    scores = v(build_trainable("dgsa", cfg))
    ms = ModelSet.load(root)
    want = Restorer(ms).restore(v.y[:2], RestoreOptions(seed=0)).images.float().clamp(-1, 1)
    assert scores["psnr"] == pytest.approx(psnr(want, v.x[:2]), abs=1e-4)
    assert scores["detail_ratio"] == pytest.approx(detail_ratio(want, v.x[:2]), abs=1e-4)
    assert "niqe" not in scores  # NIQE needs 96-pixel blocks; the tiny set is 32 px
    train("dgsa", cfg, run_dir=tmp_path / "run", progress=False)
    rows = read_curve(tmp_path / "run" / "curve.csv")
    assert [r["step"] for r in rows] == [0, 2] and {"psnr", "detail_ratio"} <= set(rows[-1])
    assert rows[0]["psnr"] == pytest.approx(scores["psnr"], abs=1e-4)  # the start is the shipped map


def test_a_metric_added_to_a_running_curve_gets_its_column(tmp_path):
    p = tmp_path / "curve.csv"
    append_row(p, {"step": 10, "x0_psnr_t300": 25.0})
    append_row(p, {"step": 20, "x0_psnr_t300": 25.5, "restored_psnr": 24.0})
    rows = read_curve(p)
    assert rows == [{"step": 10, "x0_psnr_t300": 25.0}, {"step": 20, "x0_psnr_t300": 25.5, "restored_psnr": 24.0}]
    assert p.read_text().splitlines()[0] == "step,x0_psnr_t300,restored_psnr"
    from PIL import Image

    png = plot_curve(p, tmp_path / "curve.png", "prior", sessions=[10, 20])
    assert Image.open(png).size[0] == 2 * 360  # a panel each (3.6 in at 100 dpi): the new metric is drawn too


def test_prior_curve_scores_the_default_restoration_with_the_candidate_prior(tmp_path):
    """restore_val_faces > 0: the prior's curve also has what `dynface restore` returns with it."""
    from tiny_models import make_tiny_modelset
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import RestoreOptions, Restorer
    from dynface.training.curves import Validator

    root = make_tiny_modelset(tmp_path / "set")
    cfg = {"data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "val_faces": 3,
           "restore_val_faces": 2, "cache_dir": str(tmp_path / "cache"), "modelset": str(root),
           "degradation": {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]}}
    ms = ModelSet.load(root)
    v = Validator("prior", cfg)
    scores = v(ms.nets["prior"])
    want = Restorer(ms).restore(v.y[:2], RestoreOptions(seed=0)).images.float().clamp(-1, 1)
    assert scores["restored_psnr"] == pytest.approx(psnr(want, v.x[:2]), abs=1e-4)
    assert scores["restored_detail_ratio"] == pytest.approx(detail_ratio(want, v.x[:2]), abs=1e-4)
    assert {"x0_psnr_t100", "x0_psnr_t300", "x0_psnr_t600"} <= set(scores)
    assert "restored_psnr" not in Validator("prior", {**cfg, "restore_val_faces": 0})(ms.nets["prior"])


def test_prior_curve_restores_the_faces_of_restore_val_data_at_restore_fidelity(tmp_path):
    """restore_val_data: the restored columns come from another folder's faces (degraded as the
    curve's are); restore_fidelity: at that fidelity; the x0_hat columns keep the curve's faces."""
    from tiny_models import make_tiny_modelset
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import RestoreOptions, Restorer
    from dynface.training import data as data_mod
    from dynface.training.curves import Validator, degrade_val

    root = make_tiny_modelset(tmp_path / "set")
    other = faces_with_val_split(tmp_path / "other", n_train=2, n_val=0)  # faces the curve does not score
    deg = {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]}
    cfg = {"data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "val_faces": 3,
           "restore_val_faces": 2, "cache_dir": str(tmp_path / "cache"), "modelset": str(root),
           "degradation": deg, "restore_val_data": str(other), "restore_fidelity": 0.25}
    ms = ModelSet.load(root)
    v = Validator("prior", cfg)
    scores = v(ms.nets["prior"])
    x = data_mod.load_cache(other, SIZE, "all", cache_dir=str(tmp_path / "cache"), limit=2).float().div(127.5).sub(1)
    want = Restorer(ms).restore(degrade_val(x, deg), RestoreOptions(seed=0, fidelity=0.25)).images.float().clamp(-1, 1)
    assert scores["restored_psnr"] == pytest.approx(psnr(want, x), abs=1e-4)
    plain = Validator("prior", {**cfg, "restore_val_data": None, "restore_fidelity": None})(ms.nets["prior"])
    assert plain["restored_psnr"] != pytest.approx(scores["restored_psnr"], abs=1e-3)
    assert plain["x0_psnr_t100"] == scores["x0_psnr_t100"]
    assert not any(k.startswith("restored_default_") for k in scores)
    both = Validator("prior", {**cfg, "restore_default_too": True})(ms.nets["prior"])  # and at the set's default
    at_default = Restorer(ms).restore(degrade_val(x, deg), RestoreOptions(seed=0)).images.float().clamp(-1, 1)
    assert both["restored_psnr"] == scores["restored_psnr"]
    assert both["restored_default_psnr"] == pytest.approx(psnr(at_default, x), abs=1e-4)
    assert both["restored_default_psnr"] != pytest.approx(both["restored_psnr"], abs=1e-3)


def test_a_config_without_degradation_scores_restorations_on_its_model_sets_degradation(tmp_path):
    """The prior's config degrades nothing, so its restored columns use the model set's manifest
    ranges (as the bench does), not the paper's 512-pixel defaults."""
    import json

    from tiny_models import make_tiny_modelset
    from dynface.training.curves import Validator

    root = make_tiny_modelset(tmp_path / "set")
    mild = {"sigma": [0.1, 0.5], "scale": [1.0, 1.5], "noise": [0.0, 2.0], "jpeg": [90, 100]}
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "degradation": mild}))
    cfg = {"data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "val_faces": 3,
           "restore_val_faces": 2, "cache_dir": str(tmp_path / "cache"), "modelset": str(root)}
    assert torch.equal(Validator("prior", cfg).y, Validator("prior", {**cfg, "degradation": mild}).y)
    paper = Validator("prior", {**cfg, "restore_val_faces": 0}).y  # nothing restored: the defaults stay
    assert not torch.equal(paper, Validator("prior", cfg).y)
    dgsa = {k: v for k, v in cfg.items() if k != "restore_val_faces"}  # DGSA always restores (8 faces by default)
    assert torch.equal(Validator("dgsa", dgsa).y, Validator("prior", cfg).y)
