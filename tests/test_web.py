"""The web app (`dynface serve`): its handler called directly with good and bad input, its flags, and
an end-to-end run in a real headless Chromium driven by selenium (skipped where none is installed)."""
import html
import io
import json
import re
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
from dynface.web.jobs import JobSettings, ServerConfig, check_files, check_upload, keep_input, run_job

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
    return RestorePage(restorer, RestoreOptions(precision="fp32"), ServerConfig(max_files=3), work_root=work,
                       examples=False)


@pytest.fixture
def face_file(tmp_path):
    """A 64x64 smooth image saved as an 'aligned crop' (the tiny models need no real face)."""
    return write_image(tmp_path / "face.png", to_uint8(smooth_image(64)))


def run(page, files, kind=ALIGNED, method="DynFaceRestore", fidelity=0.0, upscale=1, steps=2, seed=0):
    """Call the handler as Gradio does; returns its single output list (status, *sliders, gallery, finals, zip)."""
    outs = list(page.restore(files, kind, method, fidelity, upscale, steps, seed, progress=lambda *a, **k: None))
    assert len(outs) == 1
    return outs[0]


def first_output(page, files, kind=ALIGNED, method="DynFaceRestore", fidelity=0.0, upscale=1, steps=2, seed=0):
    """The handler's output while its job folder still exists (close the generator to remove it)."""
    gen = page.restore(files, kind, method, fidelity, upscale, steps, seed, progress=lambda *a, **k: None)
    return next(gen), gen


def text_of(markup: str) -> str:
    """The text a browser shows for the status HTML (one line per block)."""
    return html.unescape(re.sub(r"<[^>]+>", "\n", markup)).replace("\n\n", "\n").strip()


def status_of(out) -> str:
    return text_of(out[0])


def test_good_crop_gives_slider_gallery_png_and_zip_then_job_folder_is_removed(page, face_file):
    gen = page.restore([str(face_file)], ALIGNED, "DynFaceRestore", 0.0, 1, 2, 0, progress=lambda *a, **k: None)
    out = next(gen)
    status, sliders, (gallery, finals, zip_path) = status_of(out), out[1:4], out[4:]
    assert status.startswith("Restored 1 of 1 photo(s)") and "Error" not in status
    assert "(DynFaceRestore, 2 steps, fidelity 0, 1x, seed 0)" in status
    assert 'class="dynface-done"' in out[0]
    assert sliders[0]["visible"] and all(not s["visible"] for s in sliders[1:])
    before, after = sliders[0]["value"]
    assert before.shape == after.shape == (64, 64, 3) and not np.array_equal(before, after)
    assert [cap for _, cap in gallery] == ["face 1/1 · face.png"]  # what tells faces apart comes first
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
    assert out[0].count('class="dynface-error"') == 2  # styled as errors, one block each
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
    assert status_of(run(page, [])) == "Error: no photo: upload one or more images first"
    assert "too many photos: 3 uploaded, at most 2" in status_of(run(page, [str(face_file)] * 3))
    assert "steps must be between 1 and 10, got 11" in status_of(run(page, [str(face_file)], steps=11))
    assert "whole numbers" in status_of(run(page, [str(face_file)], steps=2.5))
    assert "seed must be a number" in status_of(run(page, [str(face_file)], seed="abc"))
    assert "unknown method" in status_of(run(page, [str(face_file)], method="GFPGAN"))
    assert not any(p.name.startswith("dynface-web-job-") for p in tmp_path.iterdir())


def test_upscaled_result_has_a_size_limit():
    from dynface.web.jobs import check_output_size

    check_output_size(2000, 2000, 2, "a.jpg", ServerConfig())  # 16 MP: at the limit
    with pytest.raises(Exception, match=r"a.jpg: 4000x3000 upscaled 2x would be 48.0 MP, more than the limit of "
                                        r"16 MP; choose a smaller upscale"):
        check_output_size(4000, 3000, 2, "a.jpg", ServerConfig())
    check_output_size(4000, 3000, 2, "a.jpg", ServerConfig(max_pixels=50_000_000))  # a server that allows more


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


