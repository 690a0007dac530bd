"""Screenshots of `dynface serve` in headless Chromium (selenium) at 1400x1000, as a new user sees it.

    PYTHONPATH=src python scripts/web_screenshots.py --out docs/web --prefix after [--readme docs/web-app.png]

Starts the server on a free port, then: the page as it opens (`<prefix>-page.png`); a whole photo
with three faces (London Set faces, CC BY 4.0, side by side) during its job (`-progress.png`) and
after it (`-result.png`, `-gallery.png`); a text file uploaded beside a face (`-error.png`).
PNGs are palette-quantised to stay small. Needs chromium, chromedriver, selenium and the London faces
in ../shared/data/london (never committed; only their screenshots are).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LONDON = ROOT.parent / "shared" / "data" / "london"
GROUP = ("neutral_012_03.jpg", "smiling_020_08.jpg", "neutral_031_03.jpg")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, fn, timeout=300, every=0.2):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def save_small(png: bytes, path: Path, limit=300_000) -> None:
    import io

    im = Image.open(io.BytesIO(png)).convert("RGB")
    scale = 1.0
    while True:
        q = im if scale == 1.0 else im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        q = q.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        q.save(path, optimize=True)
        if path.stat().st_size < limit or scale < 0.5:
            break
        scale *= 0.85
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def group_photo(tmp: Path) -> Path:
    """Three London faces side by side, softened and JPEG'd like an old snapshot."""
    from PIL import ImageFilter

    canvas = Image.new("RGB", (900, 380), (200, 196, 190))
    for i, name in enumerate(GROUP):
        face = Image.open(LONDON / name).convert("RGB").resize((280, 280), Image.LANCZOS)
        canvas.paste(face, (15 + i * 295, 50))
    canvas = canvas.resize((450, 190), Image.BILINEAR).filter(ImageFilter.GaussianBlur(0.6)).resize((900, 380))
    out = tmp / "three_friends_at_the_seaside_1998.jpg"
    canvas.save(out, quality=35)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/web")
    ap.add_argument("--prefix", default="after")
    ap.add_argument("--readme", default=None, help="also save the result view here (the README's screenshot)")
    ap.add_argument("--progress-after-s", type=float, default=2.5)
    a = ap.parse_args(argv)
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dynface-shots-"))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), GRADIO_TEMP_DIR=str(tmp / "gradio"))
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dynface.cli", "serve", "--port", str(port)], cwd=tmp, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up():
        if proc.poll() is not None:
            raise SystemExit((tmp / "serve.log").read_text()[-2000:])
        try:
            return urllib.request.urlopen(url, timeout=5).status == 200
        except OSError:
            return False

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--hide-scrollbars"):
        opts.add_argument(arg)
    import shutil

    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    driver = None
    try:
        wait("the server", up, timeout=180)
        driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=opts)
        driver.set_window_size(1400, 1000)
        css = lambda sel: driver.find_elements(By.CSS_SELECTOR, sel)  # noqa: E731
        shot = lambda name: save_small(driver.get_screenshot_as_png(), out / f"{a.prefix}-{name}.png")  # noqa: E731
        driver.get(url)
        wait("the page", lambda: css("#dynface-run"))
        time.sleep(2)
        shot("page")
        photo = group_photo(tmp)
        css("#dynface-upload input[type=file]")[0].send_keys(str(photo))
        wait("the upload", lambda: photo.stem[:10] in css("#dynface-upload")[0].text)
        time.sleep(1)
        css("#dynface-run")[0].click()
        time.sleep(a.progress_after_s)
        shot("progress")
        wait("the gallery", lambda: css("#dynface-faces img"), timeout=600)
        time.sleep(2)
        shot("result")
        if a.readme:
            save_small(driver.get_screenshot_as_png(), Path(a.readme))
        gal = css("#dynface-faces")[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", gal)
        time.sleep(1)
        shot("gallery")
        # a text file beside a face
        driver.get(url)
        wait("the page", lambda: css("#dynface-run"))
        text = tmp / "holiday_notes.txt"
        text.write_text("this is not a photo")
        face = tmp / "neutral_012_03.jpg"
        Image.open(LONDON / GROUP[0]).convert("RGB").resize((256, 256)).save(face, quality=60)
        css("#dynface-upload input[type=file]")[0].send_keys(f"{text}\n{face}")
        wait("the upload", lambda: "holiday" in css("#dynface-upload")[0].text)
        time.sleep(2)
        shot("upload-error")
        kind = [e for e in css("#dynface-kind label") if e.text.startswith("Aligned")]
        if kind:
            kind[0].click()
        css("#dynface-run")[0].click()
        wait("the job to end", lambda: "Restored" in css("#dynface-status")[0].text, timeout=600)
        time.sleep(1)
        shot("error")
        if css("#dynface-examples img"):  # the page's examples: one click restores one, with fidelity 0.3
            from selenium.webdriver.common.keys import Keys

            driver.get(url)
            wait("the page", lambda: css("#dynface-examples img"))
            box = css("#dynface-fidelity input[type=number]")[0]
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys("0.3", Keys.TAB)
            time.sleep(0.5)
            css("#dynface-examples img")[0].click()
            time.sleep(a.progress_after_s)
            shot("example-progress")
            wait("the result", lambda: "Restored" in css("#dynface-status")[0].text, timeout=600)
            time.sleep(2)
            shot("example")
            adv = css("#dynface-advanced button, #dynface-advanced .label-wrap")
            if adv:
                driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", adv[0])
                adv[0].click()
                time.sleep(1)
                rm = [e for e in css("#dynface-method label") if e.text.startswith("RM")]
                if rm:
                    rm[0].click()
                    time.sleep(1.5)
                driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
                time.sleep(1)
                shot("settings")
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
