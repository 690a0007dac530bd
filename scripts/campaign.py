"""The training campaign: resume every run in the background, watch the curves, export the winners.

    python scripts/campaign.py start [--device cuda] [--threads N] [--wait]
        # resume (or start from the shipped weights) every active run; --device: where its networks
        # train (all runs share it); --threads: CPU threads per run (default: each run's `threads`);
        # --wait: stay, and start each run that waits for its faces once they are made
    python scripts/campaign.py start NAME ... [--threads N] [--same-session]
        # only the runs named (e.g. one run on both cores while the others wait)
    python scripts/campaign.py status           # running?, iterations, first and last curve rows
    python scripts/campaign.py stop [NAME ...]  # SIGTERM: each run (or each named one; then the face
                                                # generators go on) checkpoints and stops; waits for them
    python scripts/campaign.py install NAME     # export and install one run, chosen on other evidence
    python scripts/campaign.py bench [NAME ...] [--settings S] [--limit N] [-o DIR]
        # `dynface bench` on ../shared/data/val/clean with the embedded set ("shipped") and, per
        # NAME, the embedded set with that run's export in place of its stage (DIR/NAME/table.md);
        # NAME may join runs with "+" (rm_sharp+se_refit: both exports in one set)
    python scripts/campaign.py warm NAME        # keep run NAME's critic as the campaign's warm critic
    python scripts/campaign.py export [--install]
        # export each run (fp16 safetensors), copy its curve to docs/history/training/NAME.csv/.png; with
        # --install, replace an embedded stage by the best run for it, only where that run's last
        # validation row beats the weights embedded now (scored afresh) on the run's metric

The runs are listed in campaign/runs.yaml; their folders live outside the work tree (runs_dir, or
$DYNFACE_RUNS), so training survives refactors of the repository and is resumed each session.
The synthetic folders the runs read (runs.yaml `data:`) live in runs_dir/data: `start` first
resumes `dynface synth` for each that is not complete (in the background, niced, one thread), and
a config names them as $DYNFACE_RUNS/data/NAME.
Runs are niced (and so is their autogroup, see lower_autogroup), so interactive work on the same
cores goes first; the face generators yield to the training runs as well.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS_YAML = ROOT / "campaign" / "runs.yaml"
DOCS = ROOT / "docs" / "history" / "training"  # measured curves of every run (and of branches lost with a machine)
MIN_GAIN = {"psnr": 0.02, "detail_ratio": 0.005, "x0_psnr_t300": 0.02, "sample10_psnr": 0.02, "sigma_abs_err": 0.005,
            "restored_detail_ratio": 0.005, "niqe": 0.05}  # below: noise
LOWER_IS_BETTER = {"sigma_abs_err", "niqe", "restored_niqe"}
STAGE_PARTS = {"se": ("tm", "sde")}  # a run of kind se exports and installs two embedded files
WARM_DIR = ROOT / "campaign" / "warm"
WARM_CRITIC = WARM_DIR / "rm_critic.safetensors"  # RM configs' `gan: {init: ...}`


def improvement(metric: str, first: float, last: float) -> float:
    """How much better `last` is than `first` (positive = better, whichever way the metric runs)."""
    lower = metric in LOWER_IS_BETTER or metric.startswith("kid_")  # KID of samples: lower is better
    return first - last if lower else last - first


def load_runs():
    spec = yaml.safe_load(RUNS_YAML.read_text())
    runs_dir = Path(os.environ.get("DYNFACE_RUNS") or spec["runs_dir"])
    return runs_dir, spec["runs"]


def select_runs(runs: list[dict], names: list[str], command: str) -> list[dict]:
    """The runs named on the command line, in runs.yaml's order; `start` refuses a paused one."""
    by_name = {r["name"]: r for r in runs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"campaign: no run named {', '.join(unknown)} in {RUNS_YAML.name}")
    paused = [n for n in names if command == "start" and not by_name[n].get("active", True)]
    if paused:
        raise SystemExit(f"campaign: {', '.join(paused)} is paused (active: false in {RUNS_YAML.name})")
    return [r for r in runs if r["name"] in names]


def data_specs() -> list[dict]:
    return yaml.safe_load(RUNS_YAML.read_text()).get("data") or []


def faces_done(folder: Path) -> int:
    f = folder / "faces.csv"
    return max(0, len(f.read_text().splitlines()) - 1) if f.exists() else 0


