"""Where a model set's files live and what its manifest records about each of them."""
from __future__ import annotations

from pathlib import Path

from dynface.core.files import expand

EMBEDDED_DIR = Path(__file__).parent.parent / "embedded"  # src/dynface/embedded: package data


STAGE_FILES = {"prior": "prior.safetensors", "rm": "rm.safetensors", "tm": "tm.safetensors",
               "sde": "sde.safetensors", "dgsa": "dgsa.safetensors", "idm": "idm.safetensors",
               "up": "up.safetensors"}
DSST_FILE = "dsst.json"


def embedded_or_path(path) -> Path:
    """A training config's weights path as a Path; `embedded:NAME` is NAME in the embedded model set;
    `$VARS` and `~` expand as in data paths (`core.files.expand`: `$DYNFACE_RUNS/init/...`)."""
    if str(path).startswith("embedded:"):
        return EMBEDDED_DIR / str(path)[len("embedded:"):]
    return Path(expand(path))


def manifest_entry(path: Path) -> dict:
    from dynface.modelset.checkpoint import read_metadata
    from dynface.modelset.weights import sha256_file

    meta = read_metadata(path)
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
            "iters": meta.get("iters"), "images": meta.get("images"), "wall_time_s": meta.get("wall_time_s"),
            "cpu": meta.get("cpu"), **({"gpu": meta["gpu"]} if meta.get("gpu") else {}),  # a GPU that trained it
            "data": meta.get("data"), "arch": meta.get("arch")}
