"""scripts/campaign.py export: a run is installed only where it beats the weights embedded now."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import load_script, rm_config, shipped_rm
from dynface.modelset import manifest as manifest_mod
from dynface.modelset.manifest import manifest_entry
from dynface.training.curves import append_row, read_curve
from dynface.training.loop import train



def campaign_module():
    return load_script("scripts/campaign.py")


def test_improvement_knows_which_way_each_metric_runs():
    c = campaign_module()
    assert c.improvement("psnr", 26.0, 26.5) == pytest.approx(0.5)
    assert c.improvement("sigma_abs_err", 0.30, 0.25) == pytest.approx(0.05)  # lower is better
    assert c.improvement("sigma_abs_err", 0.25, 0.30) < 0


def test_verdict_guards_and_control_arms():
    c = campaign_module()
    shipped, last = {"psnr": 26.6, "detail_ratio": 0.36}, {"psnr": 26.5, "detail_ratio": 0.73}
    sharper = {"metric": "detail_ratio", "guard": {"psnr": 0.15}}
    assert c.verdict(sharper, shipped, last)[1] is True
    assert c.verdict({**sharper, "guard": {"psnr": 0.05}}, shipped, last)[1] is False  # lost too much PSNR
    assert c.verdict({"metric": "psnr"}, shipped, last)[1] is False
    assert c.verdict({"metric": "detail_ratio", "candidate": False}, shipped, last)[1] is False


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """A one-stage embedded set (a tiny RM) that export may replace."""
    emb = tmp_path / "embedded"
    emb.mkdir()
    shutil.copyfile(shipped_rm(tmp_path), emb / "rm.safetensors")
    (emb / "manifest.json").write_text(json.dumps({"files": {"rm": manifest_entry(emb / "rm.safetensors")}}))
    monkeypatch.setattr(manifest_mod, "EMBEDDED_DIR", emb)
    return emb


def run_with_last_psnr(tmp_path, name: str, last_psnr: float | None, **extra) -> dict:
    """A 2-iteration run from the embedded RM (`extra`: more config keys); its curve's last row is
    then set to `last_psnr`."""
    cfg = {**rm_config(tmp_path, "embedded:rm.safetensors"), "iters": 2, "eval_every": 2,
           "init_from": {"path": "embedded:rm.safetensors"}, "cache_dir": str(tmp_path / "runs" / "cache"), **extra}
    cfg_path = tmp_path / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    d = tmp_path / "runs" / name
    train("rm", cfg, run_dir=d, progress=False)
    rows = read_curve(d / "curve.csv")
    row = {**rows[-1], "psnr": last_psnr if last_psnr is not None else rows[0]["psnr"]}
    append_row(d / "curve.csv", row)
    return {"name": name, "kind": "rm", "config": str(cfg_path), "stage": "rm", "metric": "psnr"}


def test_export_installs_only_a_run_that_beats_the_embedded_weights(tmp_path, embedded, monkeypatch):
    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    before = (embedded / "rm.safetensors").read_bytes()
    same = run_with_last_psnr(tmp_path, "same", None)   # no better than what ships
    c.export(tmp_path / "runs", [same], install=True)
    assert (embedded / "rm.safetensors").read_bytes() == before
    assert (tmp_path / "docs" / "same.csv").exists()

    better = run_with_last_psnr(tmp_path, "better", 99.0)
    (tmp_path / "dependent.yaml").write_text(yaml.safe_dump({"frozen": {"rm": "embedded:rm.safetensors"}}))
    (tmp_path / "runs" / "dependent").mkdir()
    dependent = {"name": "dependent", "kind": "se", "config": str(tmp_path / "dependent.yaml"), "stage": "se",
                 "metric": "sigma_abs_err"}  # no curve: not exported, but its labels came from the old RM
    c.export(tmp_path / "runs", [same, better, dependent], install=True)
    assert not (tmp_path / "runs" / "dependent").exists() and (tmp_path / "runs" / "dependent.stale-1").is_dir()
    assert (tmp_path / "runs" / "same").is_dir()  # an arm of the same stage is not retired
    assert (embedded / "rm.safetensors").read_bytes() == (tmp_path / "runs" / "better" / "final.safetensors").read_bytes()
    entry = json.loads((embedded / "manifest.json").read_text())["files"]["rm"]
    assert entry["iters"] == 102 and entry["images"] == 804  # cumulative: 100 shipped + 2 run iterations of 2


def test_a_run_that_starts_from_its_warm_weights_is_scored_against_the_embedded_ones(tmp_path, embedded):
    """A config whose init_from is the run's own warm file (refreshed by export before the scoring)
    is still compared with the stage's embedded weights, not with itself."""
    from dynface.training.curves import Validator
    from dynface.training.loop import build_trainable

    c = campaign_module()
    r = run_with_last_psnr(tmp_path, "warm", None)
    cfg = yaml.safe_load(Path(r["config"]).read_text())
    mine = {**cfg, "init_from": {"path": str(tmp_path / "runs" / "warm" / "final.safetensors")}}
    shipped = c.shipped_scores(r, mine, tmp_path / "runs")
    assert shipped == c.shipped_scores(r, cfg, tmp_path / "runs")
    own = Validator("rm", mine)(build_trainable("rm", mine))
    assert own["psnr"] != shipped["psnr"]


