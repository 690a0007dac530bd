"""Synthetic faces: the generator, the framing check, `dynface synth` and training on its folders."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynface.core.imageio import read_rgb, write_image
from dynface.face.framing import check_framing
from dynface.training import data as data_mod


@pytest.fixture(scope="module")
def generator():
    from dynface.synth.generator import FaceGenerator, GeneratorUnavailable

    try:
        return FaceGenerator(threads=1)
    except GeneratorUnavailable as e:
        if os.environ.get("CI"):  # CI installs the extra: a missing generator there is a failure
            pytest.fail(str(e))
        pytest.skip(str(e))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_latent_is_a_pure_function_of_seed_and_index():
    from dynface.synth.generator import latent

    assert np.array_equal(latent(3, 7), latent(3, 7))
    assert not np.array_equal(latent(3, 7), latent(3, 8))
    assert not np.array_equal(latent(3, 7), latent(4, 7))
    z = np.stack([latent(0, i) for i in range(200)])
    assert z.shape == (200, 512) and z.dtype == np.float32
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_same_seed_same_bytes_and_resume_fills_only_what_is_missing(generator, tmp_path):
    from dynface.jobs.synth import SynthSettings, synthesize

    s = SynthSettings(size=128, seed=5)
    full = synthesize(tmp_path / "a", 3, s, generator=generator, progress=False)
    assert full["written"] == 3 and full["passed"] == 3 and full["rejected"] == []
    part = synthesize(tmp_path / "b", 1, s, generator=generator, progress=False)
    assert part["written"] == 1
    rest = synthesize(tmp_path / "b", 3, s, generator=generator, progress=False)
    assert rest["written"] == 2 and rest["skipped"] == 1
    assert _files(tmp_path / "a") == _files(tmp_path / "b")  # faces, faces.csv and synth.json alike
    again = synthesize(tmp_path / "a", 3, s, generator=generator, progress=False)
    assert again["written"] == 0 and again["skipped"] == 3
    img = read_rgb(tmp_path / "a" / "face_000002.png")
    assert img.shape == (128, 128, 3)
    other = synthesize(tmp_path / "c", 1, SynthSettings(size=128, seed=6), generator=generator, progress=False)
    assert other["written"] == 1
    assert (tmp_path / "c" / "face_000000.png").read_bytes() != (tmp_path / "a" / "face_000000.png").read_bytes()


def test_an_empty_or_unlisted_face_is_made_again(generator, tmp_path):
    from dynface.jobs.synth import SynthSettings, synthesize

    s = SynthSettings(size=128)
    synthesize(tmp_path / "a", 2, s, generator=generator, progress=False)
    want = _files(tmp_path / "a")
    (tmp_path / "a" / "face_000001.png").write_bytes(b"")  # a 0-byte file is not a finished face
    rep = synthesize(tmp_path / "a", 2, s, generator=generator, progress=False)
    assert rep["written"] == 1 and _files(tmp_path / "a") == want
    (tmp_path / "a" / "faces.csv").unlink()  # killed before the list was written: both listed again,
    calls = []                                 # checked from their files, not rendered again

    class Counting:
        path = generator.path

        def face(self, *a, **k):
            calls.append(a)
            return generator.face(*a, **k)

    rep = synthesize(tmp_path / "a", 2, s, generator=Counting(), progress=False)
    assert rep["written"] == 2 and _files(tmp_path / "a") == want and calls == []
    (tmp_path / "a" / "faces.csv").unlink()
    (tmp_path / "a" / "face_000000.png").write_bytes(b"not a png")  # unreadable: rendered again
    rep = synthesize(tmp_path / "a", 2, s, generator=Counting(), progress=False)
    assert rep["written"] == 2 and _files(tmp_path / "a") == want and len(calls) == 1


def test_a_run_that_dies_leaves_whole_files_and_its_list(generator, tmp_path):
    from dynface.jobs.synth import SynthSettings, synthesize

    class Dies:
        path = generator.path

        def __init__(self):
            self.calls = 0

        def face(self, *a, **k):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return generator.face(*a, **k)

    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "a", 4, SynthSettings(size=128), generator=Dies(), progress=False)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["face_000000.png", "face_000001.png", "faces.csv", "synth.json"]  # no temp file
    rows = list(csv.DictReader(open(tmp_path / "a" / "faces.csv")))
    assert [r["index"] for r in rows] == ["0", "1"] and all(r["ok"] == "1" for r in rows)


def test_a_folder_never_mixes_two_recipes(generator, tmp_path):
    from dynface.jobs.synth import SynthError, SynthSettings, synthesize

    synthesize(tmp_path / "a", 1, SynthSettings(size=128), generator=generator, progress=False)
    with pytest.raises(SynthError, match="truncation=0.7"):
        synthesize(tmp_path / "a", 1, SynthSettings(size=128, truncation=0.5), generator=generator, progress=False)


def test_rejected_faces_are_listed_and_kept_apart(generator, tmp_path, monkeypatch):
    import dynface.jobs.synth as synth_job
    from dynface.face.framing import FramingCheck

    real = synth_job.check_framing

    def strict(rgb):  # the second face fails, as a face with two detections would
        c = real(rgb)
        return FramingCheck(2, c.score, c.eye_deviation, c.deviation, False, "2 faces found") if strict.n == 1 \
            else c

    def counted(rgb):
        r = strict(rgb)
        strict.n += 1
        return r

    strict.n = 0
    monkeypatch.setattr(synth_job, "check_framing", counted)
    rep = synth_job.synthesize(tmp_path / "a", 3, synth_job.SynthSettings(size=128), generator=generator,
                               progress=False)
    assert rep["passed"] == 2 and rep["rejected"] == [(1, "2 faces found")]
    assert (tmp_path / "a" / "rejected" / "face_000001.png").is_file()
    assert not (tmp_path / "a" / "face_000001.png").exists()
    listed = [p.name for p in data_mod.split_files(tmp_path / "a", "all")]
    assert listed == ["face_000000.png", "face_000002.png"]  # training never sees the rejected face
    rows = {r["index"]: r for r in csv.DictReader(open(tmp_path / "a" / "faces.csv"))}
    assert rows["1"]["ok"] == "0" and rows["1"]["file"] == "rejected/face_000001.png"


def test_framing_check_known_answers(data_dir):
    face = read_rgb(sorted((data_dir / "london").iterdir())[0])
    ok = check_framing(face)
    assert ok.ok and ok.faces == 1 and ok.eye_deviation < 0.02, ok
    shifted = np.roll(face, face.shape[1] // 8, axis=1)  # the face 1/8 of the side to the right
    bad = check_framing(shifted)
    assert not bad.ok and "eyes" in bad.reason and 0.1 < bad.eye_deviation < 0.15, bad
    assert check_framing(np.full((256, 256, 3), 128, np.uint8)).reason == "no face found"
    small = face[::2, ::2]
    four = np.concatenate([np.concatenate([small, small], 1)] * 2, 0)
    many = check_framing(four)
    assert not many.ok and many.faces == 4 and many.reason == "4 faces found"
    assert not check_framing(face[:, :400]).ok


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "dynface.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_synth_command_writes_checked_faces(generator, tmp_path):
    r = _cli("synth", "-n", "2", "-o", str(tmp_path / "o"), "--size", "256", "--ext", "jpg", "-q")
    assert r.returncode == 0, r.stderr
    assert "wrote 2 face(s)" in r.stderr and "2/2 passed the checks" in r.stderr
    assert read_rgb(tmp_path / "o" / "face_000001.jpg").shape == (256, 256, 3)
    r = _cli("synth", "-n", "2", "-o", str(tmp_path / "o"), "--size", "512", "-q")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "size=256" in r.stderr
    r = _cli("synth", "-n", "0", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "must be 1..10000000" in r.stderr


def test_missing_generator_names_the_install_command(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _cli("synth", "-n", "1", "-o", str(tmp_path / "o"), env={"DYNFACE_SYNTH_DIR": str(empty)})
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "pip install --no-deps random-face==2021.7.21.1" in r.stderr and "Traceback" not in r.stderr
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from dynface.synth.generator import FaceGenerator, GeneratorUnavailable\n"
            "try:\n    FaceGenerator()\nexcept GeneratorUnavailable as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "OpenVINO runtime is not installed" in r.stdout and 'dynface[synth]' in r.stdout


def _solid_folder(folder: Path, value: int, n: int = 4, size: int = 16) -> str:
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"{folder.name}{i}.png", np.full((size, size, 3), value, np.uint8))
    return str(folder)


def test_sources_mix_at_their_weights_whatever_their_sizes(tmp_path):
    dark = _solid_folder(tmp_path / "dark", 0, n=2)
    light = _solid_folder(tmp_path / "light", 255, n=9)
    data = [{"path": dark, "weight": 1}, {"path": light, "weight": 3}]
    images, probs, windows = data_mod.load_sources(data, 16, split="all", cache_dir=tmp_path / "cache")
    assert windows is None
    assert images.shape == (11, 3, 16, 16) and torch.isclose(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    b = data_mod.Batcher(images, seed=0, probs=probs)
    x = torch.cat([b(200) for _ in range(20)])
    share = (x.mean(dim=(1, 2, 3)) < 0).float().mean().item()
    assert abs(share - 0.25) < 0.03, share  # 1 : 3, although the light folder has 4.5x the faces
    with pytest.raises(ValueError, match="positive"):
        data_mod.sources([{"path": dark, "weight": 0}])
    with pytest.raises(ValueError, match="path"):
        data_mod.sources([{"folder": dark}])


def test_one_source_draws_exactly_as_before(tmp_path):
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    b = data_mod.Batcher(images, seed=4)
    gen = torch.Generator().manual_seed(4)
    for _ in range(3):
        want = torch.randint(0, 10, (5,), generator=gen)
        flip = torch.rand(5, generator=gen)  # noqa: F841 - the flips draw next
        assert torch.equal(b(5)[:, 0, 0, 0], images[want].float().div(127.5).sub(1)[:, 0, 0, 0])


def test_prior_trains_on_a_synth_folder(generator, tmp_path):
    from dynface.jobs.synth import SynthSettings, synthesize
    from tiny_models import ARCH
    from dynface.training.loop import train

    synthesize(tmp_path / "synth", 3, SynthSettings(size=128), generator=generator, progress=False)
    cfg = {"kind": "prior", "data": [{"path": str(tmp_path / "synth"), "weight": 1}], "size": 32, "seed": 0,
           "split": "all", "iters": 2, "batch": 2, "lr": 1e-3, "warmup": 1, "ema": 0.9, "precision": "fp32",
           "ckpt_every": 2, "log_every": 1, "cache_dir": str(tmp_path / "cache"),
           "patch": {"sizes": [16, 32], "probs": [0.5, 0.5]}, "arch": ARCH["prior"]}
    out = train("prior", cfg, run_dir=tmp_path / "run", progress=False)
    assert out.exists() and (tmp_path / "run" / "split.json").exists()


def test_faces_drawn_on_the_fly_repeat_with_the_seed(generator, tmp_path):
    dark = _solid_folder(tmp_path / "dark", 0, n=2, size=32)
    images, _, _ = data_mod.load_sources(dark, 32, split="all", cache_dir=tmp_path / "cache")
    synth = data_mod.SynthDraw({"weight": 1, "seed": 2}, 32)
    synth.generator = generator
    batches = []
    for _ in range(2):
        b = data_mod.Batcher(images, seed=1, synth=synth, synth_share=0.5)
        batches.append(torch.cat([b(3), b(3)]))
    assert torch.equal(batches[0], batches[1])
    from_generator = batches[0].flatten(1).std(1) > 0.05  # the folder's faces are flat black
    assert 0 < from_generator.sum() < 6
    with pytest.raises(ValueError, match="unknown key"):
        data_mod.SynthDraw({"weigth": 1}, 32)


def test_torch_port_matches_the_runtime(generator):
    from dynface.synth.generator import latent
    from dynface.synth.torch_port import TorchFaceGenerator

    tg = TorchFaceGenerator(generator.path)
    z = latent(0, 3)
    w_ov = generator._mapping([z[None]])[0]
    w = torch.from_numpy(z[None]).requires_grad_(True)
    w_t = tg.mapping(w)
    assert np.abs(w_ov - w_t.detach().numpy()).max() < 1e-4
    w_t.sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0  # gradients reach the latent
    with torch.no_grad():
        img = tg(torch.from_numpy(w_ov)).numpy()
    want = generator._synthesis([w_ov])[0]
    assert img.shape == (1, 3, 1024, 1024)
    assert np.abs(img - want).max() < 2e-3 and np.abs(img - want).mean() < 1e-4


def test_cache_of_a_growing_folder_decodes_only_new_files(tmp_path, monkeypatch):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"f{i}.png", np.full((16, 16, 3), 40 * i, np.uint8))
    (folder / "broken.png").write_bytes(b"not an image")
    first = data_mod.load_cache(folder, 8, "all", cache_dir=tmp_path / "cache")
    assert first.shape == (3, 3, 8, 8)
    for i in range(3, 5):
        write_image(folder / f"f{i}.png", np.full((16, 16, 3), 40 * i, np.uint8))
    decoded = []
    real = data_mod._decode
    monkeypatch.setattr(data_mod, "_decode", lambda f, size: decoded.append(f.name) or real(f, size))
    grown = data_mod.load_cache(folder, 8, "all", cache_dir=tmp_path / "cache")
    assert decoded == ["f3.png", "f4.png"]  # neither the cached faces nor the known-bad file again
    assert torch.equal(grown, data_mod.load_cache(folder, 8, "all"))  # the same as decoding everything
    assert torch.equal(grown[:3], first) and grown[:, 0, 0, 0].tolist() == [0, 40, 80, 120, 160]
    assert data_mod.load_cache(folder, 8, "all", cache_dir=tmp_path / "cache", limit=3).shape[0] == 2  # broken, f0, f1


def test_a_whole_cache_is_mapped_from_its_file_not_copied(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"f{i}.png", np.full((16, 16, 3), 30 * i, np.uint8))
    cache = tmp_path / "cache"
    for _ in range(2):  # written, then read back
        x = data_mod.load_cache(folder, 8, "all", cache_dir=cache)
        assert x.shape == (4, 3, 8, 8) and x[:, 0, 0, 0].tolist() == [0, 30, 60, 90]
        array = json.loads(next(cache.glob("*.json")).read_text())["array"]
        maps = Path("/proc/self/maps")
        if maps.exists():  # the process maps the cache file instead of holding a copy
            assert array in maps.read_text()
        x[0] += 1  # copy-on-write: the file stays as cached
    assert data_mod.load_cache(folder, 8, "all", cache_dir=cache)[0, 0, 0, 0] == 0
    sub = data_mod.load_cache(folder, 8, "all", cache_dir=cache, limit=2)
    assert sub[:, 0, 0, 0].tolist() == [0, 30]  # a subset: a copy of its rows
