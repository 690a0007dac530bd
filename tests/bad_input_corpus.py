"""Builds a corpus of hostile inputs on the fly (synthetic pictures only, never a face).

`build_corpus(root)` writes `root/` with images that must work (odd modes, odd names, two files
sharing a stem, a name that is not valid UTF-8, a 251-byte name, an animated GIF), files that must
fail one by one (corrupt, truncated, empty, tiny, a pixel bomb, a symlink loop), and things a
folder listing must skip (dot files, an interrupted write's `.tmp-*` file, a FIFO, a folder named
like an image, a dangling link). Returns a `Corpus` saying which is which.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Corpus:
    root: Path
    good: list[str] = field(default_factory=list)        # must be processed
    bad: list[str] = field(default_factory=list)         # must be reported as failed, batch goes on
    skipped: list[str] = field(default_factory=list)     # must never be read (not images, hidden, temp)
    explicit_bad: list[Path] = field(default_factory=list)  # named on the command line: must fail, not hang

    def hashes(self) -> dict[str, str]:
        """sha256 of every regular file under root (the inputs must never change)."""
        out = {}
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(self.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


def _picture(size: int = 48, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB picture with a disk (uint8)."""
    rng = np.random.default_rng(seed)
    small = rng.random((6, 6, 3))
    img = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float64)
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    img[(xx ** 2 + yy ** 2) < 0.4] *= 0.5
    return img.astype(np.uint8)


def build_corpus(root) -> Corpus:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    c = Corpus(root)

    def good(name, im: Image.Image, **kw):
        im.save(root / name, **kw)
        c.good.append(name)

    rgb = _picture(48, 0)
    good("plain.png", Image.fromarray(rgb))
    good("same.png", Image.fromarray(_picture(48, 1)))            # same stem as same.jpg
    good("same.jpg", Image.fromarray(_picture(48, 2)), quality=90)
    good("Same.bmp", Image.fromarray(_picture(48, 3)))            # same stem on a case-insensitive disk
    good("gray.png", Image.fromarray(rgb[..., 0]))
    good("rgba.png", Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA"))
    good("palette.png", Image.fromarray(rgb).convert("P"))
    good("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"))
    good("sixteen.png", Image.fromarray((rgb[..., 0].astype(np.uint16) * 40)))
    ex = Image.fromarray(_picture(40, 4)).crop((0, 0, 40, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: width and height swap on reading
    good("exif_rotated.jpg", ex, exif=exif.tobytes())
    good("with space é-ü.png", Image.fromarray(_picture(48, 5)))
    good("-leading-dash.png", Image.fromarray(_picture(48, 6)))
    frames = [Image.fromarray(_picture(48, 7 + i)) for i in range(3)]
    good("pages.tif", frames[0], save_all=True, append_images=frames[1:])  # multi-page: first page + warning
    good("anim.gif", frames[1], save_all=True, append_images=frames[2:])   # GIFs are listed in folders too
    good(os.fsdecode(b"odd-\xff\xfe-bytes.png"), Image.fromarray(_picture(48, 10)))  # not valid UTF-8
    good("n" * 247 + ".png", Image.fromarray(_picture(48, 11)))          # 251 bytes: outputs must stay <= 255

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    whole = buf.getvalue()
    for name, data in (("notimage.png", b"hello, not an image\n"), ("truncated.png", whole[: len(whole) // 2]),
                       ("empty.png", b""), ("garbage.jpg", os.urandom(2048))):
        (root / name).write_bytes(data)
        c.bad.append(name)
    Image.fromarray(rgb[:4, :4]).save(root / "tiny.png")
    c.bad.append("tiny.png")
    Image.new("1", (13000, 13000)).save(root / "bomb.png")  # ~20 KB on disk, 169 MP decoded
    c.bad.append("bomb.png")

    os.symlink("loop.png", root / "loop.png")  # a symlink loop: named as failed, never skipped silently
    c.bad.append("loop.png")

    (root / ".tmp-interrupted.png").write_bytes(whole[: len(whole) // 3])  # what a killed write leaves
    Image.fromarray(rgb).save(root / ".hidden.png")
    (root / "folder.png").mkdir()
    os.symlink(root / "no-such-target.png", root / "dangling.png")
    c.skipped += [".tmp-interrupted.png", ".hidden.png", "folder.png", "dangling.png"]
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.png")
        c.skipped.append("fifo.png")
        c.explicit_bad.append(root / "fifo.png")
    return c