def test_installing_an_rm_keeps_its_critic_as_the_warm_critic(tmp_path, embedded, monkeypatch):
    c = campaign_module()
    monkeypatch.setattr(c, "WARM_CRITIC", tmp_path / "warm" / "rm_critic.safetensors")
    plain = run_with_last_psnr(tmp_path, "plain", 99.0)   # no critic: nothing to keep
    c.install_named(tmp_path / "runs", [plain], "plain")
    assert not c.WARM_CRITIC.exists()
    gan = run_with_last_psnr(tmp_path, "gan", 99.0, gan={"weight": 0.01, "channels": 8})
    c.install_named(tmp_path / "runs", [plain, gan], "gan")
    assert c.WARM_CRITIC.read_bytes() == (tmp_path / "runs" / "gan" / "critic.safetensors").read_bytes()


def test_export_does_not_pick_between_arms_better_on_different_metrics(tmp_path, embedded, monkeypatch, capsys):
    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    before = (embedded / "rm.safetensors").read_bytes()
    sharp = {**run_with_last_psnr(tmp_path, "sharp", 99.0), "metric": "detail_ratio"}
    d = tmp_path / "runs" / "sharp"
    rows = read_curve(d / "curve.csv")
    append_row(d / "curve.csv", {**rows[-1], "detail_ratio": rows[0]["detail_ratio"] + 1.0})
    better = run_with_last_psnr(tmp_path, "better", 99.0)
    c.export(tmp_path / "runs", [sharp, better], install=True)
    assert (embedded / "rm.safetensors").read_bytes() == before
    assert "on different metrics" in capsys.readouterr().out


def test_bench_puts_a_runs_export_into_a_copy_of_the_embedded_set(tmp_path, monkeypatch):
    """`campaign.py bench NAME`: the shipped set and the set with NAME's RM are benched alike; the
    RM-only rows differ (a different RM), the input rows do not, and the embedded set is untouched."""
    from conftest import smooth_image
    from tiny_models import make_tiny_modelset
    from dynface.core.imageio import to_uint8, write_image

    emb = make_tiny_modelset(tmp_path / "embedded")
    before = (emb / "manifest.json").read_bytes()
    monkeypatch.setattr(manifest_mod, "EMBEDDED_DIR", emb)
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(2):
        write_image(clean / f"c{i}.png", to_uint8(smooth_image(64, seed=10 + i)[0]))
    cfg = {**rm_config(tmp_path, "embedded:rm.safetensors"), "iters": 2, "eval_every": 0, "lr": 1e-2,
           "cache_dir": str(tmp_path / "runs" / "cache")}
    (tmp_path / "rm_a.yaml").write_text(yaml.safe_dump(cfg))
    train("rm", cfg, run_dir=tmp_path / "runs" / "rm_a", progress=False)
    run = {"name": "rm_a", "kind": "rm", "config": str(tmp_path / "rm_a.yaml"), "stage": "rm", "metric": "psnr"}
    c = campaign_module()
    c.bench(tmp_path / "runs", [run], ["rm_a"], "input,RM only", None, tmp_path / "out", str(clean))
    res = {n: json.loads((tmp_path / "out" / n / "results.json").read_text()) for n in ("shipped", "rm_a")}
    rows = {n: {r["setting"]: r for r in v["rows"]} for n, v in res.items()}
    assert rows["shipped"]["input"]["psnr"] == rows["rm_a"]["input"]["psnr"]
    assert rows["shipped"]["RM only"]["psnr"] != rows["rm_a"]["RM only"]["psnr"]
    assert (emb / "manifest.json").read_bytes() == before
    with pytest.raises(SystemExit, match="no run 'nope' with a checkpoint or an export"):
        c.bench(tmp_path / "runs", [run], ["nope"], "input", None, tmp_path / "out", str(clean))
    with pytest.raises(SystemExit, match="no run 'nope'"):   # every run of a "+" set must exist
        c.bench(tmp_path / "runs", [run], ["rm_a+nope"], "input", None, tmp_path / "out", str(clean))