def faces_made(folder: Path) -> int:
    """Faces written so far (files, not faces.csv rows: a Ray engine lists its faces only at the end)."""
    return sum(1 for _ in folder.glob("face_*.*")) if folder.is_dir() else 0


def config_folders(cfg: dict) -> set[Path]:
    """The folders a training config reads (data sources, validation and KID references), expanded
    as the training run expands them ($DYNFACE_RUNS: the campaign's runs_dir, set by `main`)."""
    from dynface.core.files import expand
    from dynface.training.data import sources

    paths = [s.path for s in sources(cfg["data"])] if cfg.get("data") else []
    paths += [cfg.get("val_data"), cfg.get("restore_val_data"), *((cfg.get("sample_kid") or {}).get("references") or [])]
    return {Path(expand(p)).resolve() for p in paths if p}


def short_folders(runs_dir: Path, cfg: dict, specs: list[dict]) -> list[tuple[dict, int]]:
    """The synthetic folders (runs.yaml `data` entries) a run reads that, not complete yet, hold
    fewer faces than their `min_faces` (a new machine makes them again first), each with the faces
    it holds. A complete folder never blocks (the faces its check rejected are all it lacks)."""
    reads, short = config_folders(cfg), []
    for d in specs:
        folder, need = data_folder(runs_dir, d), int(d.get("min_faces", 0))
        if (need and folder.resolve() in reads and faces_done(folder) < int(d["num"])
                and (have := faces_made(folder)) < need):
            short.append((d, have))
    return short


def data_shortfall(runs_dir: Path, cfg: dict, specs: list[dict]) -> str | None:
    """Why a run should wait (short_folders), else None."""
    return "; ".join(f"{d['name']} holds {have} of the {d['min_faces']} faces it needs first"
                     for d, have in short_folders(runs_dir, cfg, specs)) or None


def data_folder(runs_dir: Path, spec: dict) -> Path:
    """Where synthetic folder `spec` (a runs.yaml `data` entry) is made."""
    return runs_dir / "data" / spec["name"]


def data_pidfile(runs_dir: Path, spec: dict) -> Path:
    """Where the generator making synthetic folder `spec` keeps its pid."""
    return runs_dir / "data" / f"{spec['name']}.pid"


