"""IDM extrinsic enhancement, one round (docs/method.md §9), measured against a control.

    python benchmarks/idm_round.py --base-run RUNS/idm_ffhq --cleaner rm --train-faces 1024 --iters 500 \
        -o docs/idm_round

1. Clean: a restorer (`--cleaner`: `rm`, the embedded RM; `dynface`, the full method; `idm`, the IDM
   of `--base-run` itself) restores the first N training faces of the real data (`--real`) themselves
   (`dynface clean`; no synthetic degradation: it removes what the data already has).
2. Retrain: from the same IDM checkpoint, fine-tune `--iters` more iterations (a) with the N cleaned
   faces and (b) with the same N original faces (the control: same faces, names, steps and seeds).
   The run's other sources (generated faces) stay as its config mixes them; only the real source is
   replaced, keeping its weight.
3. Measure: the same degraded validation faces (the run's `val_data`, else the real data's val split;
   degradation seed 0) restored by the starting IDM, the control and the cleaned-data IDM; PSNR/SSIM
   to the ground truth and NIQE (no reference). Also what cleaning did to the training faces (PSNR
   to the originals, NIQE).

Writes `round.md`, `round.json` and `grid.jpg` into the output folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.hardware import set_threads
from dynface.core.imageio import read_rgb, resize, to_tensor, to_uint8, write_bytes_atomic, write_image
from dynface.jobs.ablation import make_grid
from dynface.jobs.clean import clean_folder
from dynface.metrics.fidelity import psnr, ssim
from dynface.metrics.noref import niqe
from dynface.modelset.checkpoint import load_network
from dynface.modelset.weights import load_torch_file
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions
from dynface.training.config import TrainConfig
from dynface.training.data import expand, split_files
from dynface.training.loop import export, load_config, train


def restorer_with(idm_path) -> Restorer:
    """The embedded model set with its IDM replaced by `idm_path`."""
    ms = ModelSet.load()
    ms.nets["idm"] = load_network(idm_path).eval()
    return Restorer(ms)


CLEANERS = {"rm": "the embedded RM", "dynface": "the embedded full method", "idm": "the starting IDM"}


def scores(outs, gts) -> dict:
    return {"psnr": float(np.mean([psnr(o, g) for o, g in zip(outs, gts)])),
            "ssim": float(np.mean([ssim(o, g) for o, g in zip(outs, gts)])),
            "niqe": float(np.mean([niqe(o) for o in outs]))}


def arm_data(cfg: dict, real: str, folder: Path):
    """The run's data with the source `real` replaced by `folder` (same weight)."""
    data = cfg["data"]
    if not isinstance(data, list):
        return str(folder)
    norm = Path(real).resolve()
    out, found = [], False
    for d in data:
        if Path(expand(d["path"])).resolve() == norm:
            out.append({**d, "path": str(folder)})
            found = True
        else:
            out.append(dict(d))
    if not found:
        raise SystemExit(f"error: --real {real} is not one of the run's data sources")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-run", required=True, help="an IDM run folder (ckpt.pt, config.yaml)")
    ap.add_argument("--real", default="../shared/data/utkface", help="the real data source that is cleaned")
    ap.add_argument("--cleaner", choices=("rm", "dynface", "idm"), default="rm",
                    help="what restores the training faces (default: the embedded RM)")
    ap.add_argument("--train-faces", type=int, default=1024, help="real training faces cleaned and retrained on")
    ap.add_argument("--iters", type=int, default=500, help="extra iterations for both arms")
    ap.add_argument("--faces", type=int, default=16, help="validation faces measured")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None, help="default: the physical cores available")
    ap.add_argument("--work", default="runs/idm_round")
    ap.add_argument("--cache-dir", default="runs/cache")
    ap.add_argument("-o", "--output", default="docs/idm_round")
    a = ap.parse_args(argv)
    a.threads = set_threads(a.threads)
    base, work, out = Path(a.base_run), Path(a.work), Path(a.output)
    cfg = load_config(base / "config.yaml")
    cfg.update(cache_dir=a.cache_dir, init_from=None)
    tc = TrainConfig.from_dict(cfg)
    size = tc.size
    ck = load_torch_file(base / "ckpt.pt")
    start, done = int(ck["step"]), int((ck.get("base") or {}).get("iters", 0))  # this run's / before it
    base_final = export("idm", cfg, base)
    opt = RestoreOptions(method="idm", steps=a.steps, seed=0)

    # 1. the first N real training faces, as they are and cleaned (same names: same split, same order)
    originals = split_files(a.real, "train")[: a.train_faces]
    shipped = Restorer(ModelSet.load())
    cleaner = restorer_with(base_final) if a.cleaner == "idm" else shipped
    cleaned, plain = work / f"cleaned-{a.cleaner}", work / "original"
    clean_folder(a.real, cleaned, cleaner, replace(opt, method=a.cleaner), split="train", limit=a.train_faces)
    plain.mkdir(parents=True, exist_ok=True)
    orig_u8, clean_u8 = [], []
    for f in originals:
        o = to_uint8(resize(to_tensor(read_rgb(f)), size)[0])
        name = f"{Path(f.name).stem}.png"
        if not (plain / name).exists():
            write_image(plain / name, o)
        orig_u8.append(o)
        clean_u8.append(read_rgb(cleaned / name))
    cleaning = {"psnr_to_original": float(np.mean([psnr(c, o) for c, o in zip(clean_u8, orig_u8)])),
                "niqe_original": float(np.mean([niqe(o) for o in orig_u8])),
                "niqe_cleaned": float(np.mean([niqe(c) for c in clean_u8]))}

    # 2. two arms from the same checkpoint: cleaned faces vs the same original faces
    arms = {}
    for name, folder in (("cleaned", cleaned), ("control", plain)):
        run = work / name
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "ckpt.pt").exists():
            shutil.copyfile(base / "ckpt.pt", run / "ckpt.pt")
        arm_cfg = {**cfg, "data": arm_data(cfg, a.real, folder), "split": "train"}
        arms[name] = train("idm", arm_cfg, run_dir=run, resume=True, iters=start + a.iters, threads=a.threads)

    # 3. the same degraded validation faces through each IDM
    val = tc.val_data
    files = (split_files(val, "all") if val else split_files(a.real, "val"))[: a.faces]
    x = torch.cat([resize(to_tensor(read_rgb(f)), size) for f in files])
    dcfg = DegradationConfig.from_dict(tc.degradation)
    y = torch.cat([degrade_random(x[i:i + 1], dcfg, 0, i)[0] for i in range(len(files))])
    gts = [to_uint8(t) for t in x]
    columns = [("input", [to_uint8(t) for t in y])]
    rows = [dict(model="degraded input", iters=0, **scores(columns[0][1], gts))]
    rm_out = [to_uint8(t) for t in shipped.restore(y, RestoreOptions(method="rm")).images]
    rows.append(dict(model="RM only (embedded)", iters=0, **scores(rm_out, gts)))
    for label, name, path, it in (("IDM start", "IDM start", base_final, done + start),
                                  ("control", f"+{a.iters} it, original faces (control)", arms["control"], done + start + a.iters),
                                  ("cleaned data", f"+{a.iters} it, cleaned faces", arms["cleaned"], done + start + a.iters)):
        res = restorer_with(path).restore(y, replace(opt, seed=0))
        outs = [to_uint8(t) for t in res.images]
        columns.append((label, outs))
        rows.append(dict(model=name, iters=it, **scores(outs, gts)))
    columns.append(("ground truth", gts))

    md = [f"IDM extrinsic round: the first {len(originals)} training faces of {a.real} cleaned by "
          f"{CLEANERS[a.cleaner]}; both arms fine-tuned {a.iters} iterations from the same checkpoint "
          f"(iterations below are cumulative), "
          f"with the run's other sources unchanged; {len(files)} validation faces of {val or a.real}, "
          f"degradation seed 0, {a.steps} sampling steps.", "",
          f"Cleaning changed the training faces by PSNR {cleaning['psnr_to_original']:.2f} dB (to the originals); "
          f"NIQE {cleaning['niqe_original']:.2f} → {cleaning['niqe_cleaned']:.2f}.", "",
          "| model | iterations | PSNR ↑ | SSIM ↑ | NIQE ↓ |", "|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['iters']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['niqe']:.2f} |" for r in rows]
    text = "\n".join(md) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "round.md", text.encode())
    write_bytes_atomic(out / "round.json", json.dumps({"cleaning": cleaning, "rows": rows, "args": vars(a)},
                                                      indent=1).encode())
    write_image(out / "grid.jpg", make_grid(columns, 6))
    print(text)


if __name__ == "__main__":
    main()
