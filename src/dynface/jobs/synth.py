"""`dynface synth`: a folder of generated FFHQ-aligned faces, each checked, resumable.

Face i of a run is a pure function of (seed, i, truncation, size) (synth/generator.py), written as
`face_{i:06d}.{ext}` atomically, so a killed run re-run fills only what is missing and the same
command gives the same bytes. Every face is checked with the project's detector (one face, five
landmarks near the FFHQ template: face/framing.py); a face that fails goes to `rejected/` (out of
the folder listing that training reads) and is listed with its reason in `faces.csv` and in the
report, never dropped silently. `synth.json` records the settings: a re-run with other settings
into the same folder is refused, so a folder never mixes two recipes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynface.core.atomic import write_atomic, write_bytes
from dynface.errors import DynfaceError
from dynface.face.framing import check_framing
from dynface.synth.generator import DEFAULT_TRUNCATION, SIZES, FaceGenerator

SETTINGS_FILE, CSV_FILE, REJECTED = "synth.json", "faces.csv", "rejected"
EXTS = ("png", "jpg")
JPEG_QUALITY = 95
COLUMNS = ("index", "file", "seed", "truncation", "size", "faces", "score", "eye_deviation", "deviation", "ok",
           "reason")
FLUSH_EVERY = 32  # faces.csv is rewritten (atomically) after this many new faces, and at the end


class SynthError(DynfaceError, ValueError):
    """Settings that do not fit the output folder, or an unusable folder."""


@dataclass(frozen=True)
class SynthSettings:
    """What a synthetic folder holds: one recipe per folder."""

    seed: int = 0
    truncation: float = DEFAULT_TRUNCATION
    size: int = 512
    ext: str = "png"

    def __post_init__(self):
        if self.size not in SIZES:
            raise SynthError(f"size must be one of {', '.join(map(str, SIZES))}, got {self.size}")
        if self.ext not in EXTS:
            raise SynthError(f"ext must be one of {', '.join(EXTS)}, got {self.ext!r}")
        if not 0.0 <= self.truncation <= 1.0:
            raise SynthError(f"truncation must be in 0..1, got {self.truncation}")
        if self.seed < 0:
            raise SynthError(f"seed must be >= 0, got {self.seed}")


def face_name(index: int, ext: str) -> str:
    return f"face_{index:06d}.{ext}"


def encode(rgb: np.ndarray, ext: str) -> bytes:
    """The image file's bytes (PNG lossless; JPEG quality 95, 4:4:4), the same for the same pixels."""
    from PIL import Image

    buf = io.BytesIO()
    if ext == "png":
        Image.fromarray(rgb).save(buf, format="PNG", optimize=False, compress_level=6)
    else:
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def written_face(out: Path, name: str, s: SynthSettings) -> tuple[Path, np.ndarray] | None:
    """A PNG face already on disk without its faces.csv row (a run killed between two flushes of
    the list): its path and pixels, else None. Files are written atomically, so one that decodes at
    the recipe's size is whole; PNG is lossless, so its pixels are the rendered ones (a JPEG face is
    rendered again instead)."""
    if s.ext != "png":
        return None
    from PIL import Image

    for p in (out / name, out / REJECTED / name):
        try:
            if p.is_file() and p.stat().st_size > 0:
                with Image.open(p) as im:
                    rgb = np.asarray(im.convert("RGB"))
                if rgb.shape == (s.size, s.size, 3):
                    return p, rgb
        except (OSError, ValueError):
            pass  # unreadable: rendered again
    return None


