"""Reliability promises (docs/reliability.md): nothing lost, nothing half-written, no garbage with exit 0, no hang, no traceback.

One test (or more) per promise of docs/reliability.md, then the bad-input corpus run through
restore, degrade, eval and clean. Pictures are synthetic; no face is written anywhere.
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
from dynface.jobs.clean import RECORD

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
    """Every file under root but clean's run record (bookkeeping, a dot file)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file() and p.name != RECORD)


def temp_files(root) -> list[str]:
    return [p for p in tree(root) if any(part.startswith(".tmp-") for part in Path(p).parts)]


# ---------------------------------------------------------------- outputs never overwrite each other

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


# ---------------------------------------------------------------- nothing half-written, temp files never read

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


# ---------------------------------------------------------------- invalid numbers: refused at the boundary

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


# ---------------------------------------------------------------- clean: reproducible across a resume

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


# ---------------------------------------------------------------- metadata cannot size the network

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


# ---------------------------------------------------------------- pixel cap before decoding; non-regular files

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


# ---------------------------------------------------------------- exit status and silent cases

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
    assert "TIFF with 3 frames" in err
    # `restore` takes a GIF named on its command line as a video (docs/video.md): every frame, a GIF out
    pytest.importorskip("av")
    from dynface.core.videoio import video_summary

    assert video_summary(tmp_path / "o" / "final_results" / "anim.gif")["frames"] == 3
    code = main(["degrade", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "d"), "-q"])
    assert code == 0
    assert "GIF with 3 frames; only the first is used" in capsys.readouterr().err


# ---------------------------------------------------------------- 16-bit images keep their brightness

def test_dark_16_bit_image_stays_dark(tmp_path):
    for peak in (102, 410, 65535):
        a = np.zeros((32, 32), np.uint16)
        a[:, 16:] = peak
        Image.fromarray(a).save(tmp_path / "g.png")
        assert Image.open(tmp_path / "g.png").mode.startswith("I")
        got = read_rgb(tmp_path / "g.png")[0, 31, 0]
        assert got == round(peak / 65535 * 255), (peak, got)


# ---------------------------------------------------------------- smaller ones

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
        for f in tree(out):                                       # outputs neither hidden nor too long
            assert not Path(f).name.startswith(".") and len(os.fsencode(Path(f).name)) <= 255, (name, f)
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


# ---------------------------------------------------------------- hostile inputs: links, names, resumes, limits

def _hashes(root) -> dict:
    import hashlib

    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_restore_refuses_an_output_subfolder_that_links_to_the_inputs(ms, tmp_path, capsys):
    for i in range(2):
        save(tmp_path / "in" / f"f{i}.png", i)
    before = _hashes(tmp_path / "in")
    (tmp_path / "o").mkdir()
    os.symlink(tmp_path / "in", tmp_path / "o" / "final_results")
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys)
    assert code == 1 and "output subfolder" in err and "internal" not in err, err
    assert _hashes(tmp_path / "in") == before  # no input overwritten


def test_atomic_write_refuses_to_replace_a_protected_file_through_a_link(tmp_path):
    from dynface.core.atomic import OverwriteRefused, protect, write_bytes

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"input")
    os.symlink(tmp_path / "in", tmp_path / "out")
    with protect([tmp_path / "in" / "a.png"]):
        with pytest.raises(OverwriteRefused, match="refusing to overwrite"):
            write_bytes(tmp_path / "out" / "a.png", b"output")
        write_bytes(tmp_path / "out" / "b.png", b"fine")  # other names are written
    assert (tmp_path / "in" / "a.png").read_bytes() == b"input" and temp_files(tmp_path / "in") == []


CLEAN_FAST = ["--method", "rm", "--threads", "1", "-q"]


def _clean(ms, data, out, *extra):
    return main(["clean", str(data), "-o", str(out), "--weights-dir", str(ms), *CLEAN_FAST, *extra])


def _files(root) -> dict:
    return {n: (Path(root) / n).read_bytes() for n in tree(root)}


def test_clean_names_do_not_depend_on_limit_or_on_files_added_between_runs(ms, tmp_path, capsys):
    data = tmp_path / "ds"
    save(data / "a.jpg", 1)
    save(data / "a.png", 2)
    assert _clean(ms, data, tmp_path / "whole") == 0
    # a partial run (--limit 1) then the rest: the same files as the whole run, no stray copy
    assert _clean(ms, data, tmp_path / "resumed", "--limit", "1") == 0
    assert _clean(ms, data, tmp_path / "resumed") == 0
    whole = _files(tmp_path / "whole")
    assert sorted(whole) == ["a_jpg.png", "a_png.png"] and _files(tmp_path / "resumed") == whole
    # a same-stem file that appears between runs: the old output under the stem alone is removed
    later = tmp_path / "later"
    save(later / "a.jpg", 1)
    assert _clean(ms, later, tmp_path / "grown") == 0 and tree(tmp_path / "grown") == ["a.png"]
    save(later / "a.png", 2)
    capsys.readouterr()
    assert _clean(ms, later, tmp_path / "grown") == 0
    assert "removed" in capsys.readouterr().err
    assert _files(tmp_path / "grown") == whole