def start_data(runs_dir: Path, specs: list[dict]) -> None:
    """Resume `dynface synth` for every synthetic folder of runs.yaml that is not complete
    (`active: false` pauses one: the training runs read the faces it has)."""
    for d in specs:
        if not d.get("active", True):
            continue
        folder = data_folder(runs_dir, d)
        pidfile = data_pidfile(runs_dir, d)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if pid_alive_dir_file(pidfile):
            print(f"data {d['name']}: already being made")
            continue
        if faces_done(folder) >= int(d["num"]):
            continue
        cmd = [sys.executable, "-m", "dynface.cli", "synth", "-n", str(d["num"]), "-o", str(folder),
               "--size", str(d["size"]), "--seed", str(d.get("seed", 0)), "--truncation", str(d.get("truncation", 0.7)),
               "--threads", "1", "-q"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        log = open(folder.parent / f"{d['name']}.log", "ab")
        p = subprocess.Popen(["nice", "-n", "10", *cmd], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                             start_new_session=True)
        pidfile.write_text(str(p.pid))
        lower_autogroup(p.pid, DATA_NICE)
        print(f"data {d['name']}: making faces {faces_done(folder)}..{d['num'] - 1} (pid {p.pid})")




def pid_alive(run_dir: Path) -> int | None:
    """The run's training process id while it runs (an exited child not yet reaped counts as gone)."""
    return pid_alive_dir_file(run_dir / "pid")


def pid_alive_dir_file(pidfile: Path) -> int | None:
    """The process id in `pidfile` while that process runs."""
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        pass  # no /proc: the signal test above is all there is
    return pid


RUN_NICE, DATA_NICE = 10, 19  # autogroup nice of training runs and of face generators (CPU weights ~110 and ~15 of 1024)


def lower_autogroup(pid: int, nice: int = RUN_NICE) -> None:
    """With the kernel's autogroup scheduling on (/proc/sys/kernel/sched_autogroup_enabled), `nice`
    only ranks processes inside one session; a run started in its own session competes with the
    user's shell as an equal. Lowering the session's autogroup makes it yield to interactive work
    (and a face generator, lowered further, to the training runs it feeds)."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass  # no autogroup support (or not permitted): plain nice still applies


def start(runs_dir: Path, runs, device: str = "cpu", threads: int | None = None, same_session: bool = False,
          specs: list[dict] | None = None, say_waits: bool = True) -> list[dict]:
    """Resume (or start) every active run in the background; each start is logged as a working
    session (`log_session`) unless `same_session` says it restarts runs within one. A run with no
    checkpoint waits while a synthetic folder it reads is short of its `min_faces` (`specs`: runs.yaml
    `data`). Returns the runs that wait."""
    from dynface.training.loop import load_config

    specs = data_specs() if specs is None else specs
    active = [r for r in runs if r.get("active", True)]
    for r in active:  # forks first: a branch copies its source's checkpoint before the source resumes
        d = runs_dir / r["name"]
        if r.get("fork") and not (d / "ckpt.pt").exists() and not pid_alive(d):
            try:
                d.mkdir(parents=True, exist_ok=True)
                fork(runs_dir / r["fork"], d)
            except RuntimeError as e:
                print(e)
    waiting = []
    for r in active:
        d = runs_dir / r["name"]
        if pid_alive(d):
            print(f"{r['name']}: already running")
            continue
        if r.get("fork") and not (d / "ckpt.pt").exists():
            continue  # its fork was refused, said above
        if not (d / "ckpt.pt").exists() and (why := data_shortfall(runs_dir, load_config(ROOT / r["config"]), specs)):
            waiting.append(r)
            if say_waits:
                print(f"{r['name']}: waits, {why} (start again later, or `start --wait`)")
            continue
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "dynface.cli", "train", r["kind"], "--config", str(ROOT / r["config"]),
               "--run-dir", str(d), "--cache-dir", str(runs_dir / "cache"),
               "--threads", str(threads or r.get("threads", 1)), "--device", device, "-q"]
        resume = (d / "ckpt.pt").exists()
        if resume:
            cmd.append("--resume")
        log = open(d / "train.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        p = subprocess.Popen(["nice", "-n", "10", *cmd], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                             start_new_session=True)
        (d / "pid").write_text(str(p.pid))
        lower_autogroup(p.pid)
        if not same_session:
            log_session(d, r)
        fresh = "from its config's init_from" if load_config(ROOT / r["config"]).get("init_from") else "afresh"
        how = "resumed" if resume else f"started {fresh}"
        print(f"{r['name']}: {how} on {device} "
              f"(pid {p.pid}, log {d / 'train.log'})", flush=True)
    return waiting


def start_when_ready(runs_dir: Path, runs, device: str = "cpu", threads: int | None = None,
                     same_session: bool = False, specs: list[dict] | None = None, poll_s: float = 60.0,
                     sleep=time.sleep) -> None:
    """`start --wait`: `start`, then look again every `poll_s` seconds and start each run that
    waited as soon as the faces it reads are there (a new machine makes them first); returns when
    none waits, or when no generator makes the folders they wait for (they would wait for ever)."""
    from dynface.training.loop import load_config

    specs = data_specs() if specs is None else specs
    waiting = start(runs_dir, runs, device, threads, same_session, specs)
    while waiting:
        awaited = {d["name"]: d for r in waiting for d, _ in short_folders(runs_dir, load_config(ROOT / r["config"]), specs)}
        if not any(pid_alive_dir_file(data_pidfile(runs_dir, d)) for d in awaited.values()):
            print(f"campaign: no generator makes {', '.join(awaited) or 'their faces'}, so "
                  f"{', '.join(r['name'] for r in waiting)} would wait for ever: stopped waiting "
                  "(see runs_dir/data/*.log)")
            return
        sleep(poll_s)
        waiting = start(runs_dir, waiting, device, threads, same_session, specs, say_waits=False)


def fork(src: Path, dst: Path) -> None:
    """Start run `dst` as a branch of run `src` (runs.yaml `fork: NAME`, e.g. an anneal of a long run):
    a copy of its checkpoint (model, EMA, optimiser, critic, RNG states: the branch draws the batches
    `src` would have drawn) and of its curve, so the branch's curve continues `src`'s. Refused
    (RuntimeError) while `src` trains, since its checkpoint may be mid-write. The checkpoint is
    copied last: its presence marks a finished fork."""
    if pid_alive(src):
        raise RuntimeError(f"{dst.name}: forks {src.name}, which is still training: stop it first")
    if not (src / "ckpt.pt").exists():
        raise RuntimeError(f"{dst.name}: forks {src.name}, which has no checkpoint in {src}")
    from dynface.core.atomic import write_atomic

    for name in ("curve.csv", "ckpt.pt"):
        if (src / name).exists():
            write_atomic(dst / name, lambda tmp, f=src / name: shutil.copyfile(f, tmp))


def log_session(d: Path, r: dict) -> None:
    """Append this start to RUN/sessions.csv (UTC time, the curve's last step, else the iterations
    of the weights a fresh run starts from, and the CPU): the working sessions whose gains `status`
    lists (a plateau is no gain over several working sessions in a row)."""
    from datetime import datetime, timezone

    from dynface.core.hardware import cpu_summary
    from dynface.training.loop import init_record, load_config

    rows = curve_rows(d)
    step = int(rows[-1]["step"]) if rows else init_record(r["kind"], load_config(ROOT / r["config"]))["iters"]
    path = d / "sessions.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["started", "step", "cpu"])
        w.writerow([f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M}", step, cpu_summary()])


def session_starts(d: Path) -> list[int]:
    """The curve steps at which logged working sessions began (RUN/sessions.csv), in order."""
    path = d / "sessions.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return sorted({int(r["step"]) for r in csv.DictReader(f)})


def session_gains(d: Path, rows: list[dict], metric: str) -> list[tuple[int, int, float]]:
    """(first step, last step, gain in `metric`) of each logged session that has curve rows: the
    curve's row at (or next after) the session's start to the last row before the next start."""
    starts = session_starts(d)
    if not starts or not rows:
        return []
    out = []
    for i, s0 in enumerate(starts):
        s1 = starts[i + 1] if i + 1 < len(starts) else float("inf")
        seg = [r for r in rows if s0 <= r["step"] <= s1 and metric in r]
        if len(seg) >= 2:
            out.append((int(seg[0]["step"]), int(seg[-1]["step"]), improvement(metric, seg[0][metric], seg[-1][metric])))
    return out


def curve_rows(d: Path):
    from dynface.training.curves import read_curve

    return read_curve(d / "curve.csv") if (d / "curve.csv").exists() else []


def recent_slope(rows: list[dict], metric: str, window: int = 1000) -> float | None:
    """Least-squares slope of `metric` per 1,000 iterations over the rows of the last `window`
    iterations (None with fewer than 3 such rows): the number that shows a plateau, or not."""
    last = rows[-1]["step"] if rows else 0
    pts = [(r["step"], r[metric]) for r in rows if metric in r and r["step"] >= last - window]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return 1000 * sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def status(runs_dir: Path, runs) -> None:
    for d in data_specs():
        folder = data_folder(runs_dir, d)
        making = pid_alive_dir_file(data_pidfile(runs_dir, d))
        print(f"data {d['name']}: {faces_done(folder)}/{d['num']} faces" + (f", being made (pid {making})" if making else ""))
    for r in runs:
        d = runs_dir / r["name"]
        rows = curve_rows(d)
        state = "running" if pid_alive(d) else "stopped"
        if not rows:
            print(f"{r['name']}: {state}, no curve yet")
            continue
        m = r["metric"]
        last = rows[-1]
        scored = [row for row in rows if m in row]   # a metric added mid-run has no value in older rows
        if not scored:
            print(f"{r['name']}: {state}, it {int(rows[0]['step'])} -> {int(last['step'])}, no {m} on the curve yet")
            continue
        first, last = scored[0], scored[-1]
        best = max(scored, key=lambda row: improvement(m, first[m], row[m]))
        slope = recent_slope(rows, m)
        print(f"{r['name']}: {state}, it {int(first['step'])} -> {int(last['step'])} ({last.get('wall_h', 0):.2f} h), "
              f"{m} {first[m]:.3f} -> {last[m]:.3f} (best {best[m]:.3f} at {int(best['step'])}"
              + (f"; last 1,000 it: {slope:+.3f} per 1,000 it)" if slope is not None else ")")
              + "".join(f", {k} {last[k]:.3f}" for k in last if k not in ("step", "images", "wall_h", m)))
        gains = session_gains(d, rows, m)
        if gains:
            print(f"    by session ({m} gain, + = better): "
                  + "; ".join(f"{a} -> {b}: {g:+.3f}" for a, b, g in gains))


def stop(runs_dir: Path, runs, timeout: float = 900.0, generators: bool = True) -> None:
    """SIGTERM every running run (each finishes its iteration, or drops a curve row under way, which
    it measures first when resumed, then checkpoints), and wait until they have exited, so that
    `export` reads their last checkpoint; with `generators`, the face generators stop too."""
    asked = {}
    for d in data_specs() if generators else []:  # they stop at once (a re-run fills what is missing)
        pid = pid_alive_dir_file(data_pidfile(runs_dir, d))
        if pid:
            os.killpg(os.getpgid(pid), signal.SIGTERM)
            print(f"data {d['name']}: stopped (pid {pid})", flush=True)
    for r in runs:
        pid = pid_alive(runs_dir / r["name"])
        if pid:
            os.killpg(os.getpgid(pid), signal.SIGTERM)
            asked[r["name"]] = pid
            print(f"{r['name']}: asked to checkpoint and stop (pid {pid})", flush=True)
    end = time.time() + timeout
    while asked and time.time() < end:
        for name in [n for n in asked if not pid_alive(runs_dir / n)]:
            print(f"{name}: stopped", flush=True)
            del asked[name]
        time.sleep(1)
    if asked:
        raise SystemExit(f"campaign: still running after {timeout:.0f} s: {', '.join(asked)}")


def shipped_scores(r: dict, cfg: dict, runs_dir: Path) -> dict:
    """The run's validation metrics for the weights embedded *now* in its stage, so that a run is
    installed only where it beats what ships, whenever its curve began. They are loaded as the
    stage's embedded file whatever the config's init_from names: a run that keeps warm weights
    starts from its own last export, which `export` has just refreshed."""
    from dynface.modelset.manifest import STAGE_FILES
    from dynface.training.curves import Validator
    from dynface.training.loop import build_trainable, load_frozen

    cfg = {**cfg, "cache_dir": str(runs_dir / "cache")}
    if r["stage"] in STAGE_PARTS:  # SE: its parts' embedded files, as its init_tm / init_sde
        cfg.update({f"init_{part}": f"embedded:{STAGE_FILES[part]}" for part in STAGE_PARTS[r["stage"]]})
    else:  # `zero` kept: a grown network starts as the one it grew from (networks/deepen.py)
        zero = (cfg.get("init_from") or {}).get("zero")
        cfg["init_from"] = {"path": f"embedded:{STAGE_FILES[r['stage']]}", **({"zero": zero} if zero else {})}
    return Validator(r["kind"], cfg, load_frozen(r["kind"], cfg))(build_trainable(r["kind"], cfg))


def verdict(r: dict, shipped: dict, last: dict) -> tuple[float, bool, str]:
    """(gain on the run's metric, install?, why). A run is a candidate unless `candidate: false` (a
    control arm); it must gain more than MIN_GAIN on `metric` and lose no more than `guard[k]` on any
    other metric k (e.g. `guard: {psnr: 0.15}`: sharper, but at most 0.15 dB below what ships)."""
    m = r["metric"]
    gain = improvement(m, shipped[m], last[m])
    if gain <= MIN_GAIN.get(m, 0.0):
        return gain, False, "not better"
    for k, tol in (r.get("guard") or {}).items():
        if improvement(k, shipped[k], last[k]) < -float(tol):
            return gain, False, f"better, but {k} {shipped[k]:.4f} -> {last[k]:.4f} breaks its guard ({tol})"
    if r.get("candidate", True) is False:
        return gain, False, "better (a control arm: not installed)"
    return gain, True, "better"


def export(runs_dir: Path, runs, install: bool) -> None:
    from dynface.training.curves import plot_compare
    from dynface.training.loop import export as export_run
    from dynface.training.loop import load_config

    DOCS.mkdir(parents=True, exist_ok=True)
    winners = {}
    for r in runs:
        d = runs_dir / r["name"]
        rows = curve_rows(d)
        if not (d / "ckpt.pt").exists() or not rows:
            print(f"{r['name']}: nothing to export")
            continue
        cfg = load_config(ROOT / r["config"])
        out = export_run(r["kind"], cfg, d)
        if r.get("active", True):  # a retired arm's warm weights stay where it stopped being the campaign's
            keep_warm(r["name"], out)
        lost = document_curve(d / "curve.csv", DOCS / f"{r['name']}.csv")
        if lost:
            print(f"{r['name']}: {lost.name}: the documented rows this run does not continue (an earlier branch, "
                  f"lost with its machine or retired by an install)")
        branches = {f"earlier branch ({p.stem})": p for p in sorted(DOCS.glob(f"{r['name']}.lost-*.csv"))}
        plot_compare({"": DOCS / f"{r['name']}.csv", **branches}, DOCS / f"{r['name']}.png",
                     f"{r['name']} ({r['kind']}, {r['config']})", session_starts(d))
        m = r["metric"]
        if m not in rows[-1]:
            print(f"{r['name']}: exported {out}; no {m} on its curve yet (a new metric): not installed")
            continue
        if r.get("candidate") is False:  # never installed, so not scored against the embedded weights
            print(f"{r['name']}: exported {out}; {m} {rows[0][m]:.4f} (its first row) -> {rows[-1][m]:.4f}")
            continue
        shipped = shipped_scores(r, cfg, runs_dir)
        gain, better, why = verdict(r, shipped, rows[-1])
        print(f"{r['name']}: exported {out}; {m} {shipped[m]:.4f} (embedded now) -> {rows[-1][m]:.4f} "
              f"({gain:+.4f}): {why}")
        if better:  # all arms are scored against the same embedded weights
            winners.setdefault(r["stage"], []).append((gain, m, out, r["name"]))
    by_stage: dict[str, dict] = {}
    for r in runs:  # the documented curves: arms whose runs this machine never held are drawn too
        if (DOCS / f"{r['name']}.csv").exists():
            by_stage.setdefault(r["stage"], {})[r["name"]] = DOCS / f"{r['name']}.csv"
    for stage, curves in by_stage.items():
        if len(curves) > 1:  # the arms of an ablation on shared axes
            print(f"wrote {plot_compare(curves, DOCS / f'{stage}_compare.png', f'{stage}: ' + ' vs '.join(curves))}")
    for stage, arms in winners.items():
        if len({m for _, m, _, _ in arms}) > 1:  # gains in dB and in detail ratio do not compare
            print(f"{stage}: {', '.join(n for *_, n in arms)} all beat the shipped weights, on different metrics; "
                  f"choose one with `install NAME`")
            continue
        gain, m, path, name = max(arms, key=lambda a: a[0])
        if install:
            install_run(runs_dir, runs, name, stage, path)
        else:
            print(f"would install {name} as embedded {stage} (pass --install)")


def keep_warm(name: str, export_path: Path) -> None:
    """A run that keeps its weights in the repository (campaign/warm/NAME.safetensors, which its
    config's init_from names, so a new machine continues from them) gets them refreshed from each
    export, and its critic too where it keeps one (campaign/warm/NAME_critic.safetensors)."""
    warm = WARM_DIR / f"{name}.safetensors"
    if warm.exists():
        shutil.copyfile(export_path, warm)
        print(f"{name}: {warm} refreshed from its export")
    critic, warm_critic = export_path.parent / "critic.safetensors", WARM_DIR / f"{name}_critic.safetensors"
    if warm_critic.exists() and critic.exists():  # its config's `gan: {init: ...}`: the critic comes along
        shutil.copyfile(critic, warm_critic)
        print(f"{name}: {warm_critic} refreshed from its export")


def document_curve(run_csv: Path, doc_csv: Path) -> Path | None:
    """Write the run's curve to docs (`doc_csv`) after the documented rows that precede its first
    step: those of earlier machines, whose checkpoints are gone, so the docs keep the whole history
    when a new machine starts the run again from the shipped weights. Documented rows from that
    step on that the run does not continue (an earlier branch: lost with its machine, or retired to
    NAME.stale-N by an install) move to NAME.lost-K.csv, whose path is returned."""
    from dynface.training.curves import write_rows

    def rows(path: Path) -> tuple[list[str], list[dict]]:
        if not path.exists():
            return [], []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    (run_cols, run), (doc_cols, doc) = rows(run_csv), rows(doc_csv)
    if not run:
        return None
    first = float(run[0]["step"])
    before = [r for r in doc if float(r["step"]) < first]
    after = [r for r in doc if float(r["step"]) >= first]
    same = len(run) >= len(after) and all(same_row(a, b) for a, b in zip(run, after))
    lost = None
    if after and not same:
        lost = first_free(doc_csv.with_suffix(""), "{}.lost-{}.csv")
        write_rows(lost, doc_cols, after)
    write_rows(doc_csv, doc_cols + [c for c in run_cols if c not in doc_cols], before + run)
    return lost


def same_row(a: dict, b: dict, rel: float = 1e-3) -> bool:
    """Two curve rows hold the same measurements: the same columns filled, numbers equal to `rel`
    (a run resumed from its fp16 warm file re-measures its first row a few 1e-5 away)."""
    a, b = ({k: v for k, v in r.items() if v} for r in (a, b))
    if a.keys() != b.keys():
        return False
    for k in a:
        try:
            x, y = float(a[k]), float(b[k])
        except ValueError:
            if a[k] != b[k]:
                return False
            continue
        if not math.isclose(x, y, rel_tol=rel, abs_tol=1e-9):
            return False
    return True


def first_free(path: Path, pattern: str) -> Path:
    """The first of pattern.format(path.name, 1), (…, 2), … beside `path` that does not exist yet."""
    n = 1
    while path.with_name(pattern.format(path.name, n)).exists():
        n += 1
    return path.with_name(pattern.format(path.name, n))


def stage_files(stage: str, path: Path) -> list[tuple[str, Path]]:
    """(embedded part, exported file) for each file a run's export `path` replaces (SE: TM + SDE)."""
    return [(part, path if part == stage else path.parent / f"{part}.safetensors")
            for part in STAGE_PARTS.get(stage, (stage,))]


def install_run(runs_dir: Path, runs, name: str, stage: str, path: Path) -> None:
    """Put a run's export into the embedded set, then retire (rename to NAME.stale-N) the folders of
    runs whose labels or inputs come from that embedded stage (`frozen:` in their config), so that
    the next `start` begins them again from the new shipped weights."""
    from dynface.modelset.assemble import replace_stage
    from dynface.modelset.manifest import EMBEDDED_DIR, STAGE_FILES
    from dynface.training.loop import load_config

    files = stage_files(stage, path)
    for part, src in files:
        entry = replace_stage(EMBEDDED_DIR, part, src)
        print(f"installed {name} as embedded {part}: {entry['iters']} iterations, {entry.get('images', '?')} images")
    if stage == "rm" and (path.parent / "critic.safetensors").exists():  # the RM configs' warm critic
        keep_critic(name, path.parent / "critic.safetensors")
    used = {f"embedded:{STAGE_FILES[part]}" for part, _ in files}
    for r in runs:
        d = runs_dir / r["name"]
        frozen = (load_config(ROOT / r["config"]).get("frozen") or {}).values()
        if r["name"] != name and d.exists() and used & set(map(str, frozen)):
            stale = first_free(d, "{}.stale-{}")
            d.rename(stale)
            print(f"{r['name']}: its frozen {', '.join(sorted(used))} changed; moved its folder to "
                  f"{stale.name} (the next start begins it again)")


def keep_critic(name: str, src: Path) -> None:
    """Make a run's critic (its export's critic.safetensors) the warm critic that the RM configs
    start from (`gan: {init: campaign/warm/rm_critic.safetensors}`): on a new machine a run then
    restarts from the shipped RM beside a critic that has learnt against it, not from scratch.
    Taken at every RM install, or by `warm NAME` for a run that trained near the shipped weights."""
    from dynface.core.atomic import write_atomic

    WARM_CRITIC.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(WARM_CRITIC, lambda tmp: shutil.copyfile(src, tmp))
    print(f"kept {name}'s critic as {WARM_CRITIC}")


def run_export(runs_dir: Path, runs, name: str) -> Path:
    """A run's fp16 export: written afresh from its checkpoint, else the one the run left (a run
    trained elsewhere, e.g. on a lent GPU, and brought back without its checkpoint)."""
    from dynface.training.loop import export as export_run
    from dynface.training.loop import load_config

    r = next((r for r in runs if r["name"] == name), None)
    d = runs_dir / name
    if r is not None and (d / "ckpt.pt").exists():
        return export_run(r["kind"], load_config(ROOT / r["config"]), d)
    left = d / ("sde.safetensors" if r is not None and r["kind"] == "se" else "final.safetensors")
    if r is None or not left.exists():
        raise SystemExit(f"campaign: no run {name!r} with a checkpoint or an export in {runs_dir}")
    return left


def install_named(runs_dir: Path, runs, name: str) -> None:
    """`install NAME`: export one run and install it whatever its curve metric says (a decision taken
    on other evidence, e.g. the end-to-end bench; say why in docs/history/)."""
    path = run_export(runs_dir, runs, name)
    install_run(runs_dir, runs, name, next(r for r in runs if r["name"] == name)["stage"], path)


def bench(runs_dir: Path, runs, names, settings: str, limit, out_dir: Path, clean_dir: str,
          template: str | None = None) -> None:
    """The end-to-end evidence the curves cannot give: each named run's export dropped into a copy
    of the embedded model set, benched like the shipped set, tables side by side. `template`: the
    copies align faces to it (ffhq: runs trained at FFHQ framing restore the whole aligned crop)."""
    import tempfile

    from dynface.modelset.assemble import replace_stage
    from dynface.modelset.manifest import EMBEDDED_DIR

    by_name = {r["name"]: r for r in runs}
    wanted = dict.fromkeys(part for n in names for part in n.split("+"))
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        exports = {n: run_export(runs_dir, runs, n) for n in wanted}
        sets = {"shipped": EMBEDDED_DIR}
        for n in names:   # "a+b": the exports of runs a and b together in one copy (stages that depend on each other)
            sets[n] = Path(tmp) / n
            shutil.copytree(EMBEDDED_DIR, sets[n])
            for part_run in n.split("+"):
                for part, src in stage_files(by_name[part_run]["stage"], exports[part_run]):
                    replace_stage(sets[n], part, src)
            if template:
                manifest = json.loads((sets[n] / "manifest.json").read_text())
                (sets[n] / "manifest.json").write_text(json.dumps({**manifest, "template": template}, indent=1))
        for n, folder in sets.items():
            cmd = [sys.executable, "-m", "dynface.cli", "bench", clean_dir, "-o", str(out_dir / n), "--settings", settings,
                   "--weights-dir", str(folder), "-q"] + (["--limit", str(limit)] if limit else [])
            print(f"== {n}", flush=True)
            if subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).returncode:
                raise SystemExit(f"campaign: the bench of {n} failed")
    print(f"tables in {', '.join(str(out_dir / n / 'table.md') for n in sets)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["start", "status", "stop", "export", "install", "warm", "bench"])
    ap.add_argument("run", nargs="*", help="install, warm: the run; bench: the runs to bench; "
                                           "start, stop: only these runs (default: all)")
    ap.add_argument("--install", action="store_true", help="with export: replace embedded stages that got better")
    ap.add_argument("--settings", default="input,RM only,default,IDM", help="with bench: its rows")
    ap.add_argument("--limit", type=int, default=None, help="with bench: first N faces only")
    ap.add_argument("-o", "--output", default="campaign-bench", help="with bench: output folder")
    ap.add_argument("--clean-dir", default=str(ROOT.parent / "shared" / "data" / "val" / "clean"))
    ap.add_argument("--template", default=None, help="with bench: the alignment template of the runs' copies (e.g. ffhq)")
    ap.add_argument("--device", default="cpu", help="with start: cpu (default), cuda or cuda:N, for every run")
    ap.add_argument("--threads", type=int, default=None, help="with start: CPU threads per run (default: its own)")
    ap.add_argument("--wait", action="store_true",
                    help="with start: stay until every run that waits for its faces has started (run it with nohup)")
    ap.add_argument("--same-session", action="store_true",
                    help="with start: a restart within this working session (e.g. with other threads): log no new session")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    runs_dir, runs = load_runs()
    # configs name the synthetic folders through it: the runs started here, and the exports, benches
    # and installs that read those configs in this process (an export names its data by them)
    os.environ["DYNFACE_RUNS"] = str(runs_dir)
    if a.command == "install":
        if len(a.run) != 1:
            ap.error("install needs the name of one run")
        install_named(runs_dir, runs, a.run[0])
    elif a.command == "warm":
        if len(a.run) != 1:
            ap.error("warm needs the name of one run")
        critic = run_export(runs_dir, runs, a.run[0]).parent / "critic.safetensors"
        if not critic.exists():
            raise SystemExit(f"campaign: run {a.run[0]!r} trains no critic (no `gan:` in its config)")
        keep_critic(a.run[0], critic)
    elif a.command == "bench":
        bench(runs_dir, runs, a.run, a.settings, a.limit, Path(a.output), a.clean_dir, a.template)
    elif a.command == "export":
        export(runs_dir, runs, a.install)
    elif a.command in ("start", "stop"):
        chosen = select_runs(runs, a.run, a.command) if a.run else runs
        if a.command == "stop":
            stop(runs_dir, chosen, generators=not a.run)
        else:
            start_data(runs_dir, data_specs())
            (start_when_ready if a.wait else start)(runs_dir, chosen, a.device, a.threads, a.same_session)
    else:
        status(runs_dir, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
