"""Ray engine: `dynface clean|restore ... --engine ray [--address ADDR]`.

The driver lists the files still to do (an output that exists is done, so a killed run resumes
where it was), turns them into a Ray Data dataset (`from_items`: one row per file, with its output
path and seed) and `map_batches` it through an actor pool: each actor loads the model set once and
restores its rows with the same per-file function as the local engine (`clean.clean_file`,
`face.whole.process_photo_to_dir`), writing each output atomically. A file that fails is one
result row with its reason; the run goes on and the driver lists failures at the end.

Without an address a local Ray runtime is started on 127.0.0.1 (no dashboard, no usage stats);
with one, the driver joins that cluster. Every node must then have dynface and its `[ray]` extra
installed and see the dataset, output and model folders at the same paths (a shared filesystem).
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from dynface.errors import DynfaceError

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
_NO_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class EngineError(DynfaceError, RuntimeError):
    """Ray is missing, the cluster cannot be reached, or the actor pool could not start."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise EngineError("the ray engine needs Ray Data: pip install 'dynface[ray]'") from None
    return ray


def connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at `address`, or start a local runtime on 127.0.0.1 with `cpus` CPUs.
    Returns False when this process was already connected (the caller then must not shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    common = {"configure_logging": True, "logging_level": "ERROR", "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            with _loopback_only():
                ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         object_store_memory=256 * 2**20, **common)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        raise EngineError(f"cannot start or join {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar, per file
    ctx.max_errored_blocks = 0
    return True


@contextmanager
def _loopback_only():
    """Ray turns 127.0.0.1 into this host's routable address unless told that this is no cluster
    (the knob is named for Windows/macOS, where that is the default); then every Ray process of
    the local runtime listens on 127.0.0.1 only."""
    from ray._private import ray_constants

    old_env, old_flag = os.environ.get(_NO_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_NO_CLUSTER_ENV], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(_NO_CLUSTER_ENV, None)
        else:
            os.environ[_NO_CLUSTER_ENV] = old_env


class FileWorker:
    """A Ray Data actor: loads the model set once, then restores the rows of each batch it is given.
    `run_rows` subclasses it with the job as a class attribute (shipped with the class, not as
    constructor arguments in the object store, which actor restarts could lose)."""

    JOB: dict = {}

    def __init__(self):
        from dynface.core.hardware import set_threads
        from dynface.modelset.folder import ModelSet
        from dynface.pipeline import Restorer, RestoreOptions

        job = self.job = self.JOB
        set_threads(job["threads"])
        if job["kind"] == "synth":
            from dynface.synth.generator import FaceGenerator

            self.generator = FaceGenerator(threads=job["threads"])
            return
        self.opt = RestoreOptions(**job["opt"])
        self.restorer = Restorer(ModelSet.load(job["weights_dir"]))
        if job["kind"] == "restore":
            from dynface.face.templates import template_for
            from dynface.jobs.batch import make_restore_fn

            size = self.restorer.models.size
            self.template = template_for(self.restorer.models.manifest.get("template", "utkface"), size)
            self.restore_fn = make_restore_fn(self.restorer, self.opt, show_steps=False)

    def _one(self, src: str, dst: str, seed: int, stem: str) -> str:
        import json

        if self.job["kind"] == "synth":
            from dynface.jobs.synth import SynthSettings, make_face

            return json.dumps(make_face(self.generator, Path(dst), int(src), SynthSettings(**self.job["synth"])))
        if self.job["kind"] == "clean":
            from dynface.jobs.clean import clean_file

            clean_file(self.restorer, self.opt, src, dst, int(seed))
            return ""
        from dynface.face.folders import FaceJobOptions, process_photo_to_dir

        tmpl = self.restorer.models.manifest.get("template", "utkface")
        face = FaceJobOptions(**self.job["face"]).resolved(tmpl)
        rep = process_photo_to_dir(src, dst, self.restore_fn, self.template, self.restorer.models.size, face,
                                   stem=stem or None)
        return json.dumps(rep.to_dict())

    def __call__(self, batch: dict) -> dict:
        out = {"src": [], "error": [], "report": [], "pid": []}
        for src, dst, seed, stem in zip(batch["src"], batch["dst"], batch["seed"], batch["stem"]):
            err, rep = "", ""
            try:
                rep = self._one(str(src), str(dst), int(seed), str(stem))
            except Exception as e:  # noqa: BLE001 - one bad file is a result row, never a dead actor
                err = (str(e).splitlines() or [type(e).__name__])[0]
                if not err.startswith(str(src)):
                    err = f"{src}: {err}"
            out["src"].append(str(src))
            out["error"].append(err)
            out["report"].append(rep)
            out["pid"].append(os.getpid())
        return out


def run_rows(rows: list[dict], job: dict, address: str | None, workers: int | None, threads: int, batch: int,
             progress: bool, desc: str) -> list[dict]:
    """Map `rows` ({src, dst, seed}) through a pool of FileWorker actors; one result per row."""
    if not rows:
        return []
    started = connect(address, cpus=(workers or 1) * threads)
    ray = _ray()
    try:
        if workers is None:  # a cluster: as many actors as its CPUs allow
            workers = max(1, int(ray.cluster_resources().get("CPU", threads)) // threads)
        workers = min(workers, len(rows))
        batch = max(1, min(batch, math.ceil(len(rows) / workers)))
        worker_cls = type("FileWorker", (FileWorker,), {"JOB": {**job, "threads": threads}})
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch))
        ds = ds.map_batches(worker_cls, batch_size=batch, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads)
        return _collect(ds, len(rows), f"{desc} (ray, {workers} worker(s))", progress)
    finally:
        if started:
            ray.shutdown()


def _collect(ds, total: int, desc: str, progress: bool) -> list[dict]:
    """Stream the result rows back, one progress step per file."""
    results = []
    bar = tqdm(total=total, desc=desc, unit="file", disable=not progress)
    try:
        for r in ds.iter_rows():
            results.append({k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()})
            bar.update(1)
    except Exception as e:  # noqa: BLE001 - e.g. the model set failed to load in the actors
        msg = str(e).strip().splitlines()
        raise EngineError(f"the Ray run failed: {msg[-1] if msg else type(e).__name__}") from None
    finally:
        bar.close()
    return results


def clean_folder_ray(dataset, out_dir, weights_dir, opt, *, limit=None, split="all", address=None,
                     workers=None, threads=1, batch=4, progress=True, size=None) -> dict:
    """`clean.clean_folder` on Ray: same outputs, same report ({written, skipped, failed})."""
    from dynface.jobs.clean import _rel, append_record, clean_outputs, file_seed, pending

    files, outputs, warnings = clean_outputs(dataset, out_dir, split, limit)
    todo, _, more = pending(dataset, files, outputs, out_dir, size)
    warnings = warnings + more
    rows = [{"src": str(f.resolve()), "dst": str(outputs[f].resolve()),
             "seed": file_seed(opt.seed, f.relative_to(dataset)), "stem": ""} for f in todo]
    job = {"kind": "clean", "opt": asdict(opt), "weights_dir": _abs(weights_dir)}
    res = run_rows(rows, job, address, workers, threads, batch, progress, "cleaning")
    failed = [(r["src"], r["error"]) for r in res if r["error"]]
    by_src = {str(f.resolve()): f for f in todo}
    for r in res:
        if not r["error"] and r["src"] in by_src:
            f = by_src[r["src"]]
            append_record(out_dir, outputs[f].name, _rel(f, dataset))
    return {"written": len(res) - len(failed), "skipped": len(files) - len(todo), "failed": failed,
            "warnings": warnings, "workers": sorted({r["pid"] for r in res})}


def restore_paths_ray(paths, out_dir, weights_dir, opt, face=None, *, address=None, workers=None, threads=1, batch=1,
                      progress=True):
    """`batch.restore_paths` on Ray (`face`: a `face.folders.FaceJobOptions`). A photo whose final_results
    image exists (written last) is done."""
    import json

    from dynface.core.imageio import list_images
    from dynface.face.folders import FaceJobOptions, final_output
    from dynface.jobs.batch import RESTORE_SUBFOLDERS, BatchReport, check_output_dir
    from dynface.jobs.outnames import output_stems

    files = list_images(paths)
    out_dir = check_output_dir(out_dir, files, RESTORE_SUBFOLDERS)
    stems, warnings = output_stems(files)
    face = face or FaceJobOptions()
    todo = [f for f in files if not final_output(out_dir, f, face.suffix, face.ext, stems[f]).exists()]
    rows = [{"src": str(f.resolve()), "dst": str(out_dir.resolve()), "seed": opt.seed, "stem": stems[f]}
            for f in todo]
    job = {"kind": "restore", "opt": asdict(opt), "weights_dir": _abs(weights_dir), "face": asdict(face)}
    report = BatchReport()
    report.warnings.extend(warnings)
    for r in run_rows(rows, job, address, workers, threads, batch, progress, "restoring"):
        if r["error"]:
            report.failed.append((r["src"], r["error"]))
            continue
        rep = json.loads(r["report"])
        report.done.append(rep)
        report.warnings.extend(f"{Path(r['src']).name}: {w}" for w in rep.get("warnings", []))
    report.skipped = len(files) - len(todo)
    return report


def synthesize_ray(out_dir, n: int, s, *, address=None, workers=None, threads=1, batch=16, progress=True) -> dict:
    """`jobs.synth.synthesize` on Ray: the same files and faces.csv, the faces spread over actors."""
    import json
    import time
    from dataclasses import asdict

    from dynface.jobs.synth import prepare, report, write_rows
    from dynface.synth.generator import model_dir

    out, rows = prepare(out_dir, s, model_dir())
    todo = [i for i in range(n) if i not in rows]
    items = [{"src": str(i), "dst": str(out.resolve()), "seed": s.seed, "stem": ""} for i in todo]
    t0, failed = time.time(), []
    try:
        for r in run_rows(items, {"kind": "synth", "synth": asdict(s)}, address, workers, threads, batch, progress,
                          "synth"):
            if r["error"]:
                failed.append(r["error"])
            else:
                row = json.loads(r["report"])
                rows[int(row["index"])] = row
    finally:
        write_rows(out, rows)
    if failed:
        raise EngineError(f"{len(failed)} face(s) failed in the Ray workers, first: {failed[0]}")
    rep = report(rows, n, len(todo), time.time() - t0)
    return rep


def _abs(path) -> str | None:
    return str(Path(path).resolve()) if path else None
