"""Command line behaviour: bad input gives one line and a non-zero exit; batches go on; no overwrite."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import smooth_image
from dynface.cli import main
from dynface.core.imageio import read_rgb, to_uint8, write_image


def restore(args, ms, capsys):
    code = main(["restore", *args, "--weights-dir", str(ms), "--aligned", "--framing", "model", "--steps", "2",
                 "--threads", "1", "-q", "--precision", "fp32"])
    return code, capsys.readouterr().err


def test_missing_path(ms, tmp_path, capsys):
    code, err = restore([str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")], ms, capsys)
    assert code != 0 and "no such file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


def test_bad_files_are_reported_and_batch_goes_on(ms, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "good.png", to_uint8(smooth_image(64)))
    (src / "notimage.png").write_text("hello")
    good = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.full((64, 64), 120, np.uint8), "L").save(src / "gray.png")
    Image.fromarray(np.full((64, 64, 4), 200, np.uint8), "RGBA").save(src / "rgba.png")
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 15).astype(np.uint16)).save(src / "sixteen.png")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    code, err = restore([str(src), "-o", str(tmp_path / "out")], ms, capsys)
    assert code == 1
    assert "2 file(s) failed" in err and "notimage.png" in err and "truncated.png" in err
    assert "Traceback" not in err
    done = sorted(p.name for p in (tmp_path / "out" / "final_results").iterdir())
    assert done == ["good.png", "gray.png", "rgba.png", "sixteen.png"]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched


def test_unwritable_output(ms, tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/dynface-out"  # root can write anywhere else
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "out")
    write_image(tmp_path / "a.png", to_uint8(smooth_image(64)))
    code, err = restore([str(tmp_path / "a.png"), "-o", target], ms, capsys)
    assert code != 0 and "output folder" in err and "Traceback" not in err


def test_output_inside_input_folder_is_refused(ms, tmp_path, capsys):
    write_image(tmp_path / "a.png", to_uint8(smooth_image(64)))
    code, err = restore([str(tmp_path), "-o", str(tmp_path)], ms, capsys)
    assert code != 0 and "inside the output folder" in err


def test_same_seed_same_bytes_and_size_kept(ms, tmp_path, capsys):
    write_image(tmp_path / "in" / "a.png", to_uint8(smooth_image(80)))
    for o in ("o1", "o2"):
        assert restore([str(tmp_path / "in"), "-o", str(tmp_path / o), "--seed", "3"], ms, capsys)[0] == 0
    a = (tmp_path / "o1" / "final_results" / "a.png").read_bytes()
    assert a == (tmp_path / "o2" / "final_results" / "a.png").read_bytes()
    assert read_rgb(tmp_path / "o1" / "final_results" / "a.png").shape == (80, 80, 3)


def test_entry_point_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dynface.cli", "restore", str(tmp_path / "x.png"), "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.strip().startswith("dynface: error")


def test_restore_flags_are_made_from_restore_options():
    """Each RestoreOptions field with command-line facts is a `restore` flag (every alias) whose default
    is the field's, None for the model set's defaults; no flags give `RestoreOptions.for_models`."""
    from dataclasses import fields
    from pathlib import Path

    from dynface.cli import restore as restore_command
    from dynface.cli.flags import OneLineParser, options_from_args
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import MODEL_SET_DEFAULTS, STEPS_DEFAULT, RestoreOptions, method_steps

    ap = OneLineParser(prog="dynface")
    sub = ap.add_subparsers(dest="cmd")
    restore_command.register(sub)
    flags = {s for action in sub.choices["restore"]._actions for s in action.option_strings}
    a = ap.parse_args(["restore", "x.png", "-o", "out"])
    flagged = [f for f in fields(RestoreOptions) if "cli" in f.metadata]
    assert {f.name for f in flagged} >= {"method", "steps", "n_guidance", "zeta", "sigma_lr", "seed", "dblm", "fidelity"}
    for f in flagged:
        names = f.metadata["cli"]["names"] or (f"--{f.name.replace('_', '-')}",)
        assert set(names) <= flags, f.name
        if isinstance(f.default, bool):
            assert f"--no-{f.name.replace('_', '-')}" in flags
        assert getattr(a, f.name) == (None if f.name in MODEL_SET_DEFAULTS else f.default), f.name
    models = ModelSet(Path("."), {"defaults": {"steps": 7, "n_guidance": 2}}, {})
    assert options_from_args(a, models) == RestoreOptions.for_models(models)
    assert (options_from_args(a, models).steps, options_from_args(a, models).n_guidance) == (None, 2)
    # steps: None until the restorer resolves it per method (the manifest's idm_steps for IDM)
    assert (method_steps(models, "dynface"), method_steps(models, "idm")) == (7, 7)
    with_idm = ModelSet(Path("."), {"defaults": {"steps": 7, "idm_steps": 40}}, {})
    assert (method_steps(with_idm, "dynface"), method_steps(with_idm, "idm")) == (7, 40)
    assert method_steps(ModelSet(Path("."), {}, {}), "idm") == STEPS_DEFAULT
    a = ap.parse_args(["restore", "x.png", "-o", "out", "--steps", "9"])
    assert options_from_args(a, with_idm).steps == 9
    a = ap.parse_args(["restore", "x.png", "-o", "o", "--guidance-scale", "2", "--no-dblm", "--n-guidance", "4", "--fidelity", "1"])
    assert options_from_args(a, models) == RestoreOptions.for_models(models, zeta=2.0, dblm=False, n_guidance=4,
                                                                     fidelity=1.0)


def test_deprecated_precision_aliases_warn_with_their_removal_version():
    import pytest

    from dynface.cli.flags import OneLineParser, add_runtime_options

    ap = OneLineParser(prog="dynface")
    add_runtime_options(ap)
    for flag, want in (("--no-bf16", "fp32"), ("--bf16", "bf16")):
        with pytest.warns(FutureWarning, match=rf"`{flag}` is deprecated and will be removed in dynface 1\.0"):
            assert ap.parse_args([flag]).precision == want
    assert "--no-bf16" not in ap.format_help() and "--bf16" not in ap.format_help()  # hidden


def test_deprecate_refuses_once_the_removal_version_is_reached(monkeypatch):
    import pytest

    import dynface
    from dynface.core.deprecation import deprecate

    monkeypatch.setattr(dynface, "__version__", "1.0.0")
    with pytest.raises(RuntimeError, match="was to be removed in dynface 1.0"):
        deprecate("`--bf16`", "1.0", "use `--precision bf16`")
