"""Official-preset model sets: files with the exact upstream layout (random weights), strict
loading, the `dynface weights` commands, device/precision errors and `dynface restore --preset`.

The fixture writes full-size random checkpoints once per module: the DifFace UNet as a bare
``module.``-prefixed state dict in float16 (320 MB instead of the released fp32 640 MB; the
loader upcasts), the DifFace SwinIR in its trainer container ``{'iters_start', 'log_step',
'log_step_img', 'state_dict'}`` and the DPS UNet as a bare fp16 state dict. No 512² UNet forward
runs here (the slow end-to-end DynFaceRestore test needs DYNFACE_SLOW_TESTS=1).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_image
from dynface.cli import main
from dynface.core.dsst import DSST
from dynface.core.hardware import PrecisionError, resolve_precision
from dynface.core.sigma_label import sigma_grid
from dynface.modelset.folder import ModelError, ModelSet, resolve_device
from dynface.modelset.catalogue import CHECKPOINTS, MODEL_SETS
from dynface.modelset.official import load_official_modelset, official_manifest
from dynface.networks.architectures import build_architecture
from dynface.networks.factory import build_network
from dynface.pipeline import Restorer, RestoreOptions

torch.set_num_threads(1)
UNET, SWINIR, DPS = (CHECKPOINTS[n].filename for n in ("difface_unet512", "difface_swinir512", "dps_unet256"))


@pytest.fixture(autouse=True)
def _one_thread():
    """`dynface restore` sets torch's thread count (default 2); keep later tests at 1 thread."""
    yield
    torch.set_num_threads(1)


def _random_state(name: str, seed: int) -> "OrderedDict[str, torch.Tensor]":
    torch.manual_seed(seed)
    net = build_architecture(CHECKPOINTS[name].architecture())
    with torch.no_grad():
        for mod_name, m in net.named_modules():  # the zero-initialised output convs: give them weights
            if mod_name.endswith("out.2") and hasattr(m, "weight"):
                torch.nn.init.normal_(m.weight, std=0.01)
    return net.state_dict()


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    """A weights folder with the two DifFace files (no DPS file: `verify` of everything must fail)."""
    d = tmp_path_factory.mktemp("weights")
    state = _random_state("difface_unet512", 0)
    ref = {k: state[k].half().float() for k in ("input_blocks.0.0.weight", "out.2.weight", "middle_block.1.qkv.weight")}
    torch.save(OrderedDict((f"module.{k}", v.half()) for k, v in state.items()), d / UNET)
    del state
    sw = _random_state("difface_swinir512", 1)
    ref.update({f"rm:{k}": sw[k].clone() for k in ("conv_first.1.weight", "conv_last.weight")})
    torch.save({"iters_start": 0, "log_step": {"train": 1, "val": 1}, "log_step_img": {"train": 1, "val": 1},
                "state_dict": OrderedDict((f"module.{k}", v) for k, v in sw.items())}, d / SWINIR)
    return d, ref


@pytest.fixture(scope="module")
def difface(official_dir):
    ms = load_official_modelset("difface512", official_dir[0])
    return ms


def test_difface512_builds_and_loads_strictly(official_dir, difface):
    d, ref = official_dir
    ms = difface
    assert isinstance(ms, ModelSet) and ms.size == 512 and ms.root == d
    assert ms.manifest["template"] == "ffhq" and ms.manifest["sigma_grid"] == [0.1, 15.0, 150]
    assert ms.manifest["defaults"]["zeta"] == 0.3 and "precision" not in ms.manifest["defaults"]
    assert set(ms.nets) == {"prior", "rm"} and ms.device == torch.device("cpu")
    prior, rm = ms.nets["prior"], ms.nets["rm"]
    assert prior.learn_sigma and not prior.coord_channels and not prior.training
    u = prior.unet.state_dict()
    for k in ("input_blocks.0.0.weight", "out.2.weight", "middle_block.1.qkv.weight"):
        assert u[k].dtype == torch.float32 and torch.equal(u[k], ref[k])  # fp16 file, upcast
    assert sum(p.numel() for p in prior.parameters()) == CHECKPOINTS["difface_unet512"].params
    r = rm.state_dict()
    assert torch.equal(r["conv_first.1.weight"], ref["rm:conv_first.1.weight"])
    assert rm.config.io_range == "-1,1" and torch.allclose(rm.mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]))
    assert "difface512" in ms.describe() or "prior" in ms.describe()


