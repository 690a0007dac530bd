"""One web restoration job: server settings, upload checks, restore with the library, zip the outputs.

Nothing here imports Gradio: `run_job` takes uploaded file paths and the page's settings, restores
every photo with `dynface.face.whole.process_photo_to_dir` (whole photos or aligned crops) into a
job folder, and returns what the page shows. Problems with one photo become one-line messages and
the job goes on; a job past its deadline stops between sampling steps.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dynface.core.imageio import ImageError, read_rgb, to_tensor, to_uint8
from dynface.errors import DynfaceError
from dynface.modelset.folder import ModelError
from dynface.pipeline import Restorer, RestoreOptions, method_steps, restore_crops

log = logging.getLogger("dynface.web")

#: page label -> RestoreOptions.method
METHODS = {"DynFaceRestore": "dynface", "RM only": "rm", "IDM": "idm"}
#: page label -> aligned input?
INPUT_KINDS = {"Whole photos (detect faces)": False, "Aligned face crops (FFHQ framing)": True}
#: the fidelity knob exists in this dynface (RestoreOptions.fidelity, None = the method's default)
FIDELITY_SUPPORTED = "fidelity" in {f.name for f in fields(RestoreOptions)}
ZIP_NAME = "dynface-results.zip"


@dataclass(frozen=True)
class ServerConfig:
    """Where `dynface serve` listens and the limits a public demo needs; the CLI flags come from here."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})
    max_upload_mb: float = field(default=20.0, metadata={"help": "largest upload, MB per file"})
    max_pixels: int = field(default=12_000_000, metadata={"help": "largest photo, width x height pixels"})
    max_files: int = field(default=8, metadata={"help": "most photos per job"})
    max_steps: int = field(default=100, metadata={"help": "most sampling steps a job may ask for"})
    queue_size: int = field(default=16, metadata={"help": "most jobs waiting behind the running one"})
    job_timeout_s: float = field(default=600.0, metadata={"help": "a job stops after this many seconds"})
    cache_ttl_s: int = field(default=3600, metadata={"help": "served uploads and results are deleted after "
                                                             "this many seconds (and when the server stops)"})

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class JobError(DynfaceError, ValueError):
    """A job cannot run as asked (no photos, too many, a setting out of range); one line."""


class JobTimeout(Exception):
    """The job ran past `ServerConfig.job_timeout_s`."""


@dataclass
class JobSettings:
    """What the page asks for, in library terms."""

    method: str = "dynface"          # RestoreOptions.method
    aligned: bool = False            # inputs are aligned face crops (FFHQ framing)
    steps: int | None = None         # None: the method's default (pipeline.method_steps)
    seed: int = 0
    fidelity: float | None = None    # None: the method's default

    def check(self, cfg: ServerConfig) -> None:
        if self.method not in METHODS.values():
            raise JobError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.steps is not None and not 1 <= self.steps <= cfg.max_steps:
            raise JobError(f"steps must be between 1 and {cfg.max_steps}, got {self.steps}")
        if self.seed < 0:
            raise JobError(f"seed must be 0 or more, got {self.seed}")
        if self.fidelity is not None and not 0.0 <= self.fidelity <= 1.0:
            raise JobError(f"fidelity must be between 0 and 1, got {self.fidelity}")

    def options(self, base: RestoreOptions) -> RestoreOptions:
        """`base` (the server's precision, guidance defaults ...) with this job's choices."""
        extra = {"fidelity": self.fidelity} if FIDELITY_SUPPORTED else {}
        steps = base.steps if self.steps is None else int(self.steps)
        return replace(base, method=self.method, steps=steps, seed=int(self.seed), **extra)


@dataclass
class PhotoResult:
    name: str                        # the upload's file name
    before: np.ndarray               # the input as read (uint8 RGB)
    after: np.ndarray                # the final image (same size)
    final_png: Path                  # final_results/<stem>.png in the job folder
    faces: list[tuple[Path, str]]    # restored face crops with captions
    outputs: dict[str, list[str]]    # process_photo_to_dir's folders -> files
    seconds: float


@dataclass
class JobResult:
    photos: list[PhotoResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)   # one line per problem
    notes: list[str] = field(default_factory=list)      # warnings that are not failures
    zip_path: Path | None = None
    seconds: float = 0.0


def display_name(path) -> str:
    """The upload's own file name, reduced to safe characters."""
    name = Path(str(path)).name
    name = re.sub(r"[^\w.\- ]", "_", name).strip(" .") or "upload"
    return name[:120]


def check_upload(path: Path, name: str, cfg: ServerConfig) -> tuple[int, int]:
    """Size and pixel limits from the header only (no decoding); ImageError in one line. Returns (w, h)."""
    size = os.path.getsize(path)
    if size > cfg.max_upload_bytes:
        raise ImageError(f"{name}: file too large ({size / 2**20:.1f} MB, the limit is {cfg.max_upload_mb:g} MB)")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: too many pixels (the limit is {cfg.max_pixels / 1e6:.1f} MP)") from None
    except Exception as e:  # PIL raises many types for files that are not images
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        why = why.replace(str(path), name).replace(repr(str(path)), name)
        raise ImageError(f"{name}: not an image ({why})") from None
    if w * h > cfg.max_pixels:
        raise ImageError(f"{name}: {w}x{h} is {w * h / 1e6:.1f} MP, more than the limit of "
                         f"{cfg.max_pixels / 1e6:.1f} MP")
    return w, h