def test_recent_slope_reads_a_rising_line_and_a_plateau():
    c = campaign_module()
    rising = [{"step": s, "psnr": 26.0 + 0.0003 * s} for s in range(0, 3001, 100)]
    assert c.recent_slope(rising, "psnr") == pytest.approx(0.3)
    flat = [{"step": s, "psnr": 27.0 + (0.01 if s % 200 else -0.01)} for s in range(0, 3001, 100)]
    assert abs(c.recent_slope(flat, "psnr")) < 0.02
    assert c.recent_slope(rising[:2], "psnr") is None


def test_session_gains_split_the_curve_at_each_logged_start(tmp_path):
    c = campaign_module()
    rows = [{"step": s, "sigma_abs_err": 0.6 - 0.0001 * min(s, 2000)} for s in range(1000, 3001, 100)]
    assert c.session_gains(tmp_path, rows, "sigma_abs_err") == []  # no sessions.csv yet
    with open(tmp_path / "curve.csv", "w") as f:
        f.write("step,sigma_abs_err\n" + "".join(f"{int(r['step'])},{r['sigma_abs_err']}\n" for r in rows[:11]))
    c.log_session(tmp_path, {})                                     # starts at the curve's last row: 2000
    (tmp_path / "sessions.csv").write_text((tmp_path / "sessions.csv").read_text()
                                           .replace("started,step,cpu\n", "started,step,cpu\nbackfilled,1000,x\n"))
    gains = c.session_gains(tmp_path, rows, "sigma_abs_err")
    assert [(a, b) for a, b, _ in gains] == [(1000, 2000), (2000, 3000)]
    assert gains[0][2] == pytest.approx(0.1) and gains[1][2] == pytest.approx(0.0)  # lower error = a gain; then a plateau


def test_a_fresh_run_logs_its_session_at_the_iterations_it_starts_from(tmp_path):
    c = campaign_module()
    cfg_path = tmp_path / "rm.yaml"
    cfg_path.write_text(yaml.safe_dump({**rm_config(tmp_path, shipped_rm(tmp_path)),
                                        "init_from": {"path": str(shipped_rm(tmp_path))}}))
    (tmp_path / "run").mkdir()
    c.log_session(tmp_path / "run", {"kind": "rm", "config": str(cfg_path)})  # no curve yet
    assert c.session_starts(tmp_path / "run") == [100]  # the shipped RM's 100 iterations


def test_start_trains_in_the_background_and_stop_waits_for_its_checkpoint(tmp_path):
    """`start` launches `dynface train` detached (on the device asked for) and logs a working session;
    `stop` returns only once the run has checkpointed and exited, so that `export` reads its last
    iteration; `start --same-session` resumes it without logging another session."""
    import time

    from dynface.modelset.weights import load_torch_file

    c = campaign_module()
    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "iters": 1_000_000, "ckpt_every": 1_000_000,
           "eval_every": 0, "cache_dir": str(tmp_path / "runs" / "cache")}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    runs = [{"name": "tiny", "kind": "rm", "config": str(tmp_path / "tiny.yaml"), "threads": 1}]
    run = tmp_path / "runs" / "tiny"
    c.start(tmp_path / "runs", runs, device="cpu")
    try:
        end = time.time() + 600  # a loaded machine (training runs beside the tests) starts it slowly
        while time.time() < end and not ((run / "log.csv").exists() and len((run / "log.csv").read_text().splitlines()) > 3):
            time.sleep(0.5)
        assert c.pid_alive(run) and (run / "log.csv").exists(), (run / "train.log").read_text()
        c.start(tmp_path / "runs", runs)  # already running: not started twice
    finally:
        c.stop(tmp_path / "runs", runs, timeout=120)
    assert c.pid_alive(run) is None
    ck = load_torch_file(run / "ckpt.pt")  # written on SIGTERM (ckpt_every is never reached)
    assert ck["step"] >= 3 and len((run / "log.csv").read_text().splitlines()) == ck["step"] + 1
    assert len((run / "sessions.csv").read_text().splitlines()) == 2  # header + this session
    c.start(tmp_path / "runs", runs, same_session=True)  # a restart within the session: resumed, no new row
    try:
        assert "--resume" in Path(f"/proc/{c.pid_alive(run)}/cmdline").read_text().split("\0")
    finally:
        c.stop(tmp_path / "runs", runs, timeout=120)
    assert len((run / "sessions.csv").read_text().splitlines()) == 2


