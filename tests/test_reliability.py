"""Reliability promises (docs/reliability.md): nothing lost, nothing half-written, no garbage with exit 0.

One regression test (or more) per numbered item of the issue, then the bad-input corpus run
through restore, degrade, eval and clean. Pictures are synthetic; no face is written anywhere.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bad_input_corpus import _picture, build_corpus
from dynface.cli import main
from dynface.core.imageio import ImageError, list_images, read_rgb, set_max_pixels

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(autouse=True)
def _one_thread_and_default_cap():
    yield
    torch.set_num_threads(1)
    set_max_pixels(None)


def save(path, seed=0, size=40):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_picture(size, seed)).save(path)
    return path


def restore(args, ms, capsys, *extra):
    code = main(["restore", *args, "--weights-dir", str(ms), "--aligned", "--framing", "model", "--steps", "2",
                 "--threads", "1", "-q", *extra])
    return code, capsys.readouterr().err


def tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def temp_files(root) -> list[str]:
    return [p for p in tree(root) if any(part.startswith(".tmp-") for part in Path(p).parts)]


# ---------------------------------------------------------------- 1. outputs never overwrite each other

def test_same_stem_inputs_get_distinct_outputs_in_restore(ms, tmp_path, capsys):
    save(tmp_path / "s" / "a.png", 1)
    save(tmp_path / "s" / "a.jpg", 2)
    save(tmp_path / "x" / "b.png", 3)
    save(tmp_path / "y" / "b.png", 4)
    code, err = restore([str(tmp_path / "s"), str(tmp_path / "x"), str(tmp_path / "y"), "-o", str(tmp_path / "o")],
                        ms, capsys)
    assert code == 0, err
    finals = tree(tmp_path / "o" / "final_results")
    assert len(finals) == 4 and "a_png.png" in finals and "a_jpg.jpg" in finals
    assert len(tree(tmp_path / "o" / "restored_faces")) == 4
    assert err.count("would share the output name") == 2 and "restored 4 file(s)" in err


def test_same_stem_inputs_get_distinct_outputs_in_degrade(tmp_path, capsys):
    save(tmp_path / "s" / "a.png", 1)
    save(tmp_path / "s" / "a.jpg", 2)
    assert main(["degrade", str(tmp_path / "s"), "-o", str(tmp_path / "d"), "--pixel-scale", "0.25", "-q"]) == 0
    assert "would share the output name 'a'" in capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "d" / "params.csv").open()))
    assert sorted(r["output"] for r in rows) == ["a_jpg.png", "a_png.png"]
    assert sorted(tree(tmp_path / "d")) == ["a_jpg.png", "a_png.png", "params.csv", "params.json"]


def test_same_stem_inputs_get_distinct_outputs_in_clean(ms, tmp_path, capsys):
    save(tmp_path / "s" / "a.png", 1)
    save(tmp_path / "s" / "a.jpg", 2)
    assert main(["clean", str(tmp_path / "s"), "-o", str(tmp_path / "c"), "--weights-dir", str(ms),
                 "--method", "rm", "--threads", "1", "-q"]) == 0
    assert "cleaned 2 image(s)" in capsys.readouterr().err
    assert tree(tmp_path / "c") == ["a_jpg.png", "a_png.png"]


def test_output_names_are_stable_and_unique():
    from dynface.jobs.outnames import output_stems

    files = [Path("s/a.png"), Path("s/a.jpg"), Path("s/A.bmp"), Path("x/b.png"), Path("y/b.png"), Path("s/c.png"),
             Path("s/a_png.png")]
    names, warns = output_stems(files)
    again, _ = output_stems(list(reversed(files)))
    assert names == again  # not the order
    assert len({n.casefold() for n in names.values()}) == len(files)  # unique, even on case-insensitive disks
    assert names[Path("s/c.png")] == "c" and names[Path("s/a.jpg")] == "a_jpg"
    assert names[Path("x/b.png")] != names[Path("y/b.png")] and names[Path("x/b.png")].startswith("b_")
    assert len(warns) >= 3
    assert output_stems([Path("s/a.png"), Path("s/b.png")]) == ({Path("s/a.png"): "a", Path("s/b.png"): "b"}, [])


# ---------------------------------------------------------------- 2. nothing half-written, temp files never read

def test_atomic_write_keeps_the_old_file_and_no_temp_on_any_exception(tmp_path):
    from dynface.core.atomic import write_atomic

    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    for exc in (KeyboardInterrupt, OSError, RuntimeError):
        def half(tmp, exc=exc):
            tmp.write_bytes(b"half")
            raise exc("stop")

        with pytest.raises(exc):
            write_atomic(target, half)
        assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.png"]
    write_atomic(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.png"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


_SLOW_WRITER = """
import sys, time
from dynface.core.atomic import Terminated, signals_as_exceptions, write_atomic
def slow(tmp):
    tmp.write_bytes(b"half")
    print("ready", flush=True)
    time.sleep(60)
