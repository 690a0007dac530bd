"""Extrinsic iterative enhancement (IDM, METHOD §9): restore a whole training folder so the
restorer and the prior can be retrained on the cleaned images (`dynface train ... --data CLEANED`).

Resumable and reproducible: an image whose output already exists is skipped (outputs are written
atomically, so an existing one is complete), and each image is restored alone with its own seed
`outnames.seed_for(seed, file name)`, so an interrupted-then-resumed run writes the same files as
an uninterrupted one. Outputs are the model's size, PNG, named by the batch output-name policy
(`dynface.outnames`: same stem, a suffix on collisions); a file that fails is reported and the run
goes on. The output folder must not hold the dataset (that would skip, or overwrite, everything).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from .batch import check_output_dir
from .data import split_files
from .imageio import ImageError, read_rgb, resize, to_tensor, to_uint8, write_image
from .outnames import output_stems, seed_for
from .pipeline import Restorer, RestoreOptions


def clean_folder(dataset, out_dir, restorer: Restorer, opt: RestoreOptions, limit: int | None = None,
                 split: str = "all", progress: bool = True) -> dict:
    """Restore every image of `dataset` (its `split`, the first `limit` by name) into `out_dir`.
    Returns {"written", "skipped", "failed": [(path, reason)], "warnings"}."""
    if not Path(dataset).is_dir():
        raise ImageError(f"{dataset}: not a folder")
    files = split_files(dataset, split)
    if limit:
        files = files[:limit]
    if not files:
        raise ImageError(f"{dataset}: no images found (split {split!r})")
    out_dir = check_output_dir(out_dir, files)
    stems, warnings = output_stems(files)
    todo = [f for f in files if not (out_dir / f"{stems[f]}.png").exists()]
    rep = {"written": 0, "skipped": len(files) - len(todo), "failed": [], "warnings": warnings}
    size = restorer.models.size
    for f in tqdm(todo, desc="cleaning", unit="img", disable=not progress):
        try:
            x = resize(to_tensor(read_rgb(f)), size)
            res = restorer.restore(x, replace(opt, seed=seed_for(opt.seed, f.name)))
            write_image(out_dir / f"{stems[f]}.png", to_uint8(res.images))
        except (ImageError, ValueError) as e:
            rep["failed"].append((str(f), str(e)))
            continue
        rep["written"] += 1
    return rep