def test_clean_redoes_an_empty_or_damaged_existing_output(ms, tmp_path, capsys):
    for i in range(3):
        save(tmp_path / "ds" / f"f{i}.png", i)
    assert _clean(ms, tmp_path / "ds", tmp_path / "whole") == 0
    out = tmp_path / "c"
    assert _clean(ms, tmp_path / "ds", out) == 0
    (out / "f0.png").write_bytes(b"")                                       # a 0-byte file
    (out / "f1.png").write_bytes((out / "f1.png").read_bytes()[:100])       # a truncated one
    capsys.readouterr()
    assert _clean(ms, tmp_path / "ds", out) == 0
    err = capsys.readouterr().err
    assert "cleaned 2 image(s), skipped 1" in err and "damaged" in err, err
    assert _files(out) == _files(tmp_path / "whole")


BAD_UTF8 = b"b\xff\xfe-name.png"


def test_file_names_that_are_not_utf8_go_through_degrade_clean_and_eval(ms, tmp_path, capsys):
    d = tmp_path / "in"
    save(d / "a.png", 1)
    odd = os.path.join(os.fsencode(d), BAD_UTF8)
    with open(odd, "wb") as fh:
        fh.write((d / "a.png").read_bytes())
    assert main(["degrade", str(d), "-o", str(tmp_path / "d"), "--pixel-scale", "0.25", "-q"]) == 0
    assert "degraded 2 file(s)" in capsys.readouterr().err
    assert len(tree(tmp_path / "d")) == 4 and b"b\xff\xfe-name.png" in os.listdir(os.fsencode(tmp_path / "d"))
    assert _clean(ms, d, tmp_path / "c") == 0 and len(tree(tmp_path / "c")) == 2
    assert main(["eval", "--restored", str(d), "--gt", str(d), "--metrics", "psnr", "-o", str(tmp_path / "e")]) == 0
    rows = json.loads((tmp_path / "e" / "metrics.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert "b\\udcff\\udcfe-name.png" in (tmp_path / "e" / "metrics.csv").read_text(encoding="utf-8")
    assert "b\\udcff\\udcfe-name.png" in (tmp_path / "d" / "params.csv").read_text(encoding="utf-8")
    names = [r["file"] for r in json.loads((tmp_path / "d" / "params.json").read_text())["images"]]
    assert os.fsencode(sorted(names)[-1]) == BAD_UTF8  # the JSON report holds the exact name


def test_weights_with_nan_values_are_refused(ms, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    from dynface.modelset.folder import ModelError, ModelSet

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    with safe_open(str(bad / "rm.safetensors"), "pt") as f:
        meta = f.metadata()
    state = load_file(str(bad / "rm.safetensors"))
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(bad / "rm.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match="NaN or infinite"):
        ModelSet.load(bad)


def test_a_non_finite_restoration_is_a_failed_file_not_a_black_image(ms, tmp_path, monkeypatch, capsys):
    from dynface.modelset.folder import ModelSet

    real_load = ModelSet.load

    def load_nan(*a, **kw):  # weights that pass every check and still compute NaN
        models = real_load(*a, **kw)
        with torch.no_grad():
            for p in models.nets["rm"].parameters():
                p.fill_(float("nan"))
        return models

    monkeypatch.setattr(ModelSet, "load", load_nan)
    save(tmp_path / "in" / "a.png", 1)
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys, "--method", "rm")
    assert code == 1 and "NaN or infinite" in err and "restored 0 file(s)" in err, err
    assert tree(tmp_path / "o") == []


class _FifoWatchdog:
    """A FIFO that a blocking reader would wait on forever: after `after` s another process opens it
    for writing and closes it, so old code that waited reads an empty file (and fails the test)
    instead of hanging it. A process, not a thread: a reader blocked in native code may hold the GIL."""

    def __init__(self, path, after=3.0):
        os.mkfifo(path)
        self.proc = subprocess.Popen(["sh", "-c", f'sleep {after}; exec 3>"$0"', str(path)])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("which", ["manifest.json", "rm.safetensors", "degrade --config", "train --config"])
def test_fifos_as_model_files_or_configs_are_refused_not_waited_on(ms, tmp_path, which, capsys):
    import shutil

    from dynface.modelset.folder import ModelError, ModelSet

    folder = tmp_path / "ms"
    shutil.copytree(ms, folder)
    if which.endswith("--config"):
        save(tmp_path / "a.png")
        w = _FifoWatchdog(tmp_path / "cfg.yaml")
        try:
            t0 = time.time()
            argv = (["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "o")] if which.startswith("degrade")
                    else ["train", "rm", "--run-dir", str(tmp_path / "run")])
            code = main([*argv, "--config", str(tmp_path / "cfg.yaml"), "-q"])
        finally:
            w.close()
        err = capsys.readouterr().err
        assert code == 1 and "is a FIFO" in err and time.time() - t0 < 2.5, err
        return
    (folder / which).unlink()
    w = _FifoWatchdog(folder / which)
    try:
        t0 = time.time()
        with pytest.raises(ModelError, match="is a FIFO"):
            ModelSet.load(folder)
    finally:
        w.close()
    assert time.time() - t0 < 2.5


@pytest.mark.parametrize("key,value", [("steps", 1e9), ("zeta", float("nan")), ("n_guidance", 99),
                                       ("steps", 2.5), ("sigma_lr", -1), ("dm_sigma", "x")])
def test_manifest_defaults_are_range_checked(ms, tmp_path, key, value):
    import shutil

    from dynface.modelset.folder import ModelError, ModelSet

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["defaults"][key] = value
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match=f"defaults.{key}"):
        ModelSet.load(bad)


def test_a_huge_manifest_is_refused_before_it_is_read(ms, tmp_path):
    import resource
    import shutil

    from dynface.modelset.folder import ModelError, ModelSet

    bad = tmp_path / "bad"
    shutil.copytree(ms, bad)
    with open(bad / "manifest.json", "r+b") as fh:
        fh.truncate(1_500_000_000)  # sparse: 1.5 GB on paper, nothing on disk
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match="too large"):
        ModelSet.load(bad)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200_000  # KB: never read whole


def test_output_pixels_are_checked_against_the_cap(ms, tmp_path, capsys):
    save(tmp_path / "in" / "a.png", 1, size=40)  # 1600 px in; x8 is 102400 px out
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys, "--upscale", "8",
                        "--max-pixels", "50000")
    assert code == 1 and "the output would be 320x320" in err and tree(tmp_path / "o") == [], err
    code = main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "d"), "--size", "300", "--max-pixels", "50000",
                 "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "the output would be 300x300" in err and not (tmp_path / "d").exists(), err
    # the default cap (64 MP) refuses the largest --size at once
    code = main(["degrade", str(tmp_path / "in"), "-o", str(tmp_path / "d"), "--size", "8192", "-q"])
    assert code == 1 and "over the pixel cap" in capsys.readouterr().err