with signals_as_exceptions():
    try:
        write_atomic(sys.argv[1], slow)
    except Terminated as e:
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        sys.exit(130)
"""


def _default_signals():
    """The writer starts with default signal handling even when the test run itself ignores SIGINT
    or SIGHUP (a background job or nohup), which signals_as_exceptions rightly leaves alone."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_during_a_write_leaves_no_temp_file(tmp_path, sig, code):
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(tmp_path / "x.png")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_default_signals)
    assert p.stdout.readline().strip() == "ready"
    assert any(n.startswith(".tmp-") for n in os.listdir(tmp_path))  # the temp file is there mid-write
    p.send_signal(sig)
    assert p.wait(timeout=60) == code, p.stderr.read()
    assert os.listdir(tmp_path) == []


def test_cli_killed_by_sigterm_mid_batch_leaves_only_complete_files(tmp_path):
    for i in range(40):
        save(tmp_path / "in" / f"f{i:02d}.png", i, size=256)
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "dynface.cli", "degrade", str(tmp_path / "in"), "-o", str(out), "-q"],
                         stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None and not any(out.glob("f*.png")):
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)
    err = p.stderr.read()
    assert rc in (0, 143) and "Traceback" not in err, err
    if rc == 143:
        assert "terminated by signal SIGTERM" in err
    assert temp_files(out) == []
    for f in out.glob("*.png"):
        assert read_rgb(f).shape == (256, 256, 3)  # every file there is complete