def test_a_run_brought_back_without_its_checkpoint_is_benched_and_installed_from_its_export(tmp_path):
    c = campaign_module()
    runs = [{"name": "gpu_rm", "kind": "rm", "config": "campaign/rm_sharp.yaml", "stage": "rm"},
            {"name": "gpu_se", "kind": "se", "config": "campaign/se_refit.yaml", "stage": "se"}]
    with pytest.raises(SystemExit, match="no run 'gpu_rm' with a checkpoint or an export"):
        c.run_export(tmp_path, runs, "gpu_rm")
    (tmp_path / "gpu_rm").mkdir()
    shutil.copyfile(shipped_rm(tmp_path), tmp_path / "gpu_rm" / "final.safetensors")
    assert c.run_export(tmp_path, runs, "gpu_rm") == tmp_path / "gpu_rm" / "final.safetensors"
    (tmp_path / "gpu_se").mkdir()
    (tmp_path / "gpu_se" / "sde.safetensors").write_bytes(b"")  # SE exports TM + SDE; the SDE file names the pair
    assert c.run_export(tmp_path, runs, "gpu_se") == tmp_path / "gpu_se" / "sde.safetensors"
    with pytest.raises(SystemExit, match="no run 'nothing'"):
        c.run_export(tmp_path, runs, "nothing")


def test_documented_curve_keeps_earlier_machines_rows_and_sets_a_lost_branch_apart(tmp_path):
    """A new machine starts a run again from the shipped weights (iteration 300 here): the docs keep
    the rows before it, the rows of the branch lost with the old machine go to NAME.lost-1.csv,
    and later exports of the same run add nothing more there."""
    c = campaign_module()
    doc, run = tmp_path / "docs" / "rm.csv", tmp_path / "run" / "curve.csv"
    doc.parent.mkdir()
    run.parent.mkdir()
    for step in (100, 200, 300, 400, 500):  # the old machine's curve: 400 and 500 came after 300
        append_row(doc, {"step": step, "psnr": 25.0 + step / 1000})
    append_row(run, {"step": 300, "psnr": 25.3})
    append_row(run, {"step": 350, "psnr": 25.31, "niqe": 9.0})  # a metric the old curve lacked
    lost = c.document_curve(run, doc)
    assert lost == doc.with_name("rm.lost-1.csv")
    assert [r["step"] for r in read_curve(lost)] == [300, 400, 500]
    rows = read_curve(doc)
    assert [r["step"] for r in rows] == [100, 200, 300, 350] and rows[-1]["niqe"] == 9.0 and "niqe" not in rows[0]
    append_row(run, {"step": 400, "psnr": 25.32, "niqe": 8.9})
    assert c.document_curve(run, doc) is None  # the docs now hold this run: nothing is lost
    assert [r["step"] for r in read_curve(doc)] == [100, 200, 300, 350, 400]
    assert not doc.with_name("rm.lost-2.csv").exists()
    fresh = tmp_path / "fresh.csv"
    assert c.document_curve(run, fresh) is None and read_curve(fresh) == read_curve(run)


def test_a_run_resumed_from_its_warm_file_continues_its_documented_curve(tmp_path):
    """A new machine resumes a run from its fp16 warm file at the documented curve's last step: the
    first row it measures there is a few 1e-5 away from the documented one, the same point, so
    nothing is set apart as a lost branch; a row that really differs is."""
    c = campaign_module()
    doc, run = tmp_path / "docs" / "idm.csv", tmp_path / "run" / "curve.csv"
    doc.parent.mkdir()
    run.parent.mkdir()
    for step, v in ((12000, 24.34951), (12250, 24.24138)):
        append_row(doc, {"step": step, "sample10_psnr": v})
    append_row(run, {"step": 12250, "sample10_psnr": 24.24211})
    append_row(run, {"step": 12500, "sample10_psnr": 24.18484})
    assert c.document_curve(run, doc) is None
    assert [r["step"] for r in read_curve(doc)] == [12000, 12250, 12500]
    assert c.same_row({"step": "1", "psnr": "24.2"}, {"step": "1", "psnr": "24.3"}) is False
    assert c.same_row({"step": "1", "psnr": "24.2"}, {"step": "1", "psnr": "24.2", "niqe": "7"}) is False
    assert c.same_row({"step": "1", "name": "a"}, {"step": "1", "name": "b"}) is False


