"""The one output-name policy of every batch command, and per-file seeds from names.

An output is named after its input's stem. Inputs whose stems collide (`s/a.png` and `s/a.jpg`;
`x/a.png` and `y/a.png`; `A.png` and `a.png`, which are one file on case-insensitive disks) all
get a suffix that depends only on the file itself, never on the order or on the other inputs:
the extension (`a_png`, `a_jpg`) when that separates them, else 8 hex digits of the hash of the
absolute path. Nothing is overwritten silently: each renaming comes with a warning.

An output name is never hidden and never too long: a stem starting with a dot (`.tmp-abc.png`,
which temp-file sweeps and folder listings treat as not-an-output) gets a leading `_`, and a stem
over `STEM_MAX_BYTES` is cut and given the path's 8-hex tag, leaving room for the suffixes the
commands add (`_00_suffix`, `.jpeg`) under the usual 255-byte limit. File names that are not
valid UTF-8 keep their bytes; hashes and seeds use the raw bytes (`os.fsencode`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


STEM_MAX_BYTES = 160  # 255-byte names minus room for `_NN`, a user --suffix and the extension


def _path_tag(p: Path) -> str:
    return hashlib.sha1(os.fsencode(os.path.abspath(p))).hexdigest()[:8]


def safe_stem(p: Path) -> str:
    """The stem an output of `p` starts from: not hidden, at most STEM_MAX_BYTES bytes."""
    stem = p.stem
    if stem.startswith("."):
        stem = "_" + stem
    raw = os.fsencode(stem)
    if len(raw) > STEM_MAX_BYTES:
        cut = raw[:STEM_MAX_BYTES - 9]
        stem = os.fsdecode(cut.decode("utf-8", "ignore").encode("utf-8")) if _valid_utf8(raw) else os.fsdecode(cut)
        stem = f"{stem}_{_path_tag(p)}"
    return stem


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ext_tag(p: Path) -> str:
    return p.suffix.lower().lstrip(".") or "noext"


def output_stems(files: list[Path]) -> tuple[dict[Path, str], list[str]]:
    """Map each input path to a unique output stem (compared case-insensitively); returns the
    mapping and one warning per group of renamed inputs."""
    base = {f: safe_stem(f) for f in files}
    names = dict(base)
    warnings: list[str] = []
    for _ in range(3):  # a renamed output may meet another input's plain stem once more
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(names[f].casefold(), []).append(f)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            break
        for group in clashes:
            old = names[group[0]]
            exts = [_ext_tag(f) for f in group]
            by_ext = len(set(exts)) == len(exts) and all(names[f] == base[f] for f in group)
            for f in group:
                names[f] = f"{names[f]}_{_ext_tag(f) if by_ext else _path_tag(f)}"
            warnings.append(f"{len(group)} inputs would share the output name {old!r} "
                            f"({', '.join(str(f) for f in group)}); written as "
                            f"{', '.join(names[f] for f in group)}")
    if len({n.casefold() for n in names.values()}) != len(names):
        raise ValueError("cannot give every input its own output name")  # only if a path is listed twice
    return names, warnings


def seed_for(seed: int, name: str) -> int:
    """A file's own seed: a function of the run's seed and the file name only, so a file gets the
    same result alone, in any batch, in any order, and across an interrupted-then-resumed run."""
    h = hashlib.sha256(f"{int(seed)}\0".encode() + os.fsencode(name)).digest()
    return int.from_bytes(h[:8], "big") & (2**63 - 1)