def test_readers_skip_temp_and_dot_files(tmp_path, capsys):
    save(tmp_path / "r" / "a.png", 1)
    good = (tmp_path / "r" / "a.png").read_bytes()
    (tmp_path / "r" / ".tmp-abc123.png").write_bytes(good[: len(good) // 2])  # a killed write
    (tmp_path / "r" / ".hidden.jpg").write_bytes(good)
    assert [p.name for p in list_images([tmp_path / "r"])] == ["a.png"]
    assert main(["eval", "--restored", str(tmp_path / "r"), "--gt", str(tmp_path / "r"), "--metrics", "psnr"]) == 0
    out = capsys.readouterr().out
    assert "1 image(s), 0 with errors" in out and ".tmp-" not in out


# ---------------------------------------------------------------- 3. invalid numbers: refused at the boundary

BAD_OPTIONS = [
    ("restore", ["--eta", "nan"]), ("restore", ["--eta", "2"]), ("restore", ["--steps", "-3"]),
    ("restore", ["--steps", "0"]), ("restore", ["--threads", "0"]), ("restore", ["--fixed-start", "5000", "--no-dsst"]),
    ("restore", ["--guidance-scale", "inf"]), ("restore", ["--sigma-lr", "-1"]), ("restore", ["--seed", "-1"]),
    ("restore", ["--upscale", "0.5"]), ("restore", ["--guide-every", "0"]), ("restore", ["--max-pixels", "0"]),
    ("degrade", ["--size", "-4"]), ("degrade", ["--pixel-scale", "0"]), ("degrade", ["--seed", "x"]),
    ("clean", ["--limit", "0"]), ("clean", ["--steps", "nan"]), ("eval", ["--crop-border", "-1"]),
    ("train", ["--iters", "0"]), ("train", ["--threads", "0"]), ("build-dsst", ["--t-hi", "5000"]),
    ("build-dsst", ["--sigma-grid", "1", "nan", "10"]), ("bench", ["--steps", "0"]),
]
BASE = {"restore": ["x.png", "-o", "o"], "degrade": ["x.png", "-o", "o"], "clean": ["d", "-o", "o"],
        "eval": ["--restored", "r"], "train": ["rm"], "build-dsst": ["-o", "d.json"], "bench": ["c"]}


@pytest.mark.parametrize("cmd,opts", BAD_OPTIONS, ids=[f"{c} {' '.join(o)}" for c, o in BAD_OPTIONS])
def test_bad_numbers_are_one_line_usage_errors(cmd, opts, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, *BASE[cmd], *opts])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and f"argument {opts[0]}" in err, err
    assert "must be" in err or "is not" in err


def test_ranges_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("DDIM [0..1]", "(default: the model set's for the method) [1..1000]", "--no-dsst [0..999]", "[1..1024]"):
        assert text in out


def test_bad_degradation_config_is_one_line(tmp_path, capsys):
    save(tmp_path / "a.png")
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n")
    bad_range = tmp_path / "bad.yaml"
    bad_range.write_text("degradation: {sigma: [5, 1]}\n")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    for cfg, why in ((passwd, "no `degradation:` block"), (bad_range, "low <= high"), (binary, "not a YAML file"),
                     (tmp_path / "missing.yaml", "cannot read")):
        code = main(["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--config", str(cfg), "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1 and why in err and "internal" not in err, err
    assert not (tmp_path / "o").exists() or tree(tmp_path / "o") == []


# ---------------------------------------------------------------- 4. clean: reproducible across a resume

def test_clean_gives_the_same_files_after_an_interruption(ms, tmp_path, capsys):
    for i in range(4):
        save(tmp_path / "data" / f"f{i}.png", i)
    common = ["--weights-dir", str(ms), "--method", "dynface", "--steps", "3", "--seed", "5", "--threads", "1", "-q"]
    assert main(["clean", str(tmp_path / "data"), "-o", str(tmp_path / "whole"), *common]) == 0
    # "interrupted" after two files (and one deleted), then resumed
    assert main(["clean", str(tmp_path / "data"), "-o", str(tmp_path / "resumed"), "--limit", "2", *common]) == 0
    (tmp_path / "resumed" / "f0.png").unlink()
    assert main(["clean", str(tmp_path / "data"), "-o", str(tmp_path / "resumed"), *common]) == 0
    assert "skipped 1 already done" in capsys.readouterr().err
    whole = {n: (tmp_path / "whole" / n).read_bytes() for n in tree(tmp_path / "whole")}
    assert len(whole) == 4 and whole == {n: (tmp_path / "resumed" / n).read_bytes() for n in tree(tmp_path / "resumed")}
    assert len(set(whole.values())) == 4


def test_clean_refuses_output_equal_to_dataset(ms, tmp_path, capsys):
    save(tmp_path / "data" / "f.png")
    before = tree(tmp_path / "data")
    code = main(["clean", str(tmp_path / "data"), "-o", str(tmp_path / "data"), "--weights-dir", str(ms), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "inside the output folder" in err and tree(tmp_path / "data") == before


def test_a_files_seed_depends_on_its_name_only():
    from dynface.jobs.outnames import seed_for

    assert seed_for(0, "a.png") == seed_for(0, "a.png") != seed_for(0, "b.png") != seed_for(1, "b.png")
    assert 0 <= seed_for(2**63 - 1, "x") < 2**63


# ---------------------------------------------------------------- 5. metadata cannot size the network

def _set_arch(path, **changes):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    arch = json.loads(meta["arch"])
    arch.update(changes)
    meta["arch"] = json.dumps(arch)
    save_file(load_file(str(path)), str(path), metadata=meta)


@pytest.mark.parametrize("channels,why", [([32, 64, 128, 40000], "over the limit of 8192"),
                                          ([32, 64, 128, 8000], "values, over the limit of"),
                                          ([8, 32], "shape mismatch")])
def test_metadata_is_checked_before_allocation(ms, tmp_path, channels, why):
    import shutil

    from dynface.modelset.folder import ModelError, ModelSet

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    _set_arch(bad / "rm.safetensors", channels=channels)
    with pytest.raises(ModelError, match=why) as e:
        ModelSet.load(bad)
    assert str(bad / "rm.safetensors") in str(e.value)


def test_manifest_size_is_checked(ms, tmp_path):
    import shutil

    from dynface.modelset.folder import ModelError, ModelSet

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    m = json.loads((bad / "manifest.json").read_text())
    for size in (10**6, -3, "128"):
        (bad / "manifest.json").write_text(json.dumps({**m, "size": size}))
        with pytest.raises(ModelError, match="size"):
            ModelSet.load(bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelSet.load(bad)


# ---------------------------------------------------------------- 6. pixel cap before decoding; non-regular files

def _png_claiming(path, w, h):
    """A PNG whose header says w x h but whose pixel data is missing."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_pixel_cap_is_checked_before_decoding(tmp_path, monkeypatch):
    _png_claiming(tmp_path / "claims.png", 13000, 13000)
    with pytest.raises(ImageError, match=r"13000x13000 = 169.0 MP is over the pixel cap"):
        read_rgb(tmp_path / "claims.png")  # the size alone decides: no pixel data is needed to refuse
    save(tmp_path / "small.png", size=40)
    set_max_pixels(1000)
    with pytest.raises(ImageError, match="pixel cap"):
        read_rgb(tmp_path / "small.png")
    set_max_pixels(None)
    monkeypatch.setenv("DYNFACE_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match="pixel cap"):
        read_rgb(tmp_path / "small.png")
    monkeypatch.setenv("DYNFACE_MAX_PIXELS", "2000")
    assert read_rgb(tmp_path / "small.png").shape == (40, 40, 3)


def test_max_pixels_option_and_bad_env(ms, tmp_path, capsys, monkeypatch):
    save(tmp_path / "in" / "a.png", size=40)
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys, "--max-pixels", "1000")
    assert code == 1 and "pixel cap of 0.0 MP" in err
    monkeypatch.setenv("DYNFACE_MAX_PIXELS", "lots")
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys)
    assert code == 1 and err.strip().splitlines() == ["dynface: error: $DYNFACE_MAX_PIXELS='lots': not a pixel count >= 64"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "f.png")
    r = subprocess.run([sys.executable, "-c", "import sys\nfrom dynface.core.imageio import read_rgb, ImageError\n"
                        "try:\n    read_rgb(sys.argv[1])\nexcept ImageError as e:\n    print(e)\n",
                        str(tmp_path / "f.png")], capture_output=True, text=True, timeout=120, env=ENV)
    assert "is a FIFO, not an image file; refused" in r.stdout, r.stderr


# ---------------------------------------------------------------- 7. exit status and silent cases

def test_eval_exits_1_when_any_row_fails(tmp_path, capsys):
    for i in range(3):
        save(tmp_path / "r" / f"f{i}.png", i)
        save(tmp_path / "g" / f"f{i}.png", i + 10)
    (tmp_path / "r" / "f1.png").write_bytes(b"broken")
    code = main(["eval", "--restored", str(tmp_path / "r"), "--gt", str(tmp_path / "g"), "--metrics", "psnr"])
    cap = capsys.readouterr()
    assert code == 1 and "1 of 3 image(s) failed" in cap.err and "f1.png" in cap.err


def test_empty_input_folder_is_an_error_everywhere(ms, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".tmp-x.png").write_bytes(b"half")  # only a leftover temp: still empty
    e = str(tmp_path / "empty")
    for argv in (["restore", e, "-o", str(tmp_path / "o"), "--weights-dir", str(ms), "-q"],
                 ["degrade", e, "-o", str(tmp_path / "o"), "-q"],
                 ["clean", e, "-o", str(tmp_path / "o"), "--weights-dir", str(ms), "-q"],
                 ["eval", "--restored", e]):
        code = main(argv)
        cap = capsys.readouterr()
        assert code != 0 and "no images found" in cap.err, (argv[0], cap.err)


def test_multi_frame_inputs_say_so(ms, tmp_path, capsys):
    frames = [Image.fromarray(_picture(40, i)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    code, err = restore([str(tmp_path / "anim.gif"), str(tmp_path / "pages.tif"), "-o", str(tmp_path / "o")], ms,
                        capsys)
    assert code == 0
    assert "warning: " + str(tmp_path / "anim.gif") + ": GIF with 3 frames; only the first is used" in err
    assert "TIFF with 3 frames" in err


# ---------------------------------------------------------------- 8. 16-bit images keep their brightness

def test_dark_16_bit_image_stays_dark(tmp_path):
    for peak in (102, 410, 65535):
        a = np.zeros((32, 32), np.uint16)
        a[:, 16:] = peak
        Image.fromarray(a).save(tmp_path / "g.png")
        assert Image.open(tmp_path / "g.png").mode.startswith("I")
        got = read_rgb(tmp_path / "g.png")[0, 31, 0]
        assert got == round(peak / 65535 * 255), (peak, got)


# ---------------------------------------------------------------- 9. smaller ones

def test_export_only_on_a_refused_checkpoint_is_a_clear_refusal(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": Evil(), "step": 1}, run / "ckpt.pt")
    code = main(["train", "rm", "--run-dir", str(run), "--export-only"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("dynface: error: refusing to load") and "internal" not in err, err
    assert not marker.exists()
    code = main(["train", "rm", "--run-dir", str(tmp_path / "nothing"), "--export-only"])
    assert code == 1 and "no such checkpoint" in capsys.readouterr().err


def test_restore_shows_the_whole_mismatch_report(ms, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    _set_arch(bad / "rm.safetensors", channels=[8, 32])
    save(tmp_path / "a.png")
    code = main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--weights-dir", str(bad), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "shape mismatches (7)" in err
    assert "enc.1.0.conv1.weight: file [16, 16, 3, 3] vs network [32, 32, 3, 3]" in err


# ---------------------------------------------------------------- the bad-input corpus through every command

def test_bad_input_corpus_through_every_command(ms, tmp_path, capsys):
    c = build_corpus(tmp_path / "in")
    before = c.hashes()
    inputs = [str(c.root)] + [str(p) for p in c.explicit_bad]
    n_bad = len(c.bad) + len(c.explicit_bad)
    runs = {
        "restore": ["restore", *inputs, "-o", str(tmp_path / "restore"), "--weights-dir", str(ms), "--aligned",
                    "--framing", "model", "--steps", "2", "--threads", "1", "-q"],
        "degrade": ["degrade", *inputs, "-o", str(tmp_path / "degrade"), "--pixel-scale", "0.25", "-q"],
        "clean": ["clean", str(c.root), "-o", str(tmp_path / "clean"), "--weights-dir", str(ms), "--method", "rm",
                  "--threads", "1", "-q"],
        "eval": ["eval", "--restored", str(c.root), "--gt", str(c.root), "--metrics", "psnr,ssim",
                 "-o", str(tmp_path / "eval")],
    }
    for name, argv in runs.items():
        code = main(argv)
        cap = capsys.readouterr()
        text = cap.out + cap.err
        assert code == 1, (name, text)                            # some files failed: exit 1, never 0
        assert "Traceback" not in text and "internal error" not in text, (name, text)
        for bad in c.bad:
            assert bad in text, (name, bad)                       # every bad file named
        for skipped in c.skipped:
            assert f"{skipped}:" not in text or skipped == "fifo.png", (name, skipped)  # listing never reads them
        assert c.hashes() == before, name                         # inputs unchanged
        out = tmp_path / name
        assert temp_files(out) == [], name                        # nothing half-written left
    # no two inputs mapped to one output
    finals = tree(tmp_path / "restore" / "final_results")
    assert len(finals) == len(c.good) and len({Path(f).stem.casefold() for f in finals}) == len(c.good)
    rows = list(csv.DictReader((tmp_path / "degrade" / "params.csv").open()))
    assert len(rows) == len(c.good) and len({r["output"] for r in rows}) == len(c.good)
    assert len(tree(tmp_path / "clean")) == len(c.good)
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert len(doc["rows"]) == len(c.good) + len(c.bad)
    assert sum(r["status"] != "ok" for r in doc["rows"]) == len(c.bad)
    assert n_bad == len(c.bad) + len(c.explicit_bad)