def make_face(gen: FaceGenerator, out: Path, index: int, s: SynthSettings) -> dict:
    """Render (or find already written, `written_face`), check and write face `index`; its faces.csv
    row. The one per-face function of the local and the Ray engine."""
    name = face_name(index, s.ext)
    found = written_face(out, name, s)
    rgb = found[1] if found else gen.face(s.seed, index, s.truncation, s.size)
    chk = check_framing(rgb)
    dest = out / name if chk.ok else out / REJECTED / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not found or found[0] != dest:
        write_bytes(dest, encode(rgb, s.ext))
    stale = out / REJECTED / name if chk.ok else out / name  # a different verdict earlier (other detector)
    stale.unlink(missing_ok=True)
    return {"index": index, "file": str(dest.relative_to(out)), "seed": s.seed, "truncation": s.truncation,
            "size": s.size, "faces": chk.faces, "score": round(chk.score, 4),
            "eye_deviation": round(chk.eye_deviation, 4), "deviation": round(chk.deviation, 4),
            "ok": int(chk.ok), "reason": chk.reason}


def _generator_id(gen_path: Path) -> str:
    h = hashlib.sha1()
    for f in ("MappingNetwork.bin", "SynthesisNetwork.bin"):
        h.update((gen_path / f).read_bytes())
    return h.hexdigest()[:16]


def prepare(out, s: SynthSettings, gen_path: Path) -> tuple[Path, dict[int, dict]]:
    """Make `out`, check or write its settings, and read the rows already done (index -> row)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    want = {**asdict(s), "generator": "MobileStyleGAN FFHQ (random-face 2021.7.21.1)",
            "generator_sha1": _generator_id(gen_path)}
    sf = out / SETTINGS_FILE
    if sf.exists():
        try:
            have = json.loads(sf.read_text())
        except (OSError, ValueError):
            raise SynthError(f"{sf}: unreadable; remove it or choose another output folder") from None
        diff = [k for k in want if have.get(k) != want[k]]
        if diff:
            was = ", ".join(f"{k}={have.get(k)}" for k in diff)
            raise SynthError(f"{out} holds faces made with {was}; use those settings or another output folder")
    else:
        write_bytes(sf, json.dumps(want, indent=1).encode())
    return out, read_rows(out)


def read_rows(out: Path) -> dict[int, dict]:
    """faces.csv rows whose image exists and is not empty (an empty or missing file is redone)."""
    f = out / CSV_FILE
    if not f.exists():
        return {}
    rows = {}
    with open(f, newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                i = int(r["index"])
            except (KeyError, TypeError, ValueError):
                continue
            p = out / r.get("file", "")
            if p.is_file() and p.stat().st_size > 0:
                rows[i] = r
    return rows


def write_rows(out: Path, rows: dict[int, dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for i in sorted(rows):
        w.writerow({k: rows[i].get(k, "") for k in COLUMNS})
    write_bytes(out / CSV_FILE, buf.getvalue().encode())


def report(rows: dict[int, dict], n: int, written: int, seconds: float) -> dict:
    done = [rows[i] for i in range(n) if i in rows]
    rejected = [(int(r["index"]), r["reason"]) for r in done if str(r["ok"]) != "1"]
    return {"n": n, "written": written, "skipped": len(done) - written, "passed": len(done) - len(rejected),
            "rejected": rejected, "seconds": round(seconds, 2)}


def synthesize(out, n: int, s: SynthSettings = SynthSettings(), *, threads: int | None = None,
               generator: FaceGenerator | None = None, progress: bool = True) -> dict:
    """Faces 0..n-1 of recipe `s` into `out` (only those missing). Returns {n, written, skipped,
    passed, rejected: [(index, reason)], seconds}."""
    gen = generator or FaceGenerator(threads=threads)
    out, rows = prepare(out, s, gen.path)
    todo = [i for i in range(n) if i not in rows]
    t0, written = time.time(), 0
    bar = tqdm(total=n, initial=n - len(todo), desc="synth", unit="face", disable=not progress)
    try:
        for i in todo:
            rows[i] = make_face(gen, out, i, s)
            written += 1
            bar.update(1)
            if written % FLUSH_EVERY == 0:
                write_rows(out, rows)
    finally:
        bar.close()
        if written:
            write_rows(out, rows)
    return report(rows, n, written, time.time() - t0)