def test_fast_build_equals_a_normal_build(official_dir, difface):
    """The RM is built on the meta device and materialised without initialisation: with the same
    weights it must compute exactly what a normally built network computes (incl. its RGB mean)."""
    from dataclasses import replace

    from dynface.modelset.weights import load_checkpoint_state, load_into
    from dynface.networks.swinir import SwinIR

    ref = SwinIR(replace(difface.nets["rm"].config)).eval()
    load_into(ref, load_checkpoint_state(official_dir[0] / SWINIR))
    x = smooth_image(64, seed=4)
    with torch.no_grad():
        assert torch.equal(ref(x), difface.nets["rm"](x))


def test_missing_user_stages_name_file_and_switch(difface):
    r = Restorer(difface)
    y = torch.zeros(1, 3, 512, 512)
    with pytest.raises(ModelError, match=r"tm, sde.*dynface train se"):
        r.restore(y, RestoreOptions(method="dynface"))
    with pytest.raises(ModelError, match=r"DSST.*dsst.*build-dsst --size 512 --sigma-grid 0.1 15 150"):
        r.restore(y, RestoreOptions(method="dynface", dblm=False, dgsa=False))
    with pytest.raises(ModelError, match=r"DGSA.*dynface train dgsa"):
        r.restore(y, RestoreOptions(method="dynface", dblm=False, dsst=False))


def test_real_prior_runs_the_sampler_at_a_small_size(difface):
    """The full-size DifFace network (learned variance) through the guided sampler, DM-only, at 64^2
    (the same network, 1/64 of the pixels; restore() checks sizes against the manifest, so a copy
    of the set says 64)."""
    small = ModelSet(difface.root, {**difface.manifest, "size": 64}, difface.nets, difface.device)
    y = smooth_image(64, seed=3)
    for prec in ("fp32", "bf16"):
        res = Restorer(small).restore(y, RestoreOptions(dblm=False, dsst=False, dgsa=False, fixed_start=300,
                                                        steps=2, precision=prec))
        assert res.images.shape == y.shape and torch.isfinite(res.images).all() and res.nfe == 2


def test_weights_verify_cli(official_dir, capsys):
    d = str(official_dir[0])
    assert main(["weights", "verify", "--preset", "difface512", "--weights-dir", d]) == 0
    out = capsys.readouterr().out
    assert "difface_unet512: OK" in out and "difface_swinir512: OK" in out and "all 2 file(s) OK" in out
    assert "tm" in out and "--no-dblm" in out and "--no-dgsa" in out  # user stages reported, not failed
    assert main(["weights", "verify", "--weights-dir", d, "--no-hash"]) == 1
    cap = capsys.readouterr()
    assert "dps_unet256: MISSING" in cap.out and DPS in cap.out
    assert "dps_unet256: missing" in cap.err and "1 of 3 official file(s) missing or bad" in cap.err
    assert main(["weights", "verify", "difface_unet512", "--weights-dir", d, "--no-hash"]) == 0
    assert main(["weights", "verify", "nope", "--weights-dir", d]) == 1
    assert "unknown weights 'nope'" in capsys.readouterr().err


def test_weights_list_and_path_cli(official_dir, capsys, monkeypatch):
    d = official_dir[0]
    assert main(["weights", "list", "--weights-dir", str(d)]) == 0
    out = capsys.readouterr().out
    for e in CHECKPOINTS.values():
        assert e.filename in out and e.url in out and str(d / e.filename) in out
    assert out.count("[present]") == 2 and out.count("[MISSING]") == 1 and "not published" in out
    monkeypatch.setenv("DYNFACE_WEIGHTS_DIR", str(d))
    assert main(["weights", "path", "difface_unet512"]) == 0
    assert capsys.readouterr().out.strip() == str(d / UNET)
    assert main(["weights", "path", "dps_unet256", "--check"]) == 1
    assert "not found" in capsys.readouterr().err


