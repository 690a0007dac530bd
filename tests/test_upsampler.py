"""The face upsampler: its network, its training input and loss, its curve, and its place in restoration."""
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import faces_with_val_split, smooth_image
from dynface.core.imageio import read_rgb, resize, to_tensor, to_uint8, write_image
from dynface.modelset.assemble import replace_stage
from dynface.modelset.checkpoint import export_safetensors, load_network
from dynface.modelset.folder import ModelSet
from dynface.networks.factory import build_network
from dynface.networks.upsampler import FaceUpsampler, UpsamplerConfig
from dynface.pipeline import Restorer, RestoreOptions, restore_crops
from dynface.training.batches import Ctx, crop_scaled
from dynface.training.data import Batcher
from dynface.training.losses import restored_input, upsampler_input
from tiny_models import SIZE

UP_ARCH = {"channels": 8, "blocks": 1, "scale": 4, "project": False}


def test_an_untrained_upsampler_is_bicubic_enlargement_and_projection_keeps_the_input():
    x = torch.cat([smooth_image(16, seed=3), torch.rand(1, 3, 16, 16) * 2 - 1])  # smooth, and all detail
    for scale in (2, 4):
        plain = FaceUpsampler(UpsamplerConfig(channels=8, blocks=1, scale=scale, project=False))
        out = plain(x)
        assert out.shape == (2, 3, 16 * scale, 16 * scale)
        assert torch.equal(out, F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False))
        projected = FaceUpsampler(UpsamplerConfig(channels=8, blocks=1, scale=scale))
        projected.load_state_dict(plain.state_dict())
        torch.nn.init.normal_(projected.tail.weight, std=0.05)  # a network that adds detail of its own
        plain.load_state_dict(projected.state_dict())

        def back(y):  # the enlarged image shrunk to the input's size: how far from the input it strays
            return float((resize(y.detach(), (16, 16)) - x).abs().mean())

        assert back(projected(x)) < 0.6 * back(plain(x))
        assert not torch.allclose(projected(x), F.interpolate(x, scale_factor=scale, mode="bicubic"))
    with pytest.raises(ValueError, match="scale"):
        UpsamplerConfig(scale=3)


def test_upsampler_input_shrinks_and_blurs_repeatably():
    x = smooth_image(64, seed=1).repeat(3, 1, 1, 1)
    plain = upsampler_input(x, 4, None, None)
    assert plain.shape == (3, 3, 16, 16)
    assert torch.equal(upsampler_input(x, 4, [0.0, 0.0], lambda: 0.5), plain)  # sigma 0: no blur
    draws = iter([0.0, 0.5, 1.0])
    soft = upsampler_input(x, 4, [0.0, 2.0], lambda: next(draws))  # sigmas 0, 1, 2
    assert torch.equal(soft[0], plain[0])
    hf = [float((s - F.avg_pool2d(s[None], 3, 1, 1, count_include_pad=False)[0]).abs().mean()) for s in soft]
    assert hf[0] > hf[1] > hf[2]  # more blur, less fine detail
    draws = iter([0.0, 0.5, 1.0])
    assert torch.equal(upsampler_input(x, 4, [0.0, 2.0], lambda: next(draws)), soft)


def _up_config(tmp_path) -> dict:
    return {"kind": "up", "data": str(faces_with_val_split(tmp_path / "faces")), "size": SIZE, "crop": 16,
            "input_blur": [0.0, 0.5], "seed": 2, "iters": 4, "batch": 2, "lr": 1e-3, "warmup": 1, "ema": 0.9,
            "precision": "fp32", "ckpt_every": 2, "log_every": 1, "eval_every": 2, "val_faces": 3,
            "cache_dir": str(tmp_path / "cache"), "gan": {"channels": 8, "layers": 2, "start": 2},
            "arch": UP_ARCH}


def test_an_upsampler_run_scores_bicubic_first_and_exports_what_it_trained(tmp_path):
    from dynface.training.curves import read_curve
    from dynface.training.loop import train

    run = tmp_path / "run"
    path = train("up", _up_config(tmp_path), run_dir=run, progress=False)
    rows = read_curve(run / "curve.csv")
    assert [r["step"] for r in rows] == [0, 2, 4]
    first = rows[0]  # the zero-initialised output conv and no projection: exactly bicubic enlargement
    assert first["psnr"] == pytest.approx(first["input_psnr"], abs=1e-4)
    assert first["detail_ratio"] == pytest.approx(first["input_detail_ratio"], abs=1e-4)
    assert {"soft_psnr", "soft_detail_ratio", "ssim"} <= set(first)
    assert rows[-1]["psnr"] != first["psnr"]  # it trained
    assert (run / "critic.safetensors").exists()  # the adversarial term's critic, kept for a later run
    net = load_network(path, "up")
    assert isinstance(net, FaceUpsampler) and net.scale == 4
    ck = torch.load(run / "ckpt.pt", weights_only=True)
    ema = build_network("up", UP_ARCH)
    ema.load_state_dict(ck["ema"])
    x = smooth_image(SIZE, seed=9)
    assert torch.allclose(net(x), ema.half().float()(x), atol=1e-6)  # the fp16 export is the EMA network


