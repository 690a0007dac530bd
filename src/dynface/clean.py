"""Extrinsic iterative enhancement (IDM, METHOD §9): restore a whole training folder so the
restorer and the prior can be retrained on the cleaned images (`dynface train ... --data CLEANED`).

Resumable: an image whose output already exists is skipped. Outputs are the model's size, PNG,
same stem; a file that fails is reported and the run goes on. Each file is restored on its own
with the seed `file_seed(seed, its path relative to the dataset)`, so its output does not depend
on the order, the batch or the engine (`engines/ray_engine.py` calls `clean_file` too).
"""
from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .batch import stable_index
from .data import split_files
from .imageio import ImageError, read_rgb, resize, to_tensor, to_uint8, write_image
from .pipeline import Restorer, RestoreOptions


def file_seed(seed: int, relpath: str) -> int:
    """The restore seed of one file: base seed plus a stable hash of its dataset-relative path."""
    return int(seed) + stable_index(Path(relpath).as_posix())


def clean_output(out_dir, src) -> Path:
    """Where the cleaned copy of `src` goes: out_dir/<stem>.png."""
    return Path(out_dir) / f"{Path(src).stem}.png"


def remove_partial(out_dir) -> None:
    """Delete the temp files (`.tmp-*`, see imageio.write_image) a killed run left in out_dir."""
    for p in Path(out_dir).glob(".tmp-*"):
        p.unlink(missing_ok=True)


def clean_file(restorer: Restorer, opt: RestoreOptions, src, dst, seed: int) -> Path:
    """Restore one image at the model's size with `seed` and write it atomically (ImageError if unreadable)."""
    x = resize(to_tensor(read_rgb(src)), restorer.models.size)
    res = restorer.restore(x, RestoreOptions(**{**opt.__dict__, "seed": seed}))
    return write_image(dst, to_uint8(res.images))


def clean_folder(dataset, out_dir, restorer: Restorer, opt: RestoreOptions, limit: int | None = None,
                 split: str = "all", progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_partial(out_dir)
    files = split_files(dataset, split)
    if limit:
        files = files[:limit]
    todo = [f for f in files if not clean_output(out_dir, f).exists()]
    rep = {"written": 0, "skipped": len(files) - len(todo), "failed": []}
    bar = tqdm(total=len(todo), desc="cleaning", unit="img", disable=not progress)
    for f in todo:
        try:
            clean_file(restorer, opt, f, clean_output(out_dir, f), file_seed(opt.seed, f.relative_to(dataset)))
            rep["written"] += 1
        except ImageError as e:
            rep["failed"].append((str(f), str(e)))
        bar.update(1)
    bar.close()
    return rep
