"""Training: resume is bit-exact, IDM's x0-residual parameterisation and its start from the prior."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import rm_config, shipped_rm, smooth_image
from tiny_models import ARCH, SIZE
from dynface.core.imageio import ImageError, to_uint8, write_image
from dynface.core.schedule import Schedule, tweedie_x0
from dynface.modelset.checkpoint import export_safetensors
from dynface.training.config import KINDS
from dynface.modelset.weights import load_torch_file
from dynface.networks.eps_model import coord_grid
from dynface.networks.factory import build_network
from dynface.training import data as data_mod
from dynface.training.batches import Ctx, crop_patch
from dynface.training.loop import init_from, train
from dynface.training.lr_schedule import learning_rate


def idm_config(tmp_path, init=None) -> dict:
    folder = tmp_path / "faces"
    folder.mkdir(exist_ok=True)
    for i in range(6):
        write_image(folder / f"face{i}.png", to_uint8(smooth_image(SIZE, seed=i)[0]))
    cfg = {"kind": "idm", "data": str(folder), "size": SIZE, "seed": 3, "iters": 4, "batch": 4, "lr": 1e-3,
           "warmup": 1, "ema": 0.9, "precision": "fp32", "ckpt_every": 2, "log_every": 1,
           "cache_dir": str(tmp_path / "cache"), "patch": {"sizes": [16, 32], "probs": [0.5, 0.5]},
           "degradation": {"sigma": [0.1, 2.0], "scale": [1.0, 2.0], "noise": [0, 10], "jpeg": [60, 95]},
           "arch": ARCH["idm"]}
    if init:
        cfg["init_from"] = {"path": str(init), "skip": ["unet.out.2."]}
    return cfg


def tiny_prior_file(tmp_path):
    torch.manual_seed(0)
    prior = build_network("prior", ARCH["prior"])
    with torch.no_grad():
        torch.nn.init.normal_(prior.unet.out[2].weight, std=0.02)
    return prior, export_safetensors(prior, tmp_path / "prior.safetensors", "prior", ARCH["prior"],
                                     {"iters": 0}, dtype=torch.float32)


def test_resume_is_bit_exact(tmp_path):
    _, pfile = tiny_prior_file(tmp_path)
    cfg = idm_config(tmp_path, init=pfile)
    train("idm", cfg, run_dir=tmp_path / "straight", progress=False)
    train("idm", cfg, run_dir=tmp_path / "resumed", iters=2, progress=False)
    with pytest.raises(FileExistsError):
        train("idm", cfg, run_dir=tmp_path / "resumed", progress=False)
    pfile.rename(pfile.with_suffix(".gone"))  # a resumed run (a fork, a new machine) needs only its checkpoint
    train("idm", cfg, run_dir=tmp_path / "resumed", resume=True, progress=False)
    a, b = load_torch_file(tmp_path / "straight" / "ckpt.pt"), load_torch_file(tmp_path / "resumed" / "ckpt.pt")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and len(log) == 5  # header + one row per step, none repeated
    assert (tmp_path / "straight" / "final.safetensors").exists()


def test_a_growing_data_folder_joins_the_draws_and_an_unchanged_one_changes_nothing(tmp_path):
    from dynface.training.loop import TrainLoop

    _, pfile = tiny_prior_file(tmp_path)
    cfg = idm_config(tmp_path, init=pfile)
    train("idm", cfg, run_dir=tmp_path / "once", progress=False)
    train("idm", {**cfg, "refresh_data_every": 1}, run_dir=tmp_path / "reread", progress=False)
    a, b = load_torch_file(tmp_path / "once" / "ckpt.pt"), load_torch_file(tmp_path / "reread" / "ckpt.pt")
    for k in a["model"]:  # re-reading a folder that did not change draws the same batches
        assert torch.equal(a["model"][k], b["model"][k]), k
    loop = TrainLoop("idm", {**cfg, "refresh_data_every": 2}, run_dir=tmp_path / "grows", progress=False)
    folder = Path(cfg["data"])
    start = len(loop.batcher.images)
    assert start == len(data_mod.split_files(folder)) > 0
    for i in range(6, 12):  # `dynface synth` adds faces while the run trains
        write_image(folder / f"face{i}.png", to_uint8(smooth_image(SIZE, seed=i)[0]))
    loop.run()
    assert len(loop.batcher.images) == len(data_mod.split_files(folder)) > start


def test_x0_residual_starts_as_the_condition_and_matches_eps():
    torch.manual_seed(0)
    idm = build_network("idm", ARCH["idm"])
    s = Schedule.linear()
    x0, y = smooth_image(SIZE, seed=1), smooth_image(SIZE, seed=2)
    for t in (0, 300, 999):
        tt = torch.tensor([t])
        x_t = s.q_sample(x0, tt, torch.randn_like(x0))
        assert torch.equal(idm.predict_x0(x_t, tt, cond=y), y)  # zero output layer: x0_hat = y
        with torch.no_grad():
            torch.nn.init.normal_(idm.unet.out[2].weight, std=0.05)
            eps, _ = idm(x_t, tt, cond=y)
            # the eps it returns maps back (Eq. 3) to the x0 it predicts
            assert torch.allclose(tweedie_x0(x_t, eps, s.abar(tt)), idm.predict_x0(x_t, tt, cond=y), atol=1e-4)
            idm.unet.out[2].weight.zero_()
    with pytest.raises(ValueError, match="condition"):
        build_network("idm", {**ARCH["idm"], "cond_channels": 0, "unet": {**ARCH["idm"]["unet"], "in_channels": 5}})


def test_init_from_prior_widens_the_input_and_ignores_the_condition_at_first(tmp_path):
    prior, pfile = tiny_prior_file(tmp_path)
    arch = {**ARCH["idm"], "prediction": "eps"}
    idm = build_network("idm", arch)
    counts = init_from(idm, pfile)
    assert counts["widened"] == 1 and counts["kept"] == 0
    x, t = smooth_image(SIZE, seed=3), torch.tensor([500])
    with torch.no_grad():
        want, _ = prior(x, t)
        for seed in (4, 5):  # any condition: its input channels start at zero
            got, _ = idm(x, t, cond=smooth_image(SIZE, seed=seed))
            assert torch.allclose(got, want, atol=1e-6)
    idm2 = build_network("idm", ARCH["idm"])
    init_from(idm2, pfile, skip=("unet.out.2.",))
    assert idm2.unet.out[2].weight.abs().sum() == 0


def test_a_deeper_resunet_grown_from_a_shipped_one_starts_as_it(tmp_path):
    """init_from with zero: [conv2]: the residual blocks the source lacks start as the identity."""
    torch.manual_seed(0)
    small = build_network("rm", {"type": "resunet", "channels": [8, 16], "blocks": 1})
    with torch.no_grad():
        small.tail.weight.normal_(std=0.05)  # a trained RM does something: not the zero-init identity
    path = export_safetensors(small, tmp_path / "rm.safetensors", "rm", {"type": "resunet", "channels": [8, 16],
                                                                         "blocks": 1}, {"iters": 0}, dtype=torch.float32)
    deep = build_network("rm", {"type": "resunet", "channels": [8, 16], "blocks": 3})
    counts = init_from(deep, str(path), zero=("conv2",))
    assert counts["zeroed"] == 3 * 2 * 2 and counts["kept"] == 3 * 2 * 2  # 2 new blocks x 3 stages: conv1 kept
    y = smooth_image(SIZE, seed=6)
    with torch.no_grad():
        assert torch.equal(deep(y), small(y)) and not torch.equal(small(y), y)
    fresh = build_network("rm", {"type": "resunet", "channels": [8, 16], "blocks": 3})
    init_from(fresh, str(path))  # without `zero` the new blocks keep their random init
    with torch.no_grad():
        assert not torch.allclose(fresh(y), small(y), atol=1e-3)


def test_crop_patch_takes_the_same_window_of_each_image():
    imgs = torch.rand(20, 3, SIZE, SIZE).mul(255).byte()
    ctx = Ctx(cfg={"size": SIZE}, batcher=data_mod.Batcher(imgs, 0), schedule=Schedule.linear())
    x = torch.randn(2, 3, SIZE, SIZE)
    (a, b), coords = crop_patch(ctx, 16, x, 2 * x)
    assert a.shape == (2, 3, 16, 16) and torch.equal(b, 2 * a)
    # find the window from the coordinates and check it is the crop
    top = int(np.argmin(np.abs(coord_grid(SIZE)[0, 0, :, 0].numpy() - coords[0, 0, 0, 0].item())))
    left = int(np.argmin(np.abs(coord_grid(SIZE)[0, 1, 0, :].numpy() - coords[0, 1, 0, 0].item())))
    assert torch.equal(a, x[..., top:top + 16, left:left + 16])
    (c,), none = crop_patch(ctx, SIZE, x)
    assert none is None and torch.equal(c, x)


def test_packaged_configs_name_existing_embedded_weights():
    """Every packaged config parses, and every `embedded:NAME` it points to ships with the package."""
    from importlib.resources import files

    from dynface.modelset.manifest import embedded_or_path
    from dynface.training.loop import load_config

    found = 0
    for f in files("dynface").joinpath("configs").iterdir():
        if not f.name.endswith(".yaml"):
            continue
        cfg = load_config(f)
        assert cfg["kind"] in set(KINDS), f.name
        refs = [cfg.get("init_tm"), cfg.get("init_sde"), (cfg.get("init_from") or {}).get("path"),
                *(cfg.get("frozen") or {}).values()]
        for r in refs:
            if r and str(r).startswith("embedded:"):
                assert embedded_or_path(r).is_file(), (f.name, r)
                found += 1
    assert found >= 4  # idm (init_from) and se_finetune (init_tm, init_sde, frozen rm)


def test_weights_paths_expand_variables_like_data_paths(monkeypatch, tmp_path):
    """`init_from: {path: $DYNFACE_RUNS/...}` names a file outside the tree as data paths do."""
    from dynface.modelset.manifest import EMBEDDED_DIR, embedded_or_path

    monkeypatch.setenv("DYNFACE_RUNS", str(tmp_path))
    assert embedded_or_path("$DYNFACE_RUNS/init/rm.safetensors") == tmp_path / "init" / "rm.safetensors"
    assert embedded_or_path("embedded:rm.safetensors") == EMBEDDED_DIR / "rm.safetensors"
    assert embedded_or_path("campaign/warm/x.safetensors") == Path("campaign/warm/x.safetensors")
    monkeypatch.delenv("DYNFACE_UNSET_FOR_TEST", raising=False)
    with pytest.raises(ValueError, match="not set"):
        embedded_or_path("$DYNFACE_UNSET_FOR_TEST/rm.safetensors")


def test_keep_sharpest_drops_the_blurred_faces_and_keeps_their_order():
    from dynface.core.kernels import gaussian_blur

    sharp = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    soft = gaussian_blur(sharp, torch.full((4,), 2.0))
    mixed = torch.stack([sharp[0], soft[0], soft[1], sharp[1], sharp[2], soft[2], soft[3], sharp[3]])
    images = mixed.add(1).mul(127.5).round().byte()
    kept = data_mod.keep_sharpest(images, 0.5, chunk=3)  # chunks that straddle the halves
    assert torch.equal(kept, images[[0, 3, 4, 7]])
    assert len(data_mod.keep_sharpest(images, 0.3)) == 2 and torch.equal(data_mod.keep_sharpest(images, 1.0), images)
    with pytest.raises(ValueError, match="sharpest"):
        data_mod.keep_sharpest(images, 0.0)


def test_learning_rate_warms_up_then_decays_by_cosine_or_anneal():
    """lr_schedule.learning_rate: known values at the ends and the middle of each phase."""
    base = {"lr": 1e-3, "warmup": 4, "iters": 100}
    assert learning_rate(base, 0, 0) == pytest.approx(2.5e-4)  # 1/4 of the way up
    assert learning_rate(base, 3, 3) == pytest.approx(1e-3) == learning_rate(base, 50, 50)
    assert learning_rate({**base, "cosine": True}, 50, 50) == pytest.approx(5e-4)
    ann = {**base, "anneal": {"start": 1000, "steps": 200, "final": 0.1}}  # cumulative iterations
    assert learning_rate(ann, 50, 999) == pytest.approx(1e-3)  # before its start: untouched
    assert learning_rate(ann, 51, 1000) == pytest.approx(1e-3)
    assert learning_rate(ann, 151, 1100) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(ann, 251, 1200) == pytest.approx(1e-4) == learning_rate(ann, 900, 5000)
    with pytest.raises(ValueError, match="anneal"):
        learning_rate({**base, "anneal": {"start": 0, "steps": 10, "final": 2.0}}, 0, 0)


def test_anneal_counts_from_the_shipped_weights_iterations(tmp_path):
    """The loop passes the cumulative iterations (the shipped RM has 100): an anneal starting at 102
    leaves run steps 0-2 at the peak rate and halves the way to `final` at step 3 (log.csv's lr)."""
    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "eval_every": 0,
           "anneal": {"start": 102, "steps": 2, "final": 0.1}}
    train("rm", cfg, run_dir=tmp_path / "run", progress=False)
    with open(tmp_path / "run" / "log.csv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3 * 0.55])


def test_channels_last_trains_the_same_network(tmp_path):
    """`channels_last: true` changes only the layout of the batches (oneDNN's fast path; ~1.3x per
    rm_deep step on an AMX Xeon): 4-D inputs become NHWC, other tensors and the values stay; a run
    with the GAN critic and the feature loss ends within float rounding of the contiguous run."""
    ctx = Ctx(cfg={}, batcher=None, schedule=None, channels_last=True)
    img, t = torch.rand(2, 3, 8, 8), torch.tensor([3, 5])
    a, b = ctx.on_device(img, t)
    assert a.is_contiguous(memory_format=torch.channels_last) and not img.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, img) and torch.equal(b, t)
    shipped = shipped_rm(tmp_path)
    base = {**rm_config(tmp_path, shipped), "eval_every": 0, "fft_weight": 0.0, "feature_weight": 0.05,
            "gan": {"weight": 0.01, "channels": 8, "layers": 2}}
    train("rm", base, run_dir=tmp_path / "nchw", progress=False)
    train("rm", {**base, "channels_last": True}, run_dir=tmp_path / "nhwc", progress=False)
    p, q = load_torch_file(tmp_path / "nchw" / "ckpt.pt"), load_torch_file(tmp_path / "nhwc" / "ckpt.pt")
    for k in p["model"]:
        assert torch.allclose(p["model"][k], q["model"][k], atol=1e-5), k
    assert all(v.is_contiguous() for v in q["model"].values())  # checkpoints keep the default layout
    with open(tmp_path / "nchw" / "log.csv") as f, open(tmp_path / "nhwc" / "log.csv") as g:
        la, lb = [float(r["loss"]) for r in csv.DictReader(f)], [float(r["loss"]) for r in csv.DictReader(g)]
    assert len(la) == 4 and la != [la[0]] * 4 and lb == pytest.approx(la, rel=1e-4)


