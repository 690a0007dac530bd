"""Extrinsic iterative enhancement (IDM, docs/method.md §9): restore a whole training folder so the
restorer and the prior can be retrained on the cleaned images (`dynface train ... --data CLEANED`).

Resumable and reproducible: an image whose output already exists is skipped when the run record
(`RECORD`, a dot file in the output folder) does not say it came from another input and the file
still decodes at the model's size (a 0-byte or damaged file is redone), and each image is restored alone with its own seed
`file_seed(seed, its path relative to the dataset)`, so an interrupted-then-resumed run, any order
and any engine (`engines/ray_engine.py` calls `clean_file` too) write the same files. Outputs are
the model's size, PNG, named by the batch output-name policy (`dynface.jobs.outnames`: same stem, a
suffix on collisions) over the whole dataset, whatever `--limit` and `--split` select, so a
partial run names files as the whole run does. An output the record holds under a name its
input no longer gets (a same-stem file appeared since) is removed; one whose input is gone is
reported. A file that fails is reported and the run goes on. The output folder must not hold the
dataset (that would skip, or overwrite, everything).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm import tqdm

from dynface.core.atomic import protect, sweep_temp_files
from dynface.core.imageio import ImageError, read_rgb, resize, to_tensor, to_uint8, write_bytes_atomic, write_image
from dynface.jobs.batch import check_output_dir
from dynface.jobs.outnames import output_stems, seed_for
from dynface.pipeline import Restorer, RestoreOptions
from dynface.training.data import split_files


def file_seed(seed: int, relpath) -> int:
    """The restore seed of one file: `outnames.seed_for` of the run's seed and its dataset-relative path."""
    return seed_for(seed, Path(relpath).as_posix())


RECORD = ".dynface-clean.jsonl"  # one line per output written: {"output": name, "input": dataset-relative path}


def clean_outputs(dataset, out_dir, split: str = "all", limit: int | None = None):
    """(files, {file: output path}, warnings) of a clean run; ImageError for a missing or empty dataset.
    Output names come from the whole dataset, so they do not depend on `split` or `limit`."""
    if not Path(dataset).is_dir():
        raise ImageError(f"{dataset}: not a folder")
    every = split_files(dataset, "all")
    files = split_files(dataset, split)
    if limit:
        files = files[:limit]
    if not files:
        raise ImageError(f"{dataset}: no images found (split {split!r})")
    out_dir = check_output_dir(out_dir, every)
    stems, warnings = output_stems(every)
    return files, {f: out_dir / f"{stems[f]}.png" for f in every}, warnings


def _rel(f: Path, dataset) -> str:
    return Path(os.path.relpath(f, dataset)).as_posix()


def read_record(out_dir) -> dict | None:
    """The run record of `out_dir` ({output name: input}); None when there is none. A torn last
    line (a run killed while appending) is ignored."""
    from dynface.core.files import FileRefused, read_regular

    try:
        text = read_regular(Path(out_dir) / RECORD, 1 << 30, "a clean record").decode("utf-8", "replace")
    except FileRefused:
        return None
    record = {}
    for line in text.splitlines():
        try:
            row = json.loads(line)
            record[str(row["output"])] = str(row["input"])
        except (ValueError, KeyError, TypeError):
            continue
    return record


def _line(name: str, src: str) -> bytes:
    return (json.dumps({"output": name, "input": src}) + "\n").encode()


def write_record(out_dir, record: dict) -> None:
    """The whole record, rewritten atomically (once per run; each output then appends its line)."""
    write_bytes_atomic(Path(out_dir) / RECORD, b"".join(_line(k, v) for k, v in sorted(record.items())))


def append_record(out_dir, name: str, src: str) -> None:
    """One output written: its line appended (after the image itself is on disk)."""
    with open(Path(out_dir) / RECORD, "ab") as fh:
        fh.write(_line(name, src))
        fh.flush()
        os.fsync(fh.fileno())


def _complete(path: Path, size: int | None) -> bool:
    """An existing output is done only if it decodes (at the model's size when given)."""
    try:
        rgb = read_rgb(path)
    except ImageError:
        return False
    return size is None or rgb.shape[:2] == (size, size)


def pending(dataset, files, outputs: dict, out_dir, size: int | None = None) -> tuple[list, dict, list[str]]:
    """(files still to do, the run record, warnings) of a clean run into `out_dir`. Removes the outputs
    the record holds under a name their input no longer gets; reports those whose input is gone;
    redoes outputs that are missing, damaged, or were written for another input."""
    out_dir = Path(out_dir)
    old = read_record(out_dir)
    record = dict(old or {})
    warnings: list[str] = []
    current = {o.name: _rel(f, dataset) for f, o in outputs.items()}
    src_name = {_rel(f, dataset): o.name for f, o in outputs.items()}
    for name, src in sorted(record.items()):
        if current.get(name) == src:
            continue
        if src in src_name:  # its input is now written under another name: this file is a stale copy
            if current.get(name) is None:
                (out_dir / name).unlink(missing_ok=True)
                warnings.append(f"removed {out_dir / name}: an output of {src} under its old name "
                                f"(now {src_name[src]}, since another input shares its stem)")
                del record[name]
            # else the name is now another input's: the entry stays, so that input's file is redone
        elif current.get(name) is None and (out_dir / name).exists():
            warnings.append(f"{out_dir / name}: its input {src} is no longer in the dataset (kept)")
    todo, damaged = [], 0
    for f in files:
        out = outputs[f]
        rel = _rel(f, dataset)
        # the record names another input for this output name: not this file's result. A name the record
        # lacks (a folder from before records, a run killed before its line, Ray workers) counts if it decodes
        known = record.get(out.name, rel) == rel
        if known and out.exists() and _complete(out, size):
            continue
        if out.exists() and known:
            damaged += 1
        record.pop(out.name, None)
        todo.append(f)
    if damaged:
        what = "empty or damaged" + (f" (or not {size}x{size})" if size else "")
        warnings.append(f"{damaged} existing output(s) were {what}; written again")
    write_record(out_dir, record)
    return todo, record, warnings


def remove_partial(out_dir) -> None:
    """Delete the temp files that runs killed with SIGKILL left in out_dir (`atomic.sweep_temp_files`)."""
    sweep_temp_files(out_dir)


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
    todo, record, more = pending(dataset, files, outputs, out_dir, restorer.models.size)
    rep = {"written": 0, "skipped": len(files) - len(todo), "failed": [], "warnings": warnings + more}
    with protect(list(outputs)):  # no output replaces an input of the dataset, whatever links lie between
        for f in tqdm(todo, desc="cleaning", unit="img", disable=not progress):
            try:
                clean_file(restorer, opt, f, outputs[f], file_seed(opt.seed, f.relative_to(dataset)))
            except (ImageError, ValueError) as e:
                rep["failed"].append((str(f), str(e)))
                continue
            append_record(out_dir, outputs[f].name, _rel(f, dataset))
            rep["written"] += 1
    return rep
