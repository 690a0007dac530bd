"""Assemble the embedded default model set (src/dynface/embedded/) from training runs.

    python scripts/assemble_embedded.py --runs /path/to/runs [--status "..."]

Expects (each produced by `dynface train KIND --run-dir RUNS/KIND` and `--export-only`):
RUNS/prior/final.safetensors, RUNS/rm/final.safetensors, RUNS/se/tm.safetensors,
RUNS/se/sde.safetensors, RUNS/dgsa/final.safetensors (optional), RUNS/idm/final.safetensors
(optional), RUNS/embedded/dsst.json. Files are stored fp16; the manifest records sha256,
iterations and wall time of each.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dynface.modelset.assemble import assemble
from dynface.modelset.manifest import EMBEDDED_DIR

SIZE = 128
SIGMA_GRID = [0.025, 3.75, 150]
DEGRADATION = {"sigma": [0.025, 3.75], "scale": [0.2, 8.0], "noise": [0.0, 20.0], "jpeg": [30, 100]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("-o", "--output", default=str(EMBEDDED_DIR))
    ap.add_argument("--defaults", default=None, help="JSON of sampler defaults (zeta, sigma_lr, steps, idm_steps, ...) over the embedded set's")
    ap.add_argument("--status", default="")
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    r = Path(a.runs)
    cands = {"prior": r / "prior/final.safetensors", "rm": r / "rm/final.safetensors", "tm": r / "se/tm.safetensors",
             "sde": r / "se/sde.safetensors", "dgsa": r / "dgsa/final.safetensors", "idm": r / "idm/final.safetensors",
             "dsst": r / "embedded/dsst.json"}
    sources = {k: v for k, v in cands.items() if v.exists()}
    defaults = json.loads((EMBEDDED_DIR / "manifest.json").read_text())["defaults"]  # the tuned set's, kept
    if a.defaults:
        defaults.update(json.loads(a.defaults))
    print(assemble(sources, a.output, SIZE, "utkface", SIGMA_GRID, DEGRADATION, defaults, a.note, a.status))


if __name__ == "__main__":
    main()