def test_min_snr_weights_cap_the_clean_steps():
    from dynface.training.losses import min_snr_weights

    s = Schedule.linear()
    t = torch.tensor([0, 50, 200, 500, 999])
    w = min_snr_weights(s, t, 5.0)
    abar = s.abar(t).double()
    snr = abar / (1 - abar)
    for k in range(len(t)):
        want = 5.0 / snr[k] if snr[k] > 5 else 1.0
        assert abs(float(w[k]) - float(want)) < 1e-6, (int(t[k]), float(w[k]), float(want))
    assert float(w[0]) < 0.01 and float(w[-1]) == 1.0


def test_prior_curve_scores_samples_by_kid_and_keeps_a_grid(tmp_path):
    from dynface.training.curves import Validator

    cfg = idm_config(tmp_path)
    val_names = [n for n in (f"v{i}.png" for i in range(400)) if data_mod.split_of(n) == "val"][:2]
    for i, n in enumerate(val_names):  # the validation faces come from the folder's val split
        write_image(tmp_path / "faces" / n, to_uint8(smooth_image(SIZE, seed=10 + i)[0]))
    cfg.update(kind="prior", arch=ARCH["prior"], val_faces=2, precision="fp32",
               sample_kid={"samples": 4, "steps": 2, "batch": 2, "references": [cfg["data"]]})
    cfg.pop("degradation")
    torch.manual_seed(0)
    net = build_network("prior", ARCH["prior"])
    v = Validator("prior", cfg)
    a = v(net)
    assert set(a) >= {"x0_psnr_t300", "kid_faces", "sample_detail_ratio"} and np.isfinite(a["kid_faces"])
    assert a["sample_detail_ratio"] > 0
    assert len(v.last_samples) == 4 and v.last_samples[0].shape == (SIZE, SIZE, 3)
    assert v(net)["kid_faces"] == a["kid_faces"]  # fixed seed: the same samples, the same score


