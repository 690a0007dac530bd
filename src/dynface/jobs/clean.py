"""Extrinsic iterative enhancement (IDM, docs/method.md §9): restore a whole training folder so the
restorer and the prior can be retrained on the cleaned images (`dynface train ... --data CLEANED`).

Resumable and reproducible: an image whose output already exists is skipped (outputs are written
atomically, so an existing one is complete), and each image is restored alone with its own seed
`file_seed(seed, its path relative to the dataset)`, so an interrupted-then-resumed run, any order
and any engine (`engines/ray_engine.py` calls `clean_file` too) write the same files. Outputs are
the model's size, PNG, named by the batch output-name policy (`dynface.jobs.outnames`: same stem, a
suffix on collisions); a file that fails is reported and the run goes on. The output folder must
not hold the dataset (that would skip, or overwrite, everything).
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from dynface.core.imageio import ImageError, read_rgb, resize, to_tensor, to_uint8, write_image
from dynface.jobs.batch import check_output_dir
from dynface.jobs.outnames import output_stems, seed_for
from dynface.pipeline import Restorer, RestoreOptions
from dynface.training.data import split_files


def file_seed(seed: int, relpath) -> int:
    """The restore seed of one file: `outnames.seed_for` of the run's seed and its dataset-relative path."""
    return seed_for(seed, Path(relpath).as_posix())


def clean_outputs(dataset, out_dir, split: str = "all", limit: int | None = None):
    """(files, {file: output path}, warnings) of a clean run; ImageError for a missing or empty dataset."""
    if not Path(dataset).is_dir():
        raise ImageError(f"{dataset}: not a folder")
    files = split_files(dataset, split)
    if limit:
        files = files[:limit]
    if not files:
        raise ImageError(f"{dataset}: no images found (split {split!r})")
    out_dir = check_output_dir(out_dir, files)
    stems, warnings = output_stems(files)
    return files, {f: out_dir / f"{stems[f]}.png" for f in files}, warnings


def remove_partial(out_dir) -> None:
    """Delete the temp files (`.tmp-*`) a run killed with SIGKILL left in out_dir."""
    for p in Path(out_dir).glob(".tmp-*"):
        p.unlink(missing_ok=True)


def clean_file(restorer: Restorer, opt: RestoreOptions, src, dst, seed: int) -> Path:
    """Restore one image at the model's size with `seed` and write it atomically (ImageError if unreadable)."""
    x = resize(to_tensor(read_rgb(src)), restorer.models.size)
    res = restorer.restore(x, RestoreOptions(**{**opt.__dict__, "seed": seed}))
    return write_image(dst, to_uint8(res.images))


def clean_folder(dataset, out_dir, restorer: Restorer, opt: RestoreOptions, limit: int | None = None,
                 split: str = "all", progress: bool = True) -> dict:
    """Restore every image of `dataset` (its `split`, the first `limit` by name) into `out_dir`.
    Returns {"written", "skipped", "failed": [(path, reason)], "warnings"}."""
    files, outputs, warnings = clean_outputs(dataset, out_dir, split, limit)
    remove_partial(out_dir)
    todo = [f for f in files if not outputs[f].exists()]
    rep = {"written": 0, "skipped": len(files) - len(todo), "failed": [], "warnings": warnings}
    for f in tqdm(todo, desc="cleaning", unit="img", disable=not progress):
        try:
            clean_file(restorer, opt, f, outputs[f], file_seed(opt.seed, f.relative_to(dataset)))
        except (ImageError, ValueError) as e:
            rep["failed"].append((str(f), str(e)))
            continue
        rep["written"] += 1
    return rep
