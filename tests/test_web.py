"""The web app (`dynface serve`): its handler called directly with good and bad input, its flags, and
an end-to-end run in a real headless Chromium driven by selenium (skipped where none is installed)."""
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from tiny_models import make_tiny_modelset
from dynface.cli import main
from dynface.core.imageio import to_uint8, write_image
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions
from dynface.web.jobs import FIDELITY_SUPPORTED, JobSettings, ServerConfig, check_upload, run_job

gr = pytest.importorskip("gradio", reason='the web app needs the "web" extra (Gradio)')
from dynface.web.page import RestorePage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALIGNED, WHOLE = "Aligned face crops (FFHQ framing)", "Whole photos (detect faces)"


@pytest.fixture(scope="module")
def restorer(tmp_path_factory):
    return Restorer(ModelSet.load(make_tiny_modelset(tmp_path_factory.mktemp("ms"))))


@pytest.fixture
def page(restorer, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    return RestorePage(restorer, RestoreOptions(precision="fp32"), ServerConfig(max_files=3), work_root=work)


@pytest.fixture
def face_file(tmp_path):
    """A 64x64 smooth image saved as an 'aligned crop' (the tiny models need no real face)."""
    return write_image(tmp_path / "face.png", to_uint8(smooth_image(64)))


def run(page, files, kind=ALIGNED, method="DynFaceRestore", default_fidelity=True, fidelity=0.5, steps=2, seed=0):
    """Call the handler as Gradio does; returns its single output list (status, *sliders, gallery, finals, zip)."""
    outs = list(page.restore(files, kind, method, default_fidelity, fidelity, steps, seed))
    assert len(outs) == 1
    return outs[0]


def status_of(out) -> str:
    return out[0]


def test_good_crop_gives_slider_gallery_png_and_zip_then_job_folder_is_removed(page, face_file):
    gen = page.restore([str(face_file)], ALIGNED, "DynFaceRestore", True, 0.5, 2, 0)
    out = next(gen)
    status, sliders, (gallery, finals, zip_path) = out[0], out[1:4], out[4:]
    assert status.startswith("Restored 1 of 1 photo(s)") and "Error" not in status
    assert sliders[0]["visible"] and all(not s["visible"] for s in sliders[1:])
    before, after = sliders[0]["value"]
    assert before.shape == after.shape == (64, 64, 3) and not np.array_equal(before, after)
    assert [cap for _, cap in gallery] == ["face.png face 00"]
    assert Image.open(finals[0]).size == (64, 64) and finals[0].endswith(".png")
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        report = json.loads(z.read("report.json"))
    assert {"final_results/face.png", "restored_faces/face_00.png", "cropped_faces/face_00.png",
            "cmp/face_00.png", "report.json"} <= names
    assert report["settings"]["steps"] == 2 and report["photos"][0]["name"] == "face.png"
    # outputs exist while Gradio copies them; the job folder is gone once the handler finishes
    assert list(page.work_root.iterdir())
    with pytest.raises(StopIteration):
        next(gen)
    assert list(page.work_root.iterdir()) == []


def test_bad_files_are_one_line_messages_and_good_ones_still_restore(page, face_file, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    trunc = tmp_path / "broken.png"
    trunc.write_bytes(face_file.read_bytes()[:60])
    out = run(page, [str(text), str(face_file), str(trunc)])
    status = status_of(out)
    assert "Restored 1 of 3 photo(s)" in status
    assert "notes.txt: not an image" in status and "broken.png:" in status
    assert str(tmp_path) not in status and "Traceback" not in status  # names, never server paths
    assert sum(s["visible"] for s in out[1:4]) == 1 and len(out[-3]) == 1


def test_limits_size_pixels_count_and_settings(restorer, face_file, tmp_path):
    cfg = ServerConfig(max_upload_mb=0.001, max_pixels=1000, max_files=2, max_steps=10)
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(big)
    with pytest.raises(Exception, match=r"big.png: file too large \(0.0 MB, the limit is 0.001 MB\)"):
        check_upload(big, "big.png", cfg)
    with pytest.raises(Exception, match=r"face.png: 64x64 is 0.0 MP, more than the limit"):
        check_upload(face_file, "face.png", ServerConfig(max_pixels=1000))
    page = RestorePage(restorer, RestoreOptions(precision="fp32"), cfg, work_root=tmp_path)
    assert status_of(run(page, [])) == "**Error:** no photo: upload one or more images first"
    assert "too many photos: 3 uploaded, at most 2" in status_of(run(page, [str(face_file)] * 3))
    assert "steps must be between 1 and 10, got 11" in status_of(run(page, [str(face_file)], steps=11))
    assert "whole numbers" in status_of(run(page, [str(face_file)], steps=2.5))
    assert "seed must be a number" in status_of(run(page, [str(face_file)], seed="abc"))
    assert "unknown method" in status_of(run(page, [str(face_file)], method="GFPGAN"))
    assert not any(p.name.startswith("dynface-web-job-") for p in tmp_path.iterdir())


def test_whole_photo_without_a_face_says_so(page, tmp_path):
    flat = write_image(tmp_path / "wall.png", np.full((96, 128, 3), 128, np.uint8))
    status = status_of(run(page, [str(flat)], kind=WHOLE))
    assert "wall.png: no face found" in status and "Aligned face crops" in status


def test_job_timeout_stops_between_steps(restorer, face_file, tmp_path):
    cfg = ServerConfig(job_timeout_s=0.05)
    slow = Restorer(restorer.models)
    real = slow.restore

    def restore_slowly(y, opt, progress=None):
        time.sleep(0.1)  # past the deadline before the first sampling step reports
        return real(y, opt, progress)

    slow.restore = restore_slowly
    res = run_job([face_file], JobSettings(aligned=True, steps=3), slow, RestoreOptions(precision="fp32"), cfg, tmp_path / "job")
    assert res.photos == [] and res.messages == [
        "the job ran past the time limit of 0.05 s and was stopped; try fewer steps or fewer photos"]


def test_internal_error_is_one_line_and_the_handler_keeps_working(page, face_file, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(page.restorer, "restore", broken)
    status = status_of(run(page, [str(face_file)]))
    assert "face.png: internal error (RuntimeError: boom); see the server log" in status
    monkeypatch.undo()
    assert status_of(run(page, [str(face_file)])).startswith("Restored 1 of 1")


def test_steps_default_to_the_chosen_methods(tmp_path, face_file):
    """The Steps slider follows the method (the manifest's `steps`, `idm_steps` for IDM, within the
    slider's range); a job that names no steps runs, and reports, the method's default."""
    root = make_tiny_modelset(tmp_path / "ms", defaults={"steps": 2, "idm_steps": 3})
    (tmp_path / "work").mkdir()
    page = RestorePage(Restorer(ModelSet.load(root)), RestoreOptions(precision="fp32"),
                       ServerConfig(max_steps=2), work_root=tmp_path / "work")
    assert [page.default_steps(m) for m in ("DynFaceRestore", "RM only", "IDM")] == [2, 2, 2]  # capped at 2
    page.cfg = ServerConfig()
    assert [page.default_steps(m) for m in ("DynFaceRestore", "RM only", "IDM")] == [2, 2, 3]
    res = run_job([str(face_file)], JobSettings(method="idm", aligned=True), page.restorer, page.base, page.cfg,
                  tmp_path / "job")
    with zipfile.ZipFile(res.zip_path) as z:
        assert json.loads(z.read("report.json"))["options"]["steps"] == 3


def test_methods_and_fidelity_pass_through_only_where_supported(page, face_file):
    for method in ("RM only", "IDM"):
        assert status_of(run(page, [str(face_file)], method=method)).startswith("Restored 1 of 1")
    s = page.settings_from_page(ALIGNED, "IDM", False, 0.25, 4, 7)
    assert (s.method, s.aligned, s.steps, s.seed) == ("idm", True, 4, 7)
    opt = s.options(RestoreOptions())
    if FIDELITY_SUPPORTED:
        assert s.fidelity == 0.25 and opt.fidelity == 0.25
        assert page.settings_from_page(ALIGNED, "IDM", True, 0.25, 4, 7).fidelity is None
    else:
        assert s.fidelity is None and not hasattr(opt, "fidelity")


def test_serve_flags_come_from_server_config_and_bad_ones_are_one_line(capsys):
    from dynface.cli.serve import config_from_args
    import argparse

    ap = argparse.ArgumentParser()
    from dynface.cli.serve import register

    register(ap.add_subparsers())
    a = ap.parse_args(["serve", "--port", "8000", "--max-files", "3", "--job-timeout-s", "30"])
    assert config_from_args(a) == ServerConfig(port=8000, max_files=3, job_timeout_s=30.0)
    assert main(["serve", "--port", "70000"]) == 1
    err = capsys.readouterr().err
    assert err == "dynface: error: --port must be between 1 and 65535, got 70000\n"
    assert main(["serve", "--max-files", "0"]) == 1
    assert "--max-files must be positive" in capsys.readouterr().err


def test_page_runs_one_job_at_a_time_with_a_bounded_queue_offline(restorer):
    cfg = ServerConfig(max_files=3, queue_size=5, cache_ttl_s=1200)
    demo = RestorePage(restorer, RestoreOptions(), cfg).build()
    (event,) = [f for f in demo.fns.values() if f.name == "restore"]
    assert event.concurrency_limit == 1 and demo._queue.max_size == 5
    assert len(event.outputs) == 1 + 3 + 3  # status, one slider per photo, gallery, PNGs, zip
    assert demo.analytics_enabled is False and demo.delete_cache == (300, 1200)


# ------------------------------------------------------------------------------ real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 600  # bound on every wait below


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=WAIT_S, every=0.5):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def server(tmp_path):
    """`dynface serve` with the embedded models on a free loopback port; stopped and checked after the test."""
    import urllib.request

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
               TMPDIR=str(tmp_path))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dynface.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", "1"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"dynface serve exited: {(tmp_path / 'serve.log').read_text()[-2000:]}")
        try:
            return urllib.request.urlopen(url, timeout=5).status == 200
        except OSError:
            return False

    try:
        wait_for("dynface serve to answer", up, timeout=180)
        yield url, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                    reason="no Chromium here: apt-get install -y chromium chromium-driver (.ci/run does)")