class StepHook:
    """The sampler's progress object (`update(n)`): reports steps and stops the job at its deadline."""

    def __init__(self, deadline: float, timeout_s: float, on_step: Callable[[int], None] | None = None):
        self.deadline, self.timeout_s, self.on_step, self.done = deadline, timeout_s, on_step, 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise JobTimeout(f"the job ran past the time limit of {self.timeout_s:g} s and was stopped; "
                             "try fewer steps or fewer photos")

    def update(self, n: int = 1) -> None:
        self.done += n
        self.check()
        if self.on_step is not None:
            self.on_step(self.done)


def _unique_stem(name: str, taken: set[str]) -> str:
    stem = Path(name).stem or "upload"
    out, k = stem, 2
    while out.lower() in taken:
        out, k = f"{stem}_{k}", k + 1
    taken.add(out.lower())
    return out


def run_job(uploads: list, settings: JobSettings, restorer: Restorer, base: RestoreOptions, cfg: ServerConfig,
            job_dir: Path, report: Callable[[float, str], None] | None = None) -> JobResult:
    """Restore every upload into `job_dir` (which the caller creates and removes).

    uploads: file paths (their names are shown). report(fraction, text): progress for the page.
    Raises JobError for a job that cannot start; everything else is a message in the result.
    """
    from dynface.face.templates import template_for
    from dynface.face.folders import process_photo_to_dir

    t0 = time.monotonic()
    report = report or (lambda f, t: None)
    uploads = [Path(str(u)) for u in (uploads or [])]
    if not uploads:
        raise JobError("no photo: upload one or more images first")
    if len(uploads) > cfg.max_files:
        raise JobError(f"too many photos: {len(uploads)} uploaded, at most {cfg.max_files} per job")
    settings.check(cfg)
    opt = settings.options(base)
    models = restorer.models
    size = models.size
    template = template_for(models.manifest.get("template", "utkface"), size)
    hook = StepHook(t0 + cfg.job_timeout_s, cfg.job_timeout_s)
    if opt.steps is None:  # the method's default, named in report.json
        opt = replace(opt, steps=method_steps(models, opt.method))
    expected = max(1, opt.steps) if opt.method in ("dynface", "idm") else 1
    job_dir = Path(job_dir)
    in_dir, out_dir = job_dir / "in", job_dir / "out"
    in_dir.mkdir(parents=True, exist_ok=True)
    result, taken, n = JobResult(), set(), len(uploads)

    for i, up in enumerate(uploads):
        name = display_name(up)
        t1 = time.monotonic()

        def on_step(done, i=i, name=name):
            report((i + min(done / expected, 1.0)) / n, f"photo {i + 1}/{n} ({name}): step {done}/{expected}")

        hook.on_step, hook.done = on_step, 0

        def restore_fn(crops):
            outs, _ = restore_crops(restorer, [to_tensor(c) for c in crops], opt, hook)
            return [to_uint8(o) for o in outs]

        try:
            hook.check()
            report(i / n, f"photo {i + 1}/{n} ({name}): " + ("restoring" if settings.aligned else "finding faces"))
            if not up.is_file():
                raise ImageError(f"{name}: the upload is missing (upload it again)")
            check_upload(up, name, cfg)
            src = in_dir / (_unique_stem(name, taken) + Path(name).suffix.lower())
            shutil.copyfile(up, src)
            try:
                rep = process_photo_to_dir(src, out_dir, restore_fn, template, size, aligned=settings.aligned,
                                           aligned_template="ffhq", ext="png")
            except ImageError as e:  # messages name the copy in the job folder: show the upload's name
                raise ImageError(str(e).replace(str(src), name)) from None
            if rep.n_restored == 0:
                why = "; ".join(rep.warnings) or "no face restored"
                result.messages.append(f"{name}: no face found ({why}); for a face crop choose "
                                       f"'{next(k for k, v in INPUT_KINDS.items() if v)}'")
                continue
            final = Path(rep.outputs["final_results"][0])
            faces = [(Path(p), f"{name} face {k:02d}") for k, p in enumerate(rep.outputs["restored_faces"])]
            result.photos.append(PhotoResult(name, read_rgb(src), read_rgb(final), final, faces, rep.outputs,
                                             round(time.monotonic() - t1, 2)))
            result.notes.extend(f"{name}: {w}" for w in rep.warnings)
        except JobTimeout as e:
            result.messages.append(str(e))
            break
        except (ImageError, ModelError, ValueError) as e:
            result.messages.append(str(e).splitlines()[0] if str(e) else f"{name}: {type(e).__name__}")
        except Exception as e:  # noqa: BLE001 - one bad photo must not stop the server or the job
            log.exception("restoring %s failed", name)
            result.messages.append(f"{name}: internal error ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}); see the server log")
    if result.photos:
        result.zip_path = write_zip(job_dir / ZIP_NAME, out_dir, result, settings, opt)
    result.seconds = round(time.monotonic() - t0, 2)
    report(1.0, "done")
    return result


def write_zip(path: Path, out_dir: Path, result: JobResult, settings: JobSettings, opt: RestoreOptions) -> Path:
    """Every output of the restored photos (CodeFormer/GFPGAN folders) plus report.json."""
    report = {"settings": settings.__dict__, "options": opt.__dict__,
              "photos": [{"name": p.name, "seconds": p.seconds, "outputs": {
                  k: [str(Path(f).relative_to(out_dir)) for f in v] for k, v in p.outputs.items()}}
                  for p in result.photos],
              "messages": result.messages, "notes": result.notes}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in result.photos:
            for files in p.outputs.values():
                for f in files:
                    z.write(f, str(Path(f).relative_to(out_dir)))
        z.writestr("report.json", json.dumps(report, indent=1, default=str))
    return path