def test_export_draws_every_documented_arm_of_a_stage(tmp_path, embedded, monkeypatch):
    """The comparison plot takes the documented curves, so an arm whose run folder another machine
    held (only docs/training/NAME.csv left) stays on it beside the runs of this machine."""
    from dynface.training import curves as curves_mod

    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    drawn = {}
    real = curves_mod.plot_compare
    monkeypatch.setattr(curves_mod, "plot_compare", lambda cs, png, *a, **k: drawn.update({Path(png).name: cs})
                        or real(cs, png, *a, **k))
    (tmp_path / "docs").mkdir()
    append_row(tmp_path / "docs" / "old.csv", {"step": 50, "psnr": 20.0})
    append_row(tmp_path / "docs" / "old.csv", {"step": 90, "psnr": 21.0})
    run = run_with_last_psnr(tmp_path, "new", None)
    old = {"name": "old", "kind": "rm", "config": run["config"], "stage": "rm", "metric": "psnr"}
    c.export(tmp_path / "runs", [old, run], install=False)
    assert list(drawn["rm_compare.png"]) == ["old", "new"]
    assert (tmp_path / "docs" / "rm_compare.png").exists()


def test_a_fork_continues_its_source_bit_for_bit(tmp_path):
    """runs.yaml `fork: NAME`: the branch starts from a copy of NAME's checkpoint and curve, so with
    the same config it trains exactly what NAME would have (weights, EMA, batches); a source without
    a checkpoint is refused."""
    from dynface.modelset.weights import load_torch_file

    c = campaign_module()
    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "eval_every": 2}
    src, dst = tmp_path / "runs" / "src", tmp_path / "runs" / "branch"
    dst.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="no checkpoint"):
        c.fork(src, dst)
    train("rm", cfg, run_dir=src, iters=2, progress=False)
    c.fork(src, dst)
    assert read_curve(dst / "curve.csv") == read_curve(src / "curve.csv")
    train("rm", cfg, run_dir=src, resume=True, progress=False)
    train("rm", cfg, run_dir=dst, resume=True, progress=False)
    a, b = load_torch_file(src / "ckpt.pt"), load_torch_file(dst / "ckpt.pt")
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert [r["step"] for r in read_curve(dst / "curve.csv")] == [100, 102, 104]


def test_export_of_a_control_arm_scores_nothing_and_installs_nothing(tmp_path, embedded, monkeypatch, capsys):
    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(c, "shipped_scores", lambda *a: pytest.fail("a control arm is never scored"))
    before = (embedded / "rm.safetensors").read_bytes()
    arm = {**run_with_last_psnr(tmp_path, "control", 99.0), "candidate": False}
    c.export(tmp_path / "runs", [arm], install=True)
    assert (embedded / "rm.safetensors").read_bytes() == before
    assert (tmp_path / "docs" / "control.csv").exists() and "(its first row) -> 99.0000" in capsys.readouterr().out