def test_methods_fidelity_and_upscale_reach_the_job(page, face_file):
    for method in ("RM only", "IDM"):
        assert status_of(run(page, [str(face_file)], method=method)).startswith("Restored 1 of 1")
    s = page.settings_from_page(ALIGNED, "IDM", 0.25, 2, 4, 7)
    assert (s.method, s.aligned, s.steps, s.seed, s.fidelity, s.upscale) == ("idm", True, 4, 7, 0.25, 2.0)
    assert s.options(RestoreOptions()).fidelity is None  # the sampler's own knob stays at the method's default
    out, gen = first_output(page, [str(face_file)], fidelity=0.8, upscale=2)
    with zipfile.ZipFile(out[-1]) as z:
        report = json.loads(z.read("report.json"))
        final = Image.open(io.BytesIO(z.read("final_results/face.png")))
    gen.close()
    assert report["settings"]["fidelity"] == 0.8 and report["settings"]["upscale"] == 2.0
    assert final.size == (128, 128) and out[1]["value"][0].shape == out[1]["value"][1].shape == (128, 128, 3)
    for bad, msg in ((1.5, "fidelity must be between 0 and 1, got 1.5"), (float("nan"), "fidelity must be a finite number, got nan"),
                     (None, "fidelity must be a number")):
        assert msg in status_of(run(page, [str(face_file)], fidelity=bad))
    assert "upscale must be between 1 and 4, got 8" in status_of(run(page, [str(face_file)], upscale=8))


def test_fidelity_keeps_that_share_of_the_input_higher_is_closer(page, face_file, tmp_path):
    """The page's fidelity in CodeFormer's sense: the result moves towards the input as it rises,
    by the whole distance between the restored face and the input over the range."""
    rng = np.random.default_rng(0)
    restored, original = (rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(2))
    assert keep_input(restored, original, 0.0) is restored
    assert np.array_equal(keep_input(restored, original, 1.0), original)
    half = keep_input(restored, original, 0.5).astype(int)
    assert np.abs(half - (restored.astype(int) + original) / 2).max() <= 0.5
    y = np.asarray(Image.open(face_file).convert("RGB"), dtype=float)
    finals = []
    for w in (0.0, 0.5, 1.0):
        out, gen = first_output(page, [str(face_file)], fidelity=w)
        finals.append(np.asarray(Image.open(out[-2][0]).convert("RGB"), dtype=float))
        gen.close()
    to_input = [np.abs(f - y).mean() for f in finals]
    assert to_input[0] > to_input[1] > to_input[2] and to_input[2] < 0.05 * to_input[0]