def test_crop_scaled_cuts_the_same_content_from_both_sizes():
    small = smooth_image(16, seed=3).repeat(2, 1, 1, 1)
    big = small.repeat_interleave(4, -1).repeat_interleave(4, -2)  # nearest x4: pixel (i, j) -> 4x4 block
    ctx = Ctx({"kind": "up"}, Batcher(small, seed=5), None)
    for _ in range(5):
        b, s = crop_scaled(ctx, 24, big, small)
        assert b.shape[-2:] == (24, 24) and s.shape[-2:] == (6, 6)
        assert torch.equal(b, s.repeat_interleave(4, -1).repeat_interleave(4, -2))
    assert crop_scaled(ctx, 64, big, small) == (big, small)  # a window as large as the face: no crop


def test_an_upsampler_run_with_a_frozen_rm_learns_from_restored_faces(ms, tmp_path):
    from dynface.training.curves import read_curve
    from dynface.training.loop import train

    deg = {"sigma": [1.0, 2.0], "scale": [1.0, 2.0], "noise": [0.0, 5.0], "jpeg": [60, 90]}
    cfg = {**_up_config(tmp_path), "input_blur": None, "frozen": {"rm": str(ms / "rm.safetensors")}, "degradation": deg}
    rm = load_network(ms / "rm.safetensors")
    x = smooth_image(SIZE, seed=4).repeat(2, 1, 1, 1)
    y = restored_input(x, 4, rm, cfg, step=7)
    assert y.shape == (2, 3, SIZE // 4, SIZE // 4) and y.abs().max() <= 1
    assert torch.equal(restored_input(x, 4, rm, cfg, step=7), y)  # seeded by the step: repeatable on resume
    assert not torch.equal(restored_input(x, 4, rm, cfg, step=8), y)
    run = tmp_path / "run"
    train("up", cfg, run_dir=run, progress=False)
    rows = read_curve(run / "curve.csv")
    first = rows[0]  # scored on restored inputs: bicubic enlargement of the RM's output, not of the sharp face
    assert first["psnr"] == pytest.approx(first["input_psnr"], abs=1e-4)
    sharp = train("up", _up_config(tmp_path), run_dir=tmp_path / "sharp", progress=False)
    assert sharp.exists()
    assert read_curve(tmp_path / "sharp" / "curve.csv")[0]["input_psnr"] > first["input_psnr"]
    assert rows[-1]["psnr"] != first["psnr"]


def test_a_run_is_not_resumed_beside_other_frozen_networks(ms, tmp_path):
    """The checkpoint keeps a fingerprint of each frozen network; a resume beside another file (the
    frozen RM exported anew) stops with a one-line error naming it, and resumes once it is back."""
    from dynface.modelset.weights import load_torch_file
    from dynface.training.config import ConfigError
    from dynface.training.loop import frozen_fingerprints, train

    rm = tmp_path / "rm.safetensors"
    shutil.copy(ms / "rm.safetensors", rm)
    cfg = {**_up_config(tmp_path), "iters": 2, "eval_every": 0, "frozen": {"rm": str(rm)}}
    run = tmp_path / "run"
    train("up", cfg, run_dir=run, progress=False)
    ck = load_torch_file(run / "ckpt.pt")
    assert ck["frozen"] == frozen_fingerprints("up", cfg) and len(ck["frozen"]["rm"]) == 16
    shutil.copy(ms / "tm.safetensors", rm)  # another file under the same name
    with pytest.raises(ConfigError, match="frozen rm changed"):
        train("up", {**cfg, "iters": 4}, run_dir=run, resume=True, progress=False)
    shutil.copy(ms / "rm.safetensors", rm)
    train("up", {**cfg, "iters": 4}, run_dir=run, resume=True, progress=False)
    assert load_torch_file(run / "ckpt.pt")["step"] == 4


@pytest.fixture(scope="module")
def ms_up(ms, tmp_path_factory):
    """The tiny model set with a (random, so not bicubic) x4 face upsampler."""
    root = tmp_path_factory.mktemp("ms_up") / "set"
    shutil.copytree(ms, root)
    torch.manual_seed(0)
    arch = {**UP_ARCH, "project": True}
    net = build_network("up", arch)
    torch.nn.init.normal_(net.tail.weight, std=0.02)
    src = export_safetensors(net, root.parent / "up.safetensors", "up", arch, {"iters": 0}, dtype=torch.float32)
    replace_stage(root, "up", src)
    return root


def test_restore_crops_enlarge_with_the_upsampler(ms_up):
    restorer = Restorer(ModelSet.load(ms_up))
    crop = smooth_image(SIZE, seed=4)
    out, _ = restore_crops(restorer, [crop], RestoreOptions(method="rm", precision="fp32"))
    assert out[0].shape[-2:] == (4 * SIZE, 4 * SIZE)
    plain, _ = restore_crops(restorer, [crop], RestoreOptions(method="rm", upsample=False))
    assert plain[0].shape[-2:] == (SIZE, SIZE)
    rm = restorer.rm(crop)
    assert torch.allclose(out[0], restorer.models.nets["up"](rm).clamp(-1, 1), atol=1e-5)  # RM, then the upsampler
    big = smooth_image(6 * SIZE, seed=5)  # a crop larger than the enlarged face keeps its size
    assert restore_crops(restorer, [big], RestoreOptions(method="rm"))[0][0].shape[-2:] == (6 * SIZE, 6 * SIZE)
    bic, _ = restore_crops(restorer, [crop], RestoreOptions(method="bicubic"))
    assert bic[0].shape[-2:] == (SIZE, SIZE)  # the bicubic baseline stays bicubic
    assert "up(0 it)" in ModelSet.load(ms_up).describe()


def test_cli_restore_writes_upsampled_faces_into_a_same_size_photo(ms_up, tmp_path):
    from dynface.cli import main

    img = to_uint8(smooth_image(96, seed=6))
    write_image(tmp_path / "in" / "a.png", img)
    args = [str(tmp_path / "in" / "a.png"), "--aligned", "--method", "rm", "--weights-dir", str(ms_up), "-q"]
    assert main(["restore", *args, "-o", str(tmp_path / "o")]) == 0
    assert read_rgb(tmp_path / "o" / "restored_faces" / "a_00.png").shape == (4 * SIZE, 4 * SIZE, 3)
    final = read_rgb(tmp_path / "o" / "final_results" / "a.png")
    assert final.shape == img.shape
    cmp = read_rgb(tmp_path / "o" / "cmp" / "a_00.png")
    assert cmp.shape == (4 * SIZE, 8 * SIZE, 3)  # the crop shown at the upsampled face's size
    assert main(["restore", *args, "--no-upsample", "-o", str(tmp_path / "o2")]) == 0
    assert read_rgb(tmp_path / "o2" / "restored_faces" / "a_00.png").shape == (SIZE, SIZE, 3)
    assert not np.array_equal(read_rgb(tmp_path / "o2" / "final_results" / "a.png"), final)
    assert to_tensor(final).shape[-1] == 96
    assert main(["restore", *args, "--samples", "2", "-o", str(tmp_path / "o3")]) == 0
    mean = read_rgb(tmp_path / "o3" / "uncertainty" / "a_00_mean.png")
    assert mean.shape == (4 * SIZE, 4 * SIZE, 3)  # the maps come at the restored face's size


def test_upsample_detail_from_the_rm_puts_the_upsamplers_detail_on_the_enlarged_result(ms_up):
    """`upsample_detail: rm`: bicubic(x) + up(r) - bicubic(r) for a full restoration x guided from r =
    RM(y). An upsampler that is bicubic enlargement gives bicubic(x) in both modes (the detail it adds
    is none); the restoration network alone (x = r) is enlarged the same way in both modes."""
    restorer = Restorer(ModelSet.load(ms_up))
    crop = smooth_image(SIZE, seed=7)
    full = {m: restore_crops(restorer, [crop], RestoreOptions(precision="fp32", upsample_detail=m))
            for m in ("result", "rm")}
    (by_result, res), (by_rm, res_rm) = full["result"], full["rm"]
    assert torch.equal(res.images, res_rm.images) and res.rm is not None and not torch.equal(res.rm, res.images)
    up = restorer.models.nets["up"]
    x, r = res.images, res.rm
    assert torch.allclose(by_result[0], up(x).clamp(-1, 1), atol=1e-5)
    bic = lambda z: F.interpolate(z, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(by_rm[0], (bic(x - r) + up(r).clamp(-1, 1)).clamp(-1, 1), atol=1e-5)
    assert not torch.allclose(by_rm[0], by_result[0], atol=1e-3)
    plain = Restorer(ModelSet.load(ms_up))
    plain.models.nets["up"] = FaceUpsampler(UpsamplerConfig(**UP_ARCH))  # untrained: bicubic enlargement
    for m in ("result", "rm"):
        out, _ = restore_crops(plain, [crop], RestoreOptions(precision="fp32", upsample_detail=m))
        assert torch.allclose(out[0], bic(x).clamp(-1, 1), atol=1e-5), m
    rm_only = [restore_crops(restorer, [crop], RestoreOptions(method="rm", upsample_detail=m))[0][0]
               for m in ("result", "rm")]
    assert torch.equal(*rm_only)
    with pytest.raises(ValueError, match="upsample_detail"):
        restore_crops(restorer, [crop], RestoreOptions(upsample_detail="noise"))