def no_processes(campaign, monkeypatch) -> list:
    """Stand in for the processes `start` would launch (pid 4242): the list of their command lines."""
    started = []

    class FakeProcess:
        pid = 4242

        def __init__(self, cmd, **kw):
            started.append(cmd)

    monkeypatch.setattr(campaign.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(campaign, "lower_autogroup", lambda pid, nice=None: None)
    return started


def test_start_forks_a_branch_before_its_source_resumes_whatever_their_order(tmp_path, monkeypatch):
    """A branch listed after its source still gets the source's checkpoint: forks are made before
    any run starts (a started source would refuse the fork)."""
    campaign = campaign_module()
    started = no_processes(campaign, monkeypatch)
    monkeypatch.setattr(campaign, "log_session", lambda d, r: None)
    alive = set()  # run folders whose (fake) process was started
    monkeypatch.setattr(campaign, "pid_alive", lambda d: 4242 if Path(d) in alive else None)
    real_popen = campaign.subprocess.Popen

    def popen(cmd, **kw):
        alive.add(Path(cmd[cmd.index("--run-dir") + 1]))
        return real_popen(cmd, **kw)

    monkeypatch.setattr(campaign.subprocess, "Popen", popen)
    cfg = rm_config(tmp_path, shipped_rm(tmp_path))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    src = tmp_path / "runs" / "src"
    src.mkdir(parents=True)
    (src / "ckpt.pt").write_bytes(b"checkpoint")
    (src / "curve.csv").write_text("step,psnr\n10,20.0\n")
    runs = [{"name": "src", "kind": "rm", "config": str(tmp_path / "tiny.yaml")},
            {"name": "branch", "kind": "rm", "config": str(tmp_path / "tiny.yaml"), "fork": "src"}]
    campaign.start(tmp_path / "runs", runs, specs=[])
    branch = tmp_path / "runs" / "branch"
    assert (branch / "ckpt.pt").read_bytes() == b"checkpoint" and (branch / "curve.csv").exists()
    assert len(started) == 2 and all("--resume" in cmd for cmd in started)


def test_start_makes_only_the_active_unfinished_face_folders(tmp_path, monkeypatch, capsys):
    campaign = campaign_module()
    started = no_processes(campaign, monkeypatch)
    done = tmp_path / "data" / "done"
    done.mkdir(parents=True)
    (done / "faces.csv").write_text("index,file\n0,face_000000.png\n1,face_000001.png\n")
    campaign.start_data(tmp_path, [{"name": "paused", "num": 8, "size": 128, "active": False},
                                   {"name": "done", "num": 2, "size": 128},
                                   {"name": "todo", "num": 8, "size": 128, "seed": 5}])
    assert len(started) == 1
    assert f"synth -n 8 -o {tmp_path / 'data' / 'todo'} --size 128 --seed 5 --truncation 0.7" in " ".join(started[0])
    assert (tmp_path / "data" / "todo.pid").read_text() == "4242" and not (tmp_path / "data" / "paused.pid").exists()
    assert "making faces 0..7" in capsys.readouterr().out


def run_reading_faces(tmp_path, monkeypatch):
    """`start` with no processes, no running runs and no session log, and one RM run "tiny" that
    reads the synthetic folder runs/data/faces (made, empty): (campaign, started, faces, runs)."""
    campaign = campaign_module()
    started = no_processes(campaign, monkeypatch)
    monkeypatch.setattr(campaign, "log_session", lambda d, r: None)
    monkeypatch.setattr(campaign, "pid_alive", lambda d: None)
    monkeypatch.setenv("DYNFACE_RUNS", str(tmp_path / "runs"))  # as `main` sets it to the runs_dir
    faces = tmp_path / "runs" / "data" / "faces"
    faces.mkdir(parents=True)
    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "data": "$DYNFACE_RUNS/data/faces"}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return campaign, started, faces, [{"name": "tiny", "kind": "rm", "config": str(tmp_path / "tiny.yaml")}]


def test_a_fresh_run_waits_for_the_faces_it_reads_and_a_resumed_one_does_not(tmp_path, monkeypatch, capsys):
    campaign, started, faces, runs = run_reading_faces(tmp_path, monkeypatch)
    for i in range(3):
        (faces / f"face_{i:06d}.png").write_bytes(b"x")
    specs = [{"name": "faces", "num": 10, "size": 128, "min_faces": 4}]
    campaign.start(tmp_path / "runs", runs, specs=specs)
    assert not started and "tiny: waits, faces holds 3 of the 4 faces it needs first" in capsys.readouterr().out
    campaign.start(tmp_path / "runs", runs, specs=[{**specs[0], "num": 4, "min_faces": 4}])
    assert not started  # 3 of 4 made, none rejected yet: waits
    (faces / "faces.csv").write_text("index,file\n" + "".join(f"{i},face_{i:06d}.png\n" for i in range(4)))
    campaign.start(tmp_path / "runs", runs, specs=[{**specs[0], "num": 4, "min_faces": 4}])
    assert len(started) == 1  # complete (the 4th face rejected by the check): it never blocks
    started.clear()
    (faces / "faces.csv").unlink()
    (faces / "face_000003.png").write_bytes(b"x")
    campaign.start(tmp_path / "runs", runs, specs=specs)
    assert len(started) == 1 and "--resume" not in started[0]
    started.clear()
    (faces / "face_000003.png").unlink()
    (tmp_path / "runs" / "tiny" / "ckpt.pt").write_bytes(b"")  # a run under way goes on with what there is
    campaign.start(tmp_path / "runs", runs, specs=specs)
    assert len(started) == 1 and "--resume" in started[0]


