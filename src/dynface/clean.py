"""Extrinsic iterative enhancement (IDM, METHOD §9): restore a whole training folder so the
restorer and the prior can be retrained on the cleaned images (`dynface train ... --data CLEANED`).

Resumable: an image whose output already exists is skipped. Outputs are the model's size, PNG,
same stem; a file that fails is reported and the run goes on.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from .data import split_files
from .imageio import ImageError, read_rgb, resize, to_tensor, to_uint8, write_image
from .pipeline import Restorer, RestoreOptions


def clean_folder(dataset, out_dir, restorer: Restorer, opt: RestoreOptions, batch: int = 8, limit: int | None = None,
                 split: str = "all", progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = split_files(dataset, split)
    if limit:
        files = files[:limit]
    todo = [f for f in files if not (out_dir / f"{Path(f.name).stem}.png").exists()]
    rep = {"written": 0, "skipped": len(files) - len(todo), "failed": []}
    size = restorer.models.size
    bar = tqdm(total=len(todo), desc="cleaning", unit="img", disable=not progress)
    for i in range(0, len(todo), batch):
        chunk, xs = [], []
        for f in todo[i:i + batch]:
            try:
                xs.append(resize(to_tensor(read_rgb(f)), size))
                chunk.append(f)
            except ImageError as e:
                rep["failed"].append((str(f), str(e)))
        if xs:
            o = RestoreOptions(**{**opt.__dict__, "seed": opt.seed + i})
            res = restorer.restore(torch.cat(xs), o)
            for f, x in zip(chunk, res.images):
                write_image(out_dir / f"{Path(f.name).stem}.png", to_uint8(x))
                rep["written"] += 1
        bar.update(len(todo[i:i + batch]))
    bar.close()
    return rep