SERVE_BAD = [["--job-timeout-s", "nan"], ["--max-upload-mb", "inf"], ["--max-files", "100000"],
             ["--max-steps", "1e23"], ["--port", "0"], ["--queue-size", "-1"], ["--cache-ttl-s", "1e9"]]


@pytest.mark.parametrize("argv", SERVE_BAD, ids=[" ".join(a) for a in SERVE_BAD])
def test_serve_numeric_flags_are_ranged_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", *argv])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and f"argument {argv[0]}" in err, err


def test_serve_ranges_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("[1..65535]", "[1..64]", "[> 0, <= 86400]", "[1..1000]"):
        assert text in out, text


def test_serve_keeps_uploads_in_a_private_cache_removed_when_it_stops(ms, tmp_path, monkeypatch, capsys):
    import types

    from dynface.core.atomic import Terminated

    seen = {}

    class FakePage:  # stands in for the Gradio page: checks the cache, then the server gets SIGTERM
        def __init__(self, restorer, base, cfg):
            pass

        def launch(self, quiet=False):
            root = Path(os.environ["GRADIO_TEMP_DIR"])
            seen["root"], seen["mode"] = root, root.stat().st_mode & 0o777
            (root / "upload.png").write_bytes(b"someone's photo")
            raise Terminated(signal.SIGTERM)

    monkeypatch.setitem(sys.modules, "dynface.web.page", types.SimpleNamespace(RestorePage=FakePage))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    code = main(["serve", "--weights-dir", str(ms), "--threads", "1", "-q"])
    assert code == 143
    assert seen["mode"] == 0o700 and seen["root"].parent == tmp_path / "gradio"
    assert not seen["root"].exists() and os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "gradio")


