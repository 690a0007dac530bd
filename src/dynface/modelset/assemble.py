"""Assemble a model set folder (weights + DSST table + manifest) from training runs.

The manifest records, per file: sha256, size, training iterations and wall time, the data, and the
architecture; plus the set's resolution, alignment template, sigma grid, degradation ranges and
the sampler defaults that were tuned for it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from dynface.core.imageio import write_bytes_atomic
from dynface.modelset.manifest import DSST_FILE, STAGE_FILES, manifest_entry


def assemble(sources: dict, out_dir, size: int, template: str, sigma_grid, degradation: dict, defaults: dict,
             note: str = "", status: str = "") -> Path:
    """sources: stage name -> safetensors path (and 'dsst' -> json). Writes out_dir/manifest.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, src in sources.items():
        src = Path(src)
        if name == "dsst":
            dst = out / DSST_FILE
            if src.resolve() != dst.resolve():
                shutil.copyfile(src, dst)
            d = json.loads(dst.read_text())
            files["dsst"] = {"file": DSST_FILE, "tau": d["tau"], "bytes": dst.stat().st_size}
            continue
        dst = out / STAGE_FILES[name]
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
        files[name] = manifest_entry(dst)
    manifest = {"format": "dynface-modelset/1", "size": size, "template": template, "sigma_grid": list(sigma_grid),
                "degradation": degradation, "defaults": defaults, "files": files, "note": note, "status": status}
    write_bytes_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return out / "manifest.json"


def replace_stage(out_dir, name: str, src) -> dict:
    """Put one newly trained stage file into an existing model set and refresh its manifest entry
    (the other stages and the defaults are kept). Returns the new entry."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    dst = out / STAGE_FILES[name]
    write_bytes_atomic(dst, Path(src).read_bytes())
    manifest["files"][name] = manifest_entry(dst)
    write_bytes_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest["files"][name]