def test_start_wait_starts_a_waiting_run_once_its_faces_are_made(tmp_path, monkeypatch, capsys):
    campaign, started, faces, runs = run_reading_faces(tmp_path, monkeypatch)
    specs = [{"name": "faces", "num": 10, "size": 128, "min_faces": 2},
             {"name": "other", "num": 10, "size": 128, "min_faces": 2}]  # a folder tiny does not read
    looks = []

    def generator_makes_a_face(seconds):  # stands in for the wait: one more face each time
        looks.append(seconds)
        assert not started, "started before its faces were there"
        (faces / f"face_{len(looks):06d}.png").write_bytes(b"x")

    generators = [tmp_path / "runs" / "data" / "other.pid"]  # making faces tiny does not read
    monkeypatch.setattr(campaign, "pid_alive_dir_file", lambda f: 99 if f in generators else None)
    campaign.start_when_ready(tmp_path / "runs", runs, specs=specs, poll_s=7.0, sleep=generator_makes_a_face)
    assert not looks and not started  # no generator makes its faces: it does not wait for ever
    assert "no generator makes faces, so tiny would wait for ever" in capsys.readouterr().out
    generators.append(tmp_path / "runs" / "data" / "faces.pid")
    campaign.start_when_ready(tmp_path / "runs", runs, specs=specs, poll_s=7.0, sleep=generator_makes_a_face)
    assert looks == [7.0, 7.0] and len(started) == 1 and "--resume" not in started[0]
    out = capsys.readouterr().out
    assert out.count("tiny: waits") == 1 and "tiny: started" in out


def test_export_refreshes_the_warm_weights_a_run_keeps_in_the_repository(tmp_path, embedded, monkeypatch, capsys):
    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(c, "WARM_DIR", tmp_path / "warm")
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "kept.safetensors").write_bytes(b"an older export")
    (tmp_path / "warm" / "retired.safetensors").write_bytes(b"where it stopped")
    runs = [{**run_with_last_psnr(tmp_path, name, 99.0), "candidate": False} for name in ("kept", "other", "retired")]
    runs[2]["active"] = False
    c.export(tmp_path / "runs", runs, install=False)
    assert (tmp_path / "warm" / "kept.safetensors").read_bytes() == (tmp_path / "runs" / "kept" / "final.safetensors").read_bytes()
    assert not (tmp_path / "warm" / "other.safetensors").exists()  # only a run that keeps warm weights
    assert (tmp_path / "warm" / "retired.safetensors").read_bytes() == b"where it stopped"  # and still trains
    assert "kept: " in capsys.readouterr().out


