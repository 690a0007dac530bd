"""One web restoration job: server settings, upload checks, restore with the library, zip the outputs.

Nothing here imports Gradio: `run_job` takes uploaded file paths and the page's settings, restores
every photo with `dynface.face.whole.process_photo_to_dir` (whole photos or aligned crops) into a
job folder, and returns what the page shows. Faces are cut at FACE_SIZE (the model resizes them),
the page's fidelity keeps that share of the input in each face (`keep_input`), and the result is
upscaled as asked. Problems with one photo become one-line messages and the job goes on; a job
past its deadline stops between sampling steps. `check_files` checks uploads as they arrive.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dynface.core.imageio import ImageError, read_rgb, to_tensor, to_uint8
from dynface.errors import DynfaceError
from dynface.modelset.folder import ModelError
from dynface.pipeline import SEED_MAX, Restorer, RestoreOptions, method_steps, restore_crops

log = logging.getLogger("dynface.web")

#: page label -> RestoreOptions.method
METHODS = {"DynFaceRestore": "dynface", "RM only": "rm", "IDM": "idm"}
#: page label -> aligned input?
INPUT_KINDS = {"Whole photos (detect faces)": False, "Aligned face crops (FFHQ framing)": True}
#: methods that sample (the Steps setting applies to them only)
SAMPLING_METHODS = ("dynface", "idm")
UPSCALES = (1, 2, 3, 4)          # the page's upscale factors (the CLI's --upscale takes 1 to 8)
FACE_SIZE = 512                  # face crops are cut, shown and pasted at this size (models resize to theirs)
MAX_OUTPUT_PIXELS = 16_000_000   # an upscaled photo may not exceed this (or the upload limit, if larger)
ZIP_NAME = "dynface-results.zip"


def keep_input(restored: np.ndarray, original: np.ndarray, fidelity: float) -> np.ndarray:
    """The page's fidelity w in [0, 1] (CodeFormer's sense: higher = closer to the input): the share
    of the input face crop kept in the restored one, `(1 - w) * restored + w * original` (uint8).

    w = 0 is the method's own result, w = 1 the input crop unchanged. The sampler's own knob
    (`RestoreOptions.fidelity`, `--fidelity`) moves the page's examples by 1.1 to 2.4/255 over its
    whole range with the embedded models, and not towards the input, because the chain stays close
    to the restoration network's output; the visible difference is between that output and the
    input (docs/fidelity.md, "The web page's fidelity")."""
    if fidelity <= 0:
        return restored
    if original.shape != restored.shape:
        raise ValueError(f"input crop {original.shape} and restored crop {restored.shape} differ")
    mix = (1.0 - fidelity) * restored.astype(np.float32) + fidelity * original.astype(np.float32)
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


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
    fidelity: float = 0.0            # share of the input kept in each face (keep_input); 0 = the method's result
    upscale: float = 1.0             # the final image's scale (the background is Lanczos-resized)

    def check(self, cfg: ServerConfig) -> None:
        if self.method not in METHODS.values():
            raise JobError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.steps is not None and not 1 <= self.steps <= cfg.max_steps:
            raise JobError(f"steps must be between 1 and {cfg.max_steps}, got {self.steps}")
        if not 0 <= self.seed <= SEED_MAX:
            raise JobError(f"seed must be between 0 and {SEED_MAX}, got {self.seed}")
        if not (isinstance(self.fidelity, (int, float)) and math.isfinite(self.fidelity)
                and 0.0 <= self.fidelity <= 1.0):
            raise JobError(f"fidelity must be between 0 and 1, got {self.fidelity}")
        if not (isinstance(self.upscale, (int, float)) and math.isfinite(self.upscale)
                and UPSCALES[0] <= self.upscale <= UPSCALES[-1]):
            raise JobError(f"upscale must be between {UPSCALES[0]} and {UPSCALES[-1]}, got {self.upscale}")

    def options(self, base: RestoreOptions) -> RestoreOptions:
        """`base` (the server's precision, guidance defaults ...) with this job's choices. The page's
        fidelity is applied to the restored crops (keep_input), not through RestoreOptions.fidelity."""
        steps = base.steps if self.steps is None else int(self.steps)
        return replace(base, method=self.method, steps=steps, seed=int(self.seed))

    def summary(self, method_label: str | None = None) -> str:
        """The settings in words, for the status line: 'DynFaceRestore, 25 steps, fidelity 0.8, 2x, seed 0'."""
        label = method_label or next((k for k, v in METHODS.items() if v == self.method), self.method)
        parts = [label]
        if self.method in SAMPLING_METHODS and self.steps is not None:
            parts.append(f"{self.steps} steps")
        parts += [f"fidelity {self.fidelity:g}", f"{self.upscale:g}x", f"seed {self.seed}"]
        return ", ".join(parts)


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


def check_output_size(w: int, h: int, upscale: float, name: str, cfg: ServerConfig) -> None:
    """An upscaled photo's size against MAX_OUTPUT_PIXELS (or the upload limit, if larger)."""
    limit = max(MAX_OUTPUT_PIXELS, cfg.max_pixels)
    ow, oh = round(w * upscale), round(h * upscale)
    if ow * oh > limit:
        raise ImageError(f"{name}: {w}x{h} upscaled {upscale:g}x would be {ow * oh / 1e6:.1f} MP, more than the "
                         f"limit of {limit / 1e6:.0f} MP; choose a smaller upscale")


def check_files(uploads, cfg: ServerConfig) -> list[str]:
    """One line per upload that a job would reject (not an image, too large ...), checked at upload
    time from the file headers; [] when every file is fine."""
    problems = []
    uploads = [Path(str(u)) for u in (uploads or [])]
    if len(uploads) > cfg.max_files:
        problems.append(f"too many photos: {len(uploads)} uploaded, at most {cfg.max_files} per job")
    for up in uploads:
        name = display_name(up)
        try:
            if not up.is_file():
                raise ImageError(f"{name}: the upload is missing (upload it again)")
            check_upload(up, name, cfg)
        except ImageError as e:
            problems.append(str(e).splitlines()[0])
    return problems


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


def face_caption(k: int, n: int, name: str) -> str:
    """A gallery caption that starts with what tells faces apart: 'face 2/3 · photo.jpg'."""
    return f"face {k + 1}/{n} · {name}"


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
    size = max(models.size, FACE_SIZE)  # crops are cut at this size and resized to the model's by restore_crops
    template = template_for(models.manifest.get("template", "utkface"), size)
    hook = StepHook(t0 + cfg.job_timeout_s, cfg.job_timeout_s)
    if opt.steps is None:  # the method's default, named in report.json
        opt = replace(opt, steps=method_steps(models, opt.method))
    expected = max(1, opt.steps) if opt.method in SAMPLING_METHODS else 1
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
            return [keep_input(to_uint8(o), c, settings.fidelity) for o, c in zip(outs, crops)]

        try:
            hook.check()
            report(i / n, f"photo {i + 1}/{n} ({name}): " + ("restoring" if settings.aligned else "finding faces"))
            if not up.is_file():
                raise ImageError(f"{name}: the upload is missing (upload it again)")
            w, h = check_upload(up, name, cfg)
            check_output_size(w, h, settings.upscale, name, cfg)
            src = in_dir / (_unique_stem(name, taken) + Path(name).suffix.lower())
            shutil.copyfile(up, src)
            try:
                rep = process_photo_to_dir(src, out_dir, restore_fn, template, size, aligned=settings.aligned,
                                           aligned_template="ffhq", ext="png", upscale=settings.upscale)
            except ImageError as e:  # messages name the copy in the job folder: show the upload's name
                raise ImageError(str(e).replace(str(src), name)) from None
            if rep.n_restored == 0:
                why = "; ".join(rep.warnings) or "no face restored"
                result.messages.append(f"{name}: no face found ({why}); for a face crop choose "
                                       f"'{next(k for k, v in INPUT_KINDS.items() if v)}'")
                continue
            final = Path(rep.outputs["final_results"][0])
            faces = [(Path(p), face_caption(k, len(rep.outputs["restored_faces"]), name))
                     for k, p in enumerate(rep.outputs["restored_faces"])]
            before, after = read_rgb(src), read_rgb(final)
            if before.shape != after.shape:  # upscaled: the slider compares at the output's size
                before = np.asarray(Image.fromarray(before).resize(after.shape[1::-1], Image.BICUBIC))
            result.photos.append(PhotoResult(name, before, after, final, faces, rep.outputs,
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
