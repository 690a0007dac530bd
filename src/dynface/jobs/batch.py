"""File-level jobs the CLI calls: restore or degrade many images, going on past bad files.

Every job returns a report listing what was written and which files failed (with a one-line
reason); nothing here prints or exits.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynface.core.atomic import protect
from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.imageio import (ImageError, list_images, read_rgb, resize, to_tensor, to_uint8, writable_folder,
                                  write_bytes_atomic, write_image)
from dynface.core.uncertainty import mean_and_std
from dynface.jobs.outnames import output_stems
from dynface.jobs.uncertainty_maps import write_uncertainty
from dynface.pipeline import Restorer, RestoreOptions, restore_crops


@dataclass
class BatchReport:
    done: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0  # files already done (a resumed run)


RESTORE_SUBFOLDERS = ("cropped_faces", "restored_faces", "cmp", "final_results", "uncertainty")


def check_output_dir(out_dir, inputs: list[Path], subfolders=()) -> Path:
    """Create `out_dir` (or raise ImageError) and refuse layouts where an output could replace an input:
    an input inside `out_dir` or inside one of its `subfolders` as they resolve (a subfolder may be a
    link to the inputs' folder). Removes the temp files killed runs left there (`sweep_temp_files`)."""
    from dynface.core.atomic import sweep_temp_files

    out_dir = writable_folder(out_dir)
    folders = [out_dir] + [out_dir / s for s in subfolders if os.path.lexists(out_dir / s)]
    for folder in folders:
        real = os.path.realpath(folder)
        for p in inputs:
            parent = os.path.dirname(os.path.realpath(p))
            if parent == real or parent.startswith(real.rstrip(os.sep) + os.sep):
                if folder == out_dir:
                    raise ImageError(f"{p}: input lies inside the output folder {out_dir}; choose another -o")
                raise ImageError(f"{p}: input lies inside {folder}, an output subfolder (a link to the inputs' "
                                 "folder?); outputs there would overwrite inputs; choose another -o")
    sweep_temp_files(out_dir)
    return out_dir


def list_inputs(paths) -> list[Path]:
    """The images a batch command works on; ImageError when there are none (never "0 files, exit 0")."""
    from dynface.core.imageio import IMAGE_EXTS

    files = list_images(paths)
    if not files:
        where = ", ".join(map(str, paths))
        raise ImageError(f"{where}: no images found (looked for {' '.join(sorted(IMAGE_EXTS))}; dot files skipped)")
    return files


def make_restore_fn(restorer: Restorer, opt: RestoreOptions, show_steps: bool = True):
    """Adapter for the face pipeline: list of uint8 crops -> list of restored uint8 crops."""

    def restore_fn(crops: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [to_tensor(c) for c in crops]
        restore_fn.uncertainty = []
        bar = None
        if show_steps and opt.method in ("dynface", "idm"):
            bar = tqdm(total=None, desc=f"  sampling {len(crops)} face(s)", unit="step", leave=False)
        try:
            outs, res = restore_crops(restorer, tensors, opt, bar)
        finally:
            if bar is not None:
                bar.close()
        if res.samples is not None:  # K > 1: (mean, std) per crop, at the restored face's size and framing
            restore_fn.uncertainty = [mean_and_std(resize(res.samples[:, i], tuple(o.shape[-2:])).clamp(-1, 1))
                                      for i, o in enumerate(outs)]
        return [to_uint8(o) for o in outs]

    restore_fn.uncertainty = []
    return restore_fn


def restore_paths(paths, out_dir, restorer: Restorer, opt: RestoreOptions, face=None, *,
                  progress: bool = True) -> BatchReport:
    """Restore every image (whole photos, or aligned crops with `face.aligned`) into out_dir's folders;
    `face`: a `face.folders.FaceJobOptions` (default: whole photos, FFHQ framing)."""
    from dynface.face.templates import template_for
    from dynface.face.folders import FaceJobOptions

    report = BatchReport()
    files = list_inputs(paths)
    out_dir = check_output_dir(out_dir, files, RESTORE_SUBFOLDERS)
    stems, report.warnings = output_stems(files)
    size = restorer.models.size
    tmpl_name = restorer.models.manifest.get("template", "utkface")
    template = template_for(tmpl_name, size)
    face = (face or FaceJobOptions()).resolved(tmpl_name)
    fn = make_restore_fn(restorer, opt, show_steps=progress)
    on_result = None
    if opt.samples > 1:  # K posterior samples: write their mean and std beside the restored faces

        def on_result(rgb, res, stem, sfx, final_ext) -> dict:
            faces, fn.uncertainty = fn.uncertainty, []
            return {"uncertainty": write_uncertainty(rgb, res, stem, out_dir, sfx, final_ext, faces)}

    with protect(files):
        _restore_each(files, out_dir, fn, template, size, stems, report, progress, face, on_result)
    return report


def _restore_each(files, out_dir, fn, template, size, stems, report, progress, face, on_result) -> None:
    from dynface.face.folders import process_photo_to_dir

    for f in tqdm(files, desc="restoring", unit="file", disable=not progress):
        try:
            rep = process_photo_to_dir(f, out_dir, fn, template, size, face, on_result=on_result, stem=stems[f])
        except (ImageError, ValueError) as e:
            report.failed.append((str(f), str(e)))
            continue
        report.done.append(rep.to_dict())
        report.warnings.extend(f"{f.name}: {w}" for w in rep.warnings)


def stable_index(name: str) -> int:
    """Per-file stream index from the file name, so a file's degradation does not depend on its batch."""
    import hashlib

    return int(hashlib.sha1(os.fsencode(name)).hexdigest()[:8], 16)


def degrade_paths(paths, out_dir, cfg: DegradationConfig, seed: int, size: int | None = None,
                  progress: bool = True) -> BatchReport:
    """Degrade images with docs/method.md §1; writes PNGs plus params.csv / params.json (sigma, r, delta, q)."""
    from dynface.core.imageio import resize

    from dynface.core.imageio import check_output_pixels

    report = BatchReport()
    files = list_inputs(paths)
    if size:  # the same for every file: refused once, before any work
        check_output_pixels(f"--size {size}", size, size)
    out_dir = check_output_dir(out_dir, files)
    stems, report.warnings = output_stems(files)
    rows = []
    with protect(files):
        for f in tqdm(files, desc="degrading", unit="file", disable=not progress):
            try:
                x = to_tensor(read_rgb(f))
                if size:
                    x = resize(x, size)
                y, p = degrade_random(x, cfg, seed, stable_index(f.name))
                out = write_image(out_dir / f"{stems[f]}.png", to_uint8(y))
            except (ImageError, ValueError) as e:
                report.failed.append((str(f), str(e)))
                continue
            row = {"file": f.name, "output": out.name, "seed": seed, **p.to_dict()}
            rows.append(row)
            report.done.append(row)
    if rows:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        # a name that is not valid UTF-8: its odd bytes escaped (\udcff), so the CSV stays UTF-8 (the JSON
        # holds the exact name, \udcff in JSON decodes back to the byte with os.fsencode)
        write_bytes_atomic(out_dir / "params.csv", buf.getvalue().encode("utf-8", "backslashreplace"))
        write_bytes_atomic(out_dir / "params.json", json.dumps(
            {"seed": seed, "ranges": cfg.to_dict(), "size": size, "images": rows}, indent=1).encode())
    return report