def test_upload_check_names_bad_files_at_upload_time(page, face_file, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert check_files([str(face_file)], page.cfg) == []
    assert check_files([str(text), str(face_file)], page.cfg) == [
        "notes.txt: not an image (cannot identify image file 'notes.txt')"]
    upd = page.check_uploads([str(text), str(face_file)])
    assert upd["visible"] and 'class="dynface-error"' in upd["value"] and "notes.txt: not an image" in upd["value"]
    assert str(tmp_path) not in upd["value"]
    assert page.check_uploads([str(face_file)])["visible"] is False and page.check_uploads(None)["value"] == ""
    assert "too many photos: 4 uploaded, at most 3" in page.check_uploads([str(face_file)] * 4)["value"]


def test_header_speaks_plainly_and_links_the_model_card(page):
    from dynface.web.page import models_in_words

    intro = page.intro()
    assert "docs/model-card.md" in intro and not re.search(r"\(\d+ it\)", intro) and "session" not in intro
    words = models_in_words(page.restorer.models)
    assert words.startswith("Models:") and "restoration network" in words and "it)" not in words

    class Bare:  # a model set whose manifest has none of the usual fields
        manifest, nets, size = {"files": "?"}, {}, 64

    assert models_in_words(Bare()) == "Models: the model set '', which work on faces of 64×64 pixels."


def test_examples_are_london_faces_degraded_at_run_time(tmp_path, data_dir, monkeypatch):
    from dynface.web import examples as ex

    folder = ex.examples_dir()
    assert folder is not None and folder.resolve() == (data_dir / "london").resolve()
    assert "CC BY 4.0" in ex.ATTRIBUTION
    a, b = ex.make_examples(tmp_path / "a"), ex.make_examples(tmp_path / "b")
    assert len(a) == len(ex.SPECS) and [e.caption for e in a] == [s.caption for s in ex.SPECS]
    for ea, eb, spec in zip(a, b, ex.SPECS):
        deg, again = np.asarray(Image.open(ea.path)), np.asarray(Image.open(eb.path))
        clean = np.asarray(Image.open(folder / spec.source).convert("RGB"))
        assert np.array_equal(deg, again) and deg.shape == clean.shape == (512, 512, 3)  # seeded: the same
        assert np.abs(deg.astype(int) - clean).mean() > 3  # visibly degraded
    monkeypatch.setenv(ex.EXAMPLES_ENV, str(tmp_path / "nowhere"))
    assert ex.examples_dir() is None and ex.make_examples(tmp_path / "c") == []  # no folder: no examples row


def test_steps_are_greyed_out_for_the_method_that_does_not_sample(page):
    assert page.steps_for_method("RM only")["interactive"] is False
    assert page.steps_for_method("IDM")["interactive"] is True


def test_serve_flags_come_from_server_config_and_bad_ones_are_one_line(capsys):
    from dynface.cli.serve import config_from_args
    import argparse

    ap = argparse.ArgumentParser()
    from dynface.cli.serve import register

    register(ap.add_subparsers())
    a = ap.parse_args(["serve", "--port", "8000", "--max-files", "3", "--job-timeout-s", "30"])
    assert config_from_args(a) == ServerConfig(port=8000, max_files=3, job_timeout_s=30.0)
    for argv, text in ((["--port", "70000"], "argument --port: 70000: must be 1..65535"),
                       (["--max-files", "0"], "argument --max-files: 0: must be 1..64")):
        with pytest.raises(SystemExit) as e:  # a usage error: exit 2, one line
            main(["serve", *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and text in err and len(err.strip().splitlines()) == 1, err


def test_page_runs_one_job_at_a_time_with_a_bounded_queue_offline(restorer):
    cfg = ServerConfig(max_files=3, queue_size=5, cache_ttl_s=1200)
    demo = RestorePage(restorer, RestoreOptions(), cfg).build()
    events = [f for f in demo.fns.values() if f.name == "restore"]
    assert len(events) == 2  # the Restore button and an example's click
    for event in events:
        assert event.concurrency_limit == 1 and len(event.outputs) == 1 + 3 + 3  # status, sliders, gallery, PNGs, zip
    assert demo._queue.max_size == 5
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    bg = by_id["dynface-background"]
    assert bg.interactive is False and bg.value is False and "Not available" in bg.info  # said plainly, not faked
    assert [v for _, v in by_id["dynface-upscale"].choices] == [1, 2, 3, 4]
    assert len(by_id["dynface-examples"].value) == 3
    fid = by_id["dynface-fidelity"]
    assert (fid.minimum, fid.maximum, fid.value) == (0.0, 1.0, 0.0) and "closer to your photo" in fid.info
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
def test_browser_first_job_example_fidelity_progress_download_and_upload_error(server, tmp_path):
    """A new user's first minute in a real browser at 1400x1000: the Restore button is in view; the
    fidelity set on the page reaches the job; clicking an example restores it, with progress shown
    during the page's first job; the PNG downloads; a text file is flagged as an error at upload."""
    webdriver = pytest.importorskip("selenium.webdriver", reason='selenium is in the "web" extra')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    import urllib.request

    url, _ = server
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
    try:
        driver.get(url)
        css = lambda sel: driver.find_elements(By.CSS_SELECTOR, sel)  # noqa: E731
        wait_for("the page", lambda: css("#dynface-run") and css("#dynface-examples img"), timeout=120)
        assert driver.execute_script("return document.querySelector('#dynface-run').getBoundingClientRect()"
                                     ".bottom <= window.innerHeight"), "the Restore button is below the fold"
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "docs/model-card.md" in body and not re.search(r"\(\d+ it\)", body) and "CC BY 4.0" in body
        # fidelity 0.8, typed into the slider's box as a user would
        box = css("#dynface-fidelity input[type=number]")[0]
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("0.8", Keys.TAB)
        wait_for("the fidelity to read 0.8", lambda: box.get_attribute("value") == "0.8", timeout=30)
        # record every text the status box shows while it is on screen: the progress of a fast job
        # is redrawn at each step and may be gone before a poll would see it
        driver.execute_script("""
            window.__seen = [];
            const box = document.getElementById('dynface-status');
            new MutationObserver(() => {
                const r = box.getBoundingClientRect();
                if (r.height > 0 && r.width > 0) window.__seen.push(box.innerText);
            }).observe(box, {subtree: true, childList: true, characterData: true});""")
        t0 = time.monotonic()
        css("#dynface-examples img")[0].click()  # the page's first job

        def slider_images():
            imgs = css("#dynface-slider-0 img")
            loaded = [i for i in imgs if driver.execute_script("return arguments[0].complete && "
                                                              "arguments[0].naturalWidth > 0", i)]
            return loaded if len(loaded) >= 2 else None

        imgs = wait_for("the before/after slider", slider_images, every=0.2)
        seconds = time.monotonic() - t0
        status = css("#dynface-status")[0].text
        assert status.startswith("Restored 1 of 1 photo(s)") and "fidelity 0.8" in status, status
        seen = driver.execute_script("return window.__seen")
        assert any("step " in t and "photo 1/1 (" in t for t in seen), f"no progress shown during the first job: {seen}"
        assert len({i.get_attribute("src") for i in imgs}) >= 2  # two different images: before and after
        assert "example_1" in css("#dynface-slider-0")[0].text
        assert css("#dynface-kind input[type=radio]:checked")[0].get_attribute("value").startswith("Aligned")
        wait_for("the face gallery", lambda: css("#dynface-faces img"), timeout=60)
        assert css("#dynface-faces")[0].text.startswith("Restored faces") and "face 1/1 · example_1" in css(
            "#dynface-faces")[0].text  # the caption starts with what tells faces apart
        labels = [(b.get_attribute("aria-label") or b.get_attribute("title") or b.text) for b in css("button")]
        assert not [t for t in labels if "share" in t.lower()], labels  # a local app has nothing to share to
        print(f"\nexample click to result: {seconds:.1f} s (first job of the page, one aligned face)")
        # the job got the page's fidelity: report.json in the zip says so
        zip_link = wait_for("the zip link", lambda: css("#dynface-zip a[href]"), timeout=60)[0]
        with urllib.request.urlopen(zip_link.get_attribute("href"), timeout=30) as r:
            with zipfile.ZipFile(io.BytesIO(r.read())) as z:
                settings = json.loads(z.read("report.json"))["settings"]
        assert settings["fidelity"] == 0.8 and settings["aligned"] is True
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
            assert im.size == (512, 512)
        # the job's own folder is gone (what the page serves lives in Gradio's cache)
        wait_for("the job folder to be removed", lambda: not list(tmp_path.glob("dynface-web-job-*")), timeout=30)
        # a text file: an error at upload time, before any job, styled as an error
        text = tmp_path / "notes.txt"
        text.write_text("this is not a photo")
        css("#dynface-upload input[type=file]")[0].send_keys(str(text))
        err = wait_for("the upload error", lambda: [e for e in css("#dynface-upload-check .dynface-error")
                                                    if "notes.txt: not an image" in e.text], timeout=60)[0]
        colour = driver.execute_script("return getComputedStyle(arguments[0]).color", err)
        r, g, b = (int(v) for v in re.findall(r"\d+", colour)[:3])
        assert r > 120 and g < 80 and b < 80, colour  # red text
        assert "Traceback" not in driver.page_source
    finally:
        driver.quit()