def test_cli_restore_preset_rm_end_to_end(official_dir, tmp_path, capsys):
    """`dynface restore --preset difface512 --aligned --framing ffhq --method rm`: one 512^2 SwinIR pass."""
    from dynface.core.imageio import read_rgb, to_uint8, write_image

    img = tmp_path / "in" / "face.png"
    img.parent.mkdir()
    write_image(img, to_uint8(smooth_image(96, seed=5)))
    out = tmp_path / "out"
    rc = main(["restore", str(img), "-o", str(out), "--preset", "difface512", "--weights-dir", str(official_dir[0]),
               "--aligned", "--framing", "ffhq", "--method", "rm", "--threads", "1", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "model set" in err and "restored 1 file(s)" in err
    res = read_rgb(out / "restored_faces" / "face_00.png")
    assert res.shape[2] == 3 and res.dtype == np.uint8
    assert read_rgb(out / "final_results" / "face.png").shape == (96, 96, 3)


def test_method_rm_never_loads_the_official_prior(official_dir, tmp_path, capsys):
    """`--method rm` runs with only the restorer present (the 640 MB prior is not read)."""
    from dynface.core.imageio import to_uint8, write_image

    d = tmp_path / "w"
    d.mkdir()
    os.symlink(official_dir[0] / SWINIR, d / SWINIR)  # no UNet file at all
    ms = load_official_modelset("difface512", d, prior=False)
    assert "prior" not in ms.nets and "rm" in ms.nets
    img = tmp_path / "face.png"
    write_image(img, to_uint8(smooth_image(64, seed=2)))
    rc = main(["restore", str(img), "-o", str(tmp_path / "out"), "--preset", "difface512", "--weights-dir", str(d),
               "--aligned", "--method", "rm", "--threads", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    rc = main(["restore", str(img), "-o", str(tmp_path / "out2"), "--preset", "difface512", "--weights-dir", str(d),
               "--aligned", "--no-dblm", "--no-dgsa", "--no-dsst", "--threads", "1", "-q"])
    assert rc == 1 and "download" in capsys.readouterr().err  # sampling still needs (and asks for) the prior


def test_cli_restore_errors_are_one_line(official_dir, tmp_path, capsys):
    from dynface.core.imageio import to_uint8, write_image

    img = tmp_path / "face.png"
    write_image(img, to_uint8(smooth_image(32)))
    d = str(official_dir[0])
    # a stage that is not there: the error names it, its file and the switch
    rc = main(["restore", str(img), "-o", str(tmp_path / "o1"), "--preset", "difface512", "--weights-dir", d,
               "--aligned", "--threads", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("dynface: error:") and "--dblm" in err[-1] and "train se" in err[-1]
    # no weights at all: where to put which file
    rc = main(["restore", str(img), "-o", str(tmp_path / "o2"), "--preset", "dps256", "--weights-dir",
               str(tmp_path / "empty"), "--aligned", "--threads", "1", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and DPS in err[0] and "download" in err[0]
    if not torch.cuda.is_available():
        rc = main(["restore", str(img), "-o", str(tmp_path / "o3"), "--preset", "difface512", "--weights-dir", d,
                   "--device", "cuda", "--aligned", "--threads", "1", "-q"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and "CUDA is not available" in err[0]


def test_device_and_precision_checks():
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            load_official_modelset("difface512", "/nonexistent", device="cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        with pytest.raises(ModelError, match="MPS is not available"):
            resolve_device("mps")
    with pytest.raises(PrecisionError, match="unknown precision"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(ModelError, match="unknown preset"):
        load_official_modelset("gfpgan", "/nonexistent")


def _link_official(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in (UNET, SWINIR):
        os.symlink(src / f, dst / f)
    return dst


def _export(kind, arch, path, init=None):
    from dynface.modelset.checkpoint import export_safetensors

    torch.manual_seed(0)
    net = build_network(kind, arch)
    if init:
        init(net)
    return export_safetensors(net, path, kind, arch, {"iters": 7}, dtype=torch.float32)


def test_user_stages_from_preset_subfolder_and_grid_check(official_dir, tmp_path):
    d = _link_official(official_dir[0], tmp_path / "w")
    sub = d / "difface512"
    sub.mkdir()
    tiny = {"type": "resunet", "channels": [8, 16], "blocks": 1}
    _export("tm", tiny, sub / "tm.safetensors")
    _export("sde", {"sigma_min": 0.1, "sigma_max": 15.0, "width": 8}, sub / "sde.safetensors")
    _export("dgsa", {"width": 8, "temb": 16}, sub / "dgsa.safetensors")
    grid = sigma_grid(0.1, 15.0, 150)
    DSST(grid, torch.linspace(0.01, 0.5, 150, dtype=torch.float64), torch.linspace(600, 925, 150).long(),
         0.1).save(sub / "dsst.json")
    _export("rm", tiny, d / "rm.safetensors")  # ignored: difface512 has an official RM
    ms = load_official_modelset("difface512", d)
    assert set(ms.nets) == {"prior", "rm", "tm", "sde", "dgsa", "dsst"}
    assert ms.nets["rm"].__class__.__name__ == "SwinIR"
    assert ms.manifest["files"]["tm"]["iters"] == 7 and "tm(7 it)" in ms.describe()
    # an SE trained for the 128^2 grid (sigma up to 3.75) is refused with a way out
    _export("sde", {"sigma_min": 0.025, "sigma_max": 3.75, "width": 8}, sub / "sde.safetensors")
    with pytest.raises(ModelError, match=r"sde.safetensors: made for sigmas up to 3.75.*up to 15"):
        load_official_modelset("difface512", d)


def test_wrong_file_is_refused_with_a_report(official_dir, tmp_path):
    d = tmp_path / "w"
    d.mkdir()
    os.symlink(official_dir[0] / SWINIR, d / UNET)  # a SwinIR file where the UNet should be
    with pytest.raises(ModelError) as e:
        load_official_modelset("difface512", d)
    msg = str(e.value)
    assert msg.splitlines()[0].count("does not match") == 1 and "dynface weights verify" in msg.splitlines()[0]
    assert "missing keys" in msg


def test_dps256_without_restorer(tmp_path):
    state = _random_state("dps_unet256", 2)
    torch.save(OrderedDict((k, v.half()) for k, v in state.items()), tmp_path / DPS)  # bare dict, as DPS loads it
    del state
    ms = load_official_modelset("dps256", tmp_path)
    assert ms.size == 256 and set(ms.nets) == {"prior"} and ms.manifest["sigma_grid"] == [0.05, 7.5, 150]
    assert "no public 256x256" in ms.manifest["note"]
    r = Restorer(ms)
    with pytest.raises(ModelError, match=r"rm weights.*no public 256x256 restorer.*rm.safetensors"):
        r.restore(torch.zeros(1, 3, 256, 256), RestoreOptions(method="rm"))
    assert r.resolve(RestoreOptions(precision="bf16")).precision == "bf16"
    assert r.resolve(RestoreOptions()).precision == resolve_precision("auto", "cpu")
    assert official_manifest("dps256")["defaults"]["guidance_spacing"] == 0.5


def test_weights_export_for_training_configs(official_dir, difface, tmp_path, capsys):
    """`dynface weights export`: the official nets as dynface safetensors, loadable by the training code."""
    from dynface.modelset.checkpoint import load_network

    assert main(["weights", "export", "difface512", "-o", str(tmp_path), "--weights-dir", str(official_dir[0]),
                 "--fp16"]) == 0
    assert "prior:" in capsys.readouterr().out
    rm = load_network(tmp_path / "rm.safetensors", "rm")
    assert rm.config.io_range == "-1,1"
    x = smooth_image(64, seed=8)
    with torch.no_grad():
        assert torch.allclose(rm(x), difface.nets["rm"](x), atol=0.05)  # fp16 storage of random weights
    prior = load_network(tmp_path / "prior.safetensors", "prior")
    assert prior.learn_sigma and torch.equal(prior.unet.state_dict()["out.2.weight"],
                                             official_dir[1]["out.2.weight"])  # fp16 file: exact


def test_manifests_of_all_presets():
    for name, p in MODEL_SETS.items():
        m = official_manifest(name)
        assert m["size"] == p.size and m["template"] == "ffhq" and m["files"]["prior"]["file"] == \
            CHECKPOINTS[p.prior].filename
        assert set(m["hints"]) == {"rm", "tm", "sde", "dgsa", "dsst"}


@pytest.mark.skipif(os.environ.get("DYNFACE_SLOW_TESTS") != "1",
                    reason="one 512^2 UNet forward+backward (~15-30 s on 2 CPU cores); set DYNFACE_SLOW_TESTS=1")
def test_cli_restore_preset_dynface_dm_only_512(official_dir, tmp_path, capsys):
    from dynface.core.imageio import to_uint8, write_image

    img = tmp_path / "face.png"
    write_image(img, to_uint8(smooth_image(64, seed=6)))
    rc = main(["restore", str(img), "-o", str(tmp_path / "out"), "--preset", "difface512", "--weights-dir",
               str(official_dir[0]), "--aligned", "--framing", "ffhq", "--steps", "1", "--no-dgsa", "--no-dsst",
               "--no-dblm", "--fixed-start", "400", "--precision", "bf16", "--threads", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "final_results" / "face.png").is_file()