def test_train_config_refuses_unknown_keys_and_wrong_types():
    from dynface.training.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=r"unknown training config key\(s\) lerning_rate; valid keys: kind, data"):
        TrainConfig.from_dict({"lerning_rate": 1e-3})
    with pytest.raises(ConfigError, match="`iters: 'many'`: expected int"):
        TrainConfig.from_dict({"iters": "many"})
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.from_dict({"precision": "fp8"})
    cfg = TrainConfig.from_dict({"lr": "1e-3", "iters": 4.0, "lambda": 2, "data": [{"path": "a", "weight": 1}],
                                 "synth": {"weight": 0.5, "truncation": 0.7, "seed": 1}})
    assert cfg.lr == 1e-3 and cfg.iters == 4 and cfg.lambda_ == 2.0 and cfg.data[0]["path"] == "a"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["lambda"] == 2.0
    with pytest.raises(ConfigError, match="lacks data"):
        TrainConfig(iters=1, lr=1.0, arch={"x": 1}).check_complete()


def test_every_packaged_and_campaign_config_is_a_valid_train_config():
    from pathlib import Path

    from dynface.training.config import TrainConfig

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "src/dynface/configs").glob("*.yaml")) + sorted(
        p for p in (root / "campaign").glob("*.yaml") if p.name != "runs.yaml")
    assert files
    for f in files:
        cfg = TrainConfig.load(f)
        cfg.check_complete()
        assert cfg.kind in set(KINDS), f