def test_bench_aligns_the_runs_copies_to_the_template_asked_for(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tiny_models import make_tiny_modelset

    emb = make_tiny_modelset(tmp_path / "embedded")
    shipped_template = json.loads((emb / "manifest.json").read_text())["template"]
    monkeypatch.setattr(manifest_mod, "EMBEDDED_DIR", emb)
    cfg = {**rm_config(tmp_path, "embedded:rm.safetensors"), "iters": 1, "eval_every": 0,
           "cache_dir": str(tmp_path / "runs" / "cache")}
    (tmp_path / "rm_a.yaml").write_text(yaml.safe_dump(cfg))
    train("rm", cfg, run_dir=tmp_path / "runs" / "rm_a", progress=False)
    run = {"name": "rm_a", "kind": "rm", "config": str(tmp_path / "rm_a.yaml"), "stage": "rm", "metric": "psnr"}
    c = campaign_module()
    seen = {}

    def fake_run(cmd, **kw):  # what each benched set's manifest says when its bench runs
        folder = Path(cmd[cmd.index("--weights-dir") + 1])
        seen[cmd[cmd.index("-o") + 1]] = json.loads((folder / "manifest.json").read_text())["template"]
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(c.subprocess, "run", fake_run)
    c.bench(tmp_path / "runs", [run], ["rm_a"], "RM only", None, tmp_path / "out", "clean", template="ffhq")
    assert shipped_template != "ffhq"
    assert seen == {str(tmp_path / "out" / "shipped"): shipped_template, str(tmp_path / "out" / "rm_a"): "ffhq"}


def test_export_refreshes_a_warm_critic_beside_the_warm_weights(tmp_path, embedded, monkeypatch):
    c = campaign_module()
    monkeypatch.setattr(c, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(c, "WARM_DIR", tmp_path / "warm")
    monkeypatch.setattr(c, "WARM_CRITIC", tmp_path / "warm" / "rm_critic.safetensors")
    (tmp_path / "warm").mkdir()
    for f in ("gan.safetensors", "gan_critic.safetensors"):
        (tmp_path / "warm" / f).write_bytes(b"an older export")
    run = {**run_with_last_psnr(tmp_path, "gan", 99.0, gan={"weight": 0.01, "channels": 8}), "candidate": False}
    c.export(tmp_path / "runs", [run], install=False)
    assert (tmp_path / "warm" / "gan_critic.safetensors").read_bytes() == \
        (tmp_path / "runs" / "gan" / "critic.safetensors").read_bytes()
    assert not c.WARM_CRITIC.exists()  # the RM configs' warm critic changes only when an RM is installed


def test_start_and_stop_act_only_on_the_runs_named(tmp_path, monkeypatch):
    """`start NAME` launches only that run (e.g. on both cores while the others wait) and refuses a
    paused or unknown one; `stop NAME` stops only that run and leaves the face generators going."""
    campaign = campaign_module()
    started = no_processes(campaign, monkeypatch)
    monkeypatch.setattr(campaign, "log_session", lambda d, r: None)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(rm_config(tmp_path, shipped_rm(tmp_path))))
    runs = [{"name": n, "kind": "rm", "config": str(tmp_path / "tiny.yaml"), "threads": 1, "active": n != "c"}
            for n in ("a", "b", "c")]
    runs_yaml = tmp_path / "runs.yaml"
    runs_yaml.write_text(yaml.safe_dump({"runs_dir": str(tmp_path / "runs"), "runs": runs, "data": []}))
    monkeypatch.setattr(campaign, "RUNS_YAML", runs_yaml)
    monkeypatch.setenv("DYNFACE_RUNS", str(tmp_path / "runs"))

    campaign.main(["start", "b", "--threads", "2", "--same-session"])
    assert len(started) == 1
    cmd = started[0]
    assert cmd[cmd.index("--run-dir") + 1] == str(tmp_path / "runs" / "b") and cmd[cmd.index("--threads") + 1] == "2"
    with pytest.raises(SystemExit, match="c is paused"):
        campaign.main(["start", "c"])
    with pytest.raises(SystemExit, match="no run named zz"):
        campaign.main(["stop", "zz"])

    alive = {tmp_path / "runs" / "a": 101, tmp_path / "runs" / "b": 102}
    killed = []
    monkeypatch.setattr(campaign, "pid_alive", lambda d: alive.get(Path(d)))
    monkeypatch.setattr(campaign, "data_specs", lambda: [{"name": "synth"}])
    monkeypatch.setattr(campaign, "data_pidfile", lambda runs_dir, d: tmp_path / "synth.pid")
    monkeypatch.setattr(campaign, "pid_alive_dir_file", lambda f: 103)  # a face generator at work
    monkeypatch.setattr(campaign.os, "getpgid", lambda pid: pid)

    def killpg(pgid, sig):
        killed.append(pgid)
        alive.pop(next((d for d, p in alive.items() if p == pgid), None), None)

    monkeypatch.setattr(campaign.os, "killpg", killpg)
    campaign.main(["stop", "b"])
    assert killed == [102] and tmp_path / "runs" / "a" in alive
    campaign.main(["stop"])
    assert killed == [102, 103, 101]


def test_every_run_in_runs_yaml_names_a_config_of_its_kind():
    from dynface.training.config import TrainConfig
    from dynface.training.loop import load_config

    campaign = campaign_module()
    _, runs = campaign.load_runs()
    names = [r["name"] for r in runs]
    assert len(names) == len(set(names)), "run names repeat"
    for r in runs:
        cfg = load_config(campaign.ROOT / r["config"])
        assert cfg["kind"] == r["kind"], r["name"]
        TrainConfig.of(cfg).check_complete()
        assert not r.get("fork") or r["fork"] in names, r["name"]