def test_browser_upload_restore_compare_download_and_error(server, data_dir, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium is in the "web" extra')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = server
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1250"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
    try:
        driver.get(url)
        css = lambda sel: driver.find_elements(By.CSS_SELECTOR, sel)  # noqa: E731
        wait_for("the page", lambda: css("#dynface-run"), timeout=120)
        face = data_dir / "val" / "real" / "codeformer_0240.png"  # the README's example face
        if not face.exists():
            face = sorted((data_dir / "val" / "real").glob("*.png"))[0]
        css("#dynface-upload input[type=file]")[0].send_keys(str(face))
        wait_for("the upload to show", lambda: face.stem in css("#dynface-upload")[0].text, timeout=120)
        next(e for e in css("#dynface-kind label") if e.text.startswith("Aligned")).click()
        # 100 steps rather than the default 25: on a fast CPU (AVX-512 BF16) the default job ends
        # within ~5 s, and the progress text, redrawn at each step, was on screen too briefly to be caught
        box = css("#dynface-steps input[type=number]")[0]
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("100", Keys.TAB)
        wait_for("the steps to read 100", lambda: box.get_attribute("value") == "100", timeout=30)
        t0 = time.monotonic()
        css("#dynface-run")[0].click()

        progress_seen = []

        def slider_images():
            if not progress_seen and "photo 1/1 (" in driver.find_element(By.TAG_NAME, "body").text:
                progress_seen.append(time.monotonic() - t0)  # the progress bar names the photo and step
            imgs = css("#dynface-slider-0 img")
            loaded = [i for i in imgs if driver.execute_script("return arguments[0].complete && "
                                                              "arguments[0].naturalWidth > 0", i)]
            return loaded if len(loaded) >= 2 else None

        imgs = wait_for("the before/after slider", slider_images, every=0.2)
        seconds = time.monotonic() - t0
        status = css("#dynface-status")[0].text
        assert status.startswith("Restored 1 of 1 photo(s)"), status
        assert progress_seen, "no progress shown while the job ran"
        assert len({i.get_attribute("src") for i in imgs}) >= 2  # two different images: before and after
        assert face.name in css("#dynface-slider-0")[0].text
        wait_for("the face gallery", lambda: css("#dynface-faces img"), timeout=60)
        print(f"\nupload to result: {seconds:.1f} s for one aligned face ({face.name}), 100 steps")
        shot = tmp_path / "web-app.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("DYNFACE_WEB_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DYNFACE_WEB_SCREENSHOT"])
        # nothing was fetched from another host: the page works offline
        others = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"
                                       ".filter(n => !n.startsWith(location.origin) && !n.startsWith('data:')"
                                       " && !n.startsWith('blob:'))")
        assert others == []
        # the final PNG downloads
        link = wait_for("the PNG link", lambda: css("#dynface-finals a"), timeout=60)[0]
        link.click()
        got = wait_for("the download", lambda: [p for p in downloads.iterdir() if p.suffix == ".png"], timeout=60)
        with Image.open(got[0]) as im:
            assert im.size == Image.open(face).size
        # the job's own folder is gone (what the page serves lives in Gradio's cache)
        wait_for("the job folder to be removed", lambda: not list(tmp_path.glob("dynface-web-job-*")), timeout=30)
        # a text file: a one-line message on the page, and the app keeps serving
        driver.get(url)
        wait_for("the page", lambda: css("#dynface-run"), timeout=120)
        text = tmp_path / "notes.txt"
        text.write_text("this is not a photo")
        css("#dynface-upload input[type=file]")[0].send_keys(str(text))
        wait_for("the upload to show", lambda: "notes" in css("#dynface-upload")[0].text, timeout=120)
        css("#dynface-run")[0].click()
        msg = wait_for("the error message", lambda: "notes.txt" in css("#dynface-status")[0].text
                       and css("#dynface-status")[0].text)
        assert "notes.txt: not an image" in msg and "Traceback" not in driver.page_source
    finally:
        driver.quit()