def test_val_data_scores_a_folder_kept_apart_from_training(tmp_path):
    from dynface.training.curves import Validator

    cfg = idm_config(tmp_path)
    held = tmp_path / "held"
    held.mkdir()
    want = [to_uint8(smooth_image(SIZE, seed=40 + i)[0]) for i in range(3)]
    for i, img in enumerate(want):
        write_image(held / f"real{i}.png", img)
    v = Validator("idm", {**cfg, "val_data": str(held), "val_faces": 2})
    assert v.x.shape == (2, 3, SIZE, SIZE)
    for i in range(2):  # all of the folder's faces count (no split), in name order, val_faces of them
        assert torch.equal(((v.x[i] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(want[i]))
    with pytest.raises(ValueError, match="environment variable"):
        Validator("idm", {**cfg, "val_data": "$DYNFACE_NO_SUCH_VARIABLE/faces"})
    train_only = tmp_path / "train_only"  # names the name-hash split puts in train: no validation faces
    train_only.mkdir()
    for name in [n for n in (f"t{i}.png" for i in range(20)) if data_mod.split_of(n) == "train"][:3]:
        write_image(train_only / name, want[0])
    with pytest.raises(ImageError, match="no validation faces.*val_data"):
        Validator("idm", {**cfg, "data": str(train_only)})


def test_sample_faces_counts_samples_with_a_face_and_with_ffhq_framing(data_dir):
    from PIL import Image

    from dynface.core.imageio import read_rgb
    from dynface.training.curves import sample_faces

    face = np.asarray(Image.fromarray(read_rgb(sorted((data_dir / "london").iterdir())[0])).resize((128, 128), Image.BICUBIC))
    shifted = np.roll(face, 16, axis=1)  # a face, 1/8 of the side off the template
    grey = np.full((128, 128, 3), 128, np.uint8)
    assert sample_faces([face, shifted, grey, face]) == {"faces_found": 0.75, "framed": 0.5}


def test_mean_detail_is_zero_for_flat_images_and_grows_with_texture():
    from dynface.training.curves import mean_detail

    flat = np.full((16, 16, 3), 90, np.uint8)
    noisy = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert mean_detail([flat]) == 0.0
    assert mean_detail([noisy]) > mean_detail([flat, noisy]) > 0  # a mean over the images


def test_data_label_names_every_source_and_its_weight(tmp_path):
    from dynface.training.loop import data_label

    assert data_label({"data": "faces/"}) == "faces/"
    assert data_label({"data": [{"path": "a", "weight": 3}, {"path": "b"}], "synth": {"weight": 0.5}}) == \
        "a (weight 3), b (weight 1), generated faces (weight 0.5)"
    made = tmp_path / "synth512"  # a folder `dynface synth` wrote: named by its recipe, not by this machine's path
    made.mkdir()
    (made / "synth.json").write_text(json.dumps({"seed": 0, "truncation": 0.7, "size": 512}))
    assert data_label({"data": [{"path": str(made), "weight": 3}, {"path": "b"}]}) == \
        "generated FFHQ-aligned faces (dynface synth, 512 px, seed 0) (weight 3), b (weight 1)"


def test_ranks_caching_their_shards_leave_a_cache_whose_names_match_its_images(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(6):
        write_image(folder / f"f{i}.png", to_uint8(smooth_image(SIZE, seed=60 + i)[0]))
    plain = data_mod.load_cache(folder, SIZE, "all")
    cache = tmp_path / "cache"
    a = data_mod.load_cache(folder, SIZE, "all", cache_dir=cache, shard=(0, 2))
    b = data_mod.load_cache(folder, SIZE, "all", cache_dir=cache, shard=(1, 2))
    assert torch.equal(a, plain[0::2]) and torch.equal(b, plain[1::2])
    assert torch.equal(data_mod.load_cache(folder, SIZE, "all", cache_dir=cache), plain)
    index = json.loads(next(cache.glob("*.json")).read_text())
    assert [p.name for p in cache.glob("*.npy")] == [index["array"]]  # the array it names, no stale one
