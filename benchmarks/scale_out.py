"""Scale-out benchmark: files/s of `dynface clean` on the local engine and on Ray with 1 and 2
workers, and per-rank training throughput under torchrun with 1 and 2 processes.

    PYTHONPATH=src python benchmarks/scale_out.py --data ../shared/data/utkface --files 8 --steps 10 \
        -o docs/scale_out.json

Ray is timed in two parts: starting the local runtime, then the clean itself (actor start-up,
model loading and every file). Training runs `dynface train rm` on the packaged config for a few
iterations per world size and reads sec/iter from rank 0's log (first iteration dropped).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SRC = Path(__file__).resolve().parents[1] / "src"


def clean_runs(data: Path, files: int, steps: int, work: Path) -> list[dict]:
    from dynface.core.hardware import default_threads, set_threads
    from dynface.engines.ray_engine import clean_folder_ray, connect
    from dynface.jobs.clean import clean_folder
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    subset = work / "faces"
    subset.mkdir()
    for f in sorted(data.iterdir())[:files]:
        shutil.copy(f, subset / f.name)
    opt = RestoreOptions(method="idm", steps=steps, seed=0)
    cores = default_threads()
    rows = []
    set_threads(cores)
    t0 = time.perf_counter()
    rep = clean_folder(subset, work / "local", Restorer(ModelSet.load()), opt, progress=False)
    dt = time.perf_counter() - t0
    rows.append({"engine": "local", "workers": 1, "threads_each": cores, "files": rep["written"],
                 "startup_s": 0.0, "run_s": round(dt, 1), "files_per_s": round(rep["written"] / dt, 3)})
    import ray

    for workers in (1, 2):
        threads = max(1, cores // workers)
        t0 = time.perf_counter()
        connect(None, cpus=workers * threads)
        t1 = time.perf_counter()
        try:
            rep = clean_folder_ray(subset, work / f"ray{workers}", None, opt, workers=workers, threads=threads,
                                   batch=1, progress=False)
        finally:
            ray.shutdown()
        dt = time.perf_counter() - t1
        rows.append({"engine": "ray", "workers": workers, "threads_each": threads, "files": rep["written"],
                     "startup_s": round(t1 - t0, 1), "run_s": round(dt, 1),
                     "files_per_s": round(rep["written"] / dt, 3)})
        same = all((work / "local" / p.name).read_bytes() == p.read_bytes() for p in (work / f"ray{workers}").iterdir())
        rows[-1]["same_bytes_as_local"] = same
    return rows


def train_runs(data: Path, iters: int, work: Path) -> list[dict]:
    cfg = yaml.safe_load((SRC / "dynface" / "configs" / "rm.yaml").read_text())
    cfg.update({"data": str(data), "iters": iters, "log_every": 1, "ckpt_every": 10_000, "limit": 64,
                "cache_dir": str(work / "cache"), "threads": None})
    from dynface.core.hardware import default_threads

    cores = default_threads()
    rows = []
    for nproc in (1, 2):
        cfg_path = work / f"rm{nproc}.yaml"
        cfg["threads"] = max(1, cores // nproc)
        cfg_path.write_text(yaml.safe_dump(cfg))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(SRC), "GLOO_SOCKET_IFNAME": "lo"}
        run = work / f"train{nproc}"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
               f"--master_port={port}", "-m", "dynface.cli", "train", "rm", "--config", str(cfg_path),
               "--run-dir", str(run), "-q"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        with open(run / "log.csv") as f:
            sec = [float(r["sec_per_iter"]) for r in csv.DictReader(f)][1:]
        per_iter = sum(sec) / len(sec)
        rows.append({"processes": nproc, "threads_each": cfg["threads"], "batch_per_rank": cfg["batch"],
                     "sec_per_iter": round(per_iter, 3), "images_per_s_per_rank": round(cfg["batch"] / per_iter, 2),
                     "images_per_s_total": round(nproc * cfg["batch"] / per_iter, 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/utkface")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("-o", "--output", default="docs/scale_out.json")
    a = ap.parse_args()
    from dynface.core.hardware import cpu_summary, default_threads

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        res = {"cpu": cpu_summary(), "cores_used": default_threads(), "load_avg_start": os.getloadavg(),
               "clean": clean_runs(Path(a.data), a.files, a.steps, work), "steps": a.steps,
               "train": train_runs(Path(a.data), a.iters, work), "load_avg_end": os.getloadavg()}
    Path(a.output).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
