"""Ray engine (`--engine ray`): a local 2-worker Ray runtime on 127.0.0.1 gives the local engine's
bytes; a run killed midway resumes where it was. Needs the `ray` extra (CI installs it)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import smooth_image
from tiny_models import SIZE, make_tiny_modelset
from dynface.core.imageio import to_uint8, write_image
from dynface.jobs.clean import clean_folder, file_seed
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[1] / "src"
STEPS = 4
KILL_STEPS = 40  # enough sampling work per file that a kill lands midway


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return make_tiny_modelset(tmp_path_factory.mktemp("models"))


def faces(folder: Path, n: int, broken: bool = False) -> Path:
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"face{i:02d}.png", to_uint8(smooth_image(SIZE, seed=i)[0]))
    if broken:
        (folder / "broken.png").write_bytes(b"not an image")
    return folder


def local_clean(dataset, out, models, seed=5, steps=STEPS) -> dict:
    opt = RestoreOptions(method="idm", steps=steps, seed=seed, precision="fp32")
    return clean_folder(dataset, out, Restorer(ModelSet.load(models)), opt, progress=False)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}  # images only


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "RAY_USAGE_STATS_ENABLED": "0"}


def test_file_seed_depends_on_the_relative_path_only():
    assert file_seed(5, "a/face1.png") == file_seed(5, Path("a") / "face1.png") != file_seed(5, "a/face2.png")
    assert file_seed(6, "face1.png") != file_seed(5, "face1.png")


def test_ray_two_workers_write_the_local_engines_bytes(tmp_path, tiny_set, monkeypatch):
    from dynface.engines.ray_engine import clean_folder_ray, connect

    data = faces(tmp_path / "faces", 6, broken=True)
    rep_local = local_clean(data, tmp_path / "local", tiny_set)
    assert rep_local["written"] == 6 and len(rep_local["failed"]) == 1

    monkeypatch.setenv("PYTHONPATH", env()["PYTHONPATH"])  # the Ray workers import this tree's dynface
    assert connect(None, cpus=2)  # a local runtime with 2 CPUs on 127.0.0.1
    try:
        opt = RestoreOptions(method="idm", steps=STEPS, seed=5, precision="fp32")
        rep = clean_folder_ray(data, tmp_path / "ray", tiny_set, opt, workers=2, threads=1, batch=2, progress=False)
        where = ray.get(ray.remote(lambda: __import__("dynface").__file__).remote())
        node = ray.nodes()[0]["NodeManagerAddress"]
    finally:
        ray.shutdown()
    assert Path(where).resolve() == (SRC / "dynface" / "__init__.py").resolve()
    assert node == "127.0.0.1"
    assert rep["written"] == 6 and rep["skipped"] == 0
    assert [Path(f).name for f, _ in rep["failed"]] == ["broken.png"] and "not an image (format not recognised)" in rep["failed"][0][1]
    # a pool of 2 actors; which of them takes which batch is Ray's choice (under load one may take all),
    # and the bytes must not depend on it
    assert 1 <= len(rep["workers"]) <= 2
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")


def test_ray_run_killed_midway_resumes(tmp_path, tiny_set):
    n = 10
    data = faces(tmp_path / "faces", n)
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "dynface.cli", "clean", str(data), "-o", str(out), "--weights-dir", str(tiny_set),
           "--method", "idm", "--steps", str(KILL_STEPS), "--seed", "5", "--precision", "fp32", "--engine", "ray",
           "--workers", "2", "--batch", "1", "-q"]
    proc = subprocess.Popen(cmd, env=env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("face*.png"))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray runtime it started
    proc.wait()
    done, settled = -1, time.time()
    while time.time() - settled < 5 and time.time() < deadline:  # an actor may finish the file it was on
        if len(list(out.glob("face*.png"))) != done:
            done, settled = len(list(out.glob("face*.png"))), time.time()
        time.sleep(0.2)
    assert 2 <= done < n, done

    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"cleaned {n - done} image(s), skipped {done} already done" in res.stderr
    local_clean(data, tmp_path / "local", tiny_set, steps=KILL_STEPS)
    assert outputs(out) == outputs(tmp_path / "local")  # no partial file, none lost, same bytes


def test_ray_engine_bad_usage_is_one_line(tmp_path, capsys):
    from dynface.cli import main

    assert main(["clean", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--engine", "ray"]) == 1
    assert main(["clean", str(tmp_path), "-o", str(tmp_path / "o"), "--workers", "2"]) == 2
    with pytest.raises(SystemExit) as e:  # a number out of range is an argparse usage error: one line, exit 2
        main(["clean", str(tmp_path), "-o", str(tmp_path / "o"), "--engine", "ray", "--workers", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("dynface: error: ") for line in err[:2]), err
    assert err[2].startswith("dynface clean: error: argument --workers: 0: must be 1..4096"), err


def test_ray_synth_writes_the_local_engines_faces(tmp_path):
    from dynface.synth.generator import GeneratorUnavailable, model_dir

    try:
        model_dir()
    except GeneratorUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    base = [sys.executable, "-m", "dynface.cli", "synth", "-n", "2", "--size", "128", "--seed", "3", "-q"]
    local = subprocess.run(base + ["-o", str(tmp_path / "local")], capture_output=True, text=True, env=env(),
                           timeout=300)
    assert local.returncode == 0, local.stderr
    remote = subprocess.run(base + ["-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"],
                            capture_output=True, text=True, env=env(), timeout=600)
    assert remote.returncode == 0, remote.stderr
    assert outputs(tmp_path / "local") == outputs(tmp_path / "ray")