_SLOW_TORCH = """
import importlib.abc, sys, time
class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch":
            print("importing torch", flush=True)
            time.sleep(60)
        return None
sys.meta_path.insert(0, Slow())
from dynface.cli import main
sys.exit(main(["info"]))
"""


def test_ctrl_c_while_the_libraries_load_is_one_line_and_130(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", _SLOW_TORCH], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV, preexec_fn=_default_signals)
    assert p.stdout.readline().strip() == "importing torch"
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    assert p.stderr.read().strip().splitlines() == ["interrupted"]


def test_unreadable_folders_and_symlink_loops_are_one_line_failures(tmp_path, capsys, monkeypatch):
    save(tmp_path / "in" / "a.png", 1)
    os.symlink("loop2.png", tmp_path / "in" / "loop1.png")
    os.symlink("loop1.png", tmp_path / "in" / "loop2.png")
    os.symlink("self", tmp_path / "self")
    # a loop named on the command line, loops inside a folder: each named, the batch goes on, exit 1
    code = main(["degrade", str(tmp_path / "self"), str(tmp_path / "in"), "-o", str(tmp_path / "d"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "internal" not in err, err
    for name in ("self", "loop1.png", "loop2.png"):
        assert f"{name}: is a symlink loop" in err, (name, err)
    assert tree(tmp_path / "d") == ["a.png", "params.csv", "params.json"]
    # an unreadable folder (chmod 000; root reads anyway, so the refusal is simulated)
    (tmp_path / "locked").mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code = main(["degrade", str(tmp_path / "locked"), "-o", str(tmp_path / "d2"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.splitlines() == [f"dynface: error: {tmp_path / 'locked'}: folder not readable "
                                              "(permission denied)"], err


def test_eval_fails_rows_a_crop_border_empties_and_refuses_unknown_metrics(tmp_path, capsys):
    for i in range(2):
        save(tmp_path / "r" / f"f{i}.png", i, size=40)
    code = main(["eval", "--restored", str(tmp_path / "r"), "--gt", str(tmp_path / "r"), "--metrics", "psnr,ssim",
                 "--crop-border", "20"])
    err = capsys.readouterr().err
    assert code == 1 and "2 of 2 image(s) failed" in err and "leaves no pixels" in err, err
    code = main(["eval", "--restored", str(tmp_path / "r"), "--gt", str(tmp_path / "r"), "--metrics", "pnsr"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "unknown metric(s) pnsr" in err, err


class _ClosedPipe:
    """stdout whose reader went away: every write raises EPIPE (no fileno: the real stdout stays)."""

    encoding, errors = "utf-8", "strict"

    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["info"], ["weights", "list"]])
def test_a_closed_stdout_is_a_quiet_exit(argv, monkeypatch, capsys):
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 141 and err == "", err


@pytest.mark.parametrize("cmd", ["restore", "degrade", "clean", "eval"])
def test_an_empty_output_path_is_a_usage_error(ms, tmp_path, cmd, capsys, monkeypatch):
    save(tmp_path / "in" / "a.png", 1)
    monkeypatch.chdir(tmp_path)
    argv = {"restore": ["restore", "in", "--aligned", "--weights-dir", str(ms), "--method", "rm", "-q"],
            "degrade": ["degrade", "in/a.png", "-q"], "clean": ["clean", "in", "--weights-dir", str(ms), "-q"],
            "eval": ["eval", "--restored", "in", "--gt", "in", "--metrics", "psnr"]}[cmd]
    code = main([*argv, "-o", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--output is empty" in err and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == ["in"] and os.listdir(tmp_path / "in") == ["a.png"]


def test_pixel_scale_help_range_is_what_degrade_accepts(tmp_path, capsys):
    import re

    with pytest.raises(SystemExit):
        main(["degrade", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    lo, hi = map(float, re.search(r"--pixel-scale PIXEL_SCALE scale.*?\[([\d.]+)\.\.([\d.]+)\]", help_text).groups())
    save(tmp_path / "a.png", 1, size=64)
    for v in (lo, hi):  # both ends of the advertised range work
        assert main(["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / f"o{v}"), "--pixel-scale", str(v),
                     "-q"]) == 0, capsys.readouterr().err
    for v in (lo * 0.9, hi * 1.1, 16.0):  # just outside: a usage error, never a refusal after parsing
        with pytest.raises(SystemExit) as e:
            main(["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "x"), "--pixel-scale", str(v), "-q"])
        assert e.value.code == 2


def test_train_and_bench_without_readable_images_are_one_line(ms, tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_text("not an image")
    (tmp_path / "empty").mkdir()
    code = main(["train", "rm", "--data", str(tmp_path / "junk"), "--iters", "1", "--run-dir", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "no readable train image" in err and "internal" not in err, err
    code = main(["bench", str(tmp_path / "empty"), "-o", str(tmp_path / "b"), "--weights-dir", str(ms), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.splitlines()[-1].endswith("dot files skipped)") and "no images found" in err, err


def test_web_job_settings_refuse_nan_steps_and_huge_seeds():
    page = pytest.importorskip("dynface.web.page")
    from dynface.web.jobs import JobError, JobSettings, ServerConfig

    whole = next(iter(page.INPUT_KINDS))
    for steps, seed in ((float("nan"), 0), (float("inf"), 0), (10, 2**64), (10, float("inf"))):
        with pytest.raises(JobError):
            s = page.RestorePage.settings_from_page(None, whole, "DynFaceRestore", True, 0.5, steps, seed)
            s.check(ServerConfig())
    with pytest.raises(JobError, match="seed must be between 0 and 9223372036854775807"):
        JobSettings(seed=2**63).check(ServerConfig())


def test_gif_files_are_listed_in_folders(tmp_path):
    save(tmp_path / "a.png", 1)
    Image.fromarray(_picture(40, 2)).save(tmp_path / "b.gif")
    assert [p.name for p in list_images([tmp_path])] == ["a.png", "b.gif"]


def test_output_names_are_never_hidden_nor_too_long(ms, tmp_path, capsys):
    from dynface.jobs.outnames import output_stems

    long_name = "x" * 247 + ".png"  # 251 bytes: a legal name
    save(tmp_path / "in" / long_name, 1)
    save(tmp_path / "in" / ".tmp-abc.png", 2)
    files = [tmp_path / "in" / long_name, tmp_path / "in" / ".tmp-abc.png"]
    names, _ = output_stems(files)
    assert not any(n.startswith(".") for n in names.values())
    code, err = restore([str(f) for f in files] + ["-o", str(tmp_path / "o"), "--suffix", "restored_v2"], ms, capsys)
    assert code == 0, err
    outs = tree(tmp_path / "o")
    assert len(outs) == 8 and not any(Path(o).name.startswith(".") for o in outs)
    assert max(len(os.fsencode(Path(o).name)) for o in outs) <= 255
    assert _clean(ms, tmp_path / "in", tmp_path / "c") == 0  # the visible input is cleaned; the sweep keeps it
    assert len(tree(tmp_path / "c")) == 1


def test_a_killed_runs_temp_file_is_removed_by_the_next_run(ms, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    save(tmp_path / "in" / "a.png", 1)
    final = tmp_path / "o" / "final_results"
    final.mkdir(parents=True)
    from dynface.core.atomic import _host_tag

    host = _host_tag()
    left = final / f".tmp-{host}-{dead.pid}-k1ll3d_x.png"      # what a SIGKILLed writer leaves
    live = final / f".tmp-{host}-{os.getpid()}-wr1t1ng_.png"  # a concurrent run's file being written
    other = final / f".tmp-ffffff-{dead.pid}-0th3rh0s.png"     # another host's writer (a shared disk)
    mine = final / ".tmp-notes.png"                            # a user's own dot file
    for p in (left, live, other, mine):
        p.write_bytes(b"half")
    code, err = restore([str(tmp_path / "in"), "-o", str(tmp_path / "o")], ms, capsys)
    assert code == 0, err
    assert not left.exists() and live.exists() and other.exists() and mine.exists()


def test_an_unexpected_error_is_one_internal_error_line(monkeypatch, capsys):
    import dynface.cli.info as info

    def boom(a):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(info, "cmd_info", boom)
    code = main(["info"])
    err = capsys.readouterr().err
    assert code == 3 and err == "dynface: internal error: RuntimeError: boom\n", err


def test_exit_code_table_in_the_docs_is_the_clis(capsys):
    """docs/reliability.md's exit-code table: the codes and meanings of cli.guard.EXIT_CODES, and every
    test it names exists."""
    import re

    from dynface.cli.guard import EXIT_CODES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    section = doc.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section.splitlines()
            if re.match(r"^\|\s*\d+\s*\|", ln)]
    table = {int(r[0]): r for r in rows}
    assert set(table) == set(EXIT_CODES)
    tests_src = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for code, (_, meaning, checked_by) in table.items():
        assert meaning == EXIT_CODES[code], (code, meaning)
        names = re.findall(r"`(test_\w+)", checked_by)
        assert names, code
        for name in names:
            assert f"def {name}(" in tests_src, name
