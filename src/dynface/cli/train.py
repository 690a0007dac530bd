"""`dynface train`: train one network from a config (resumable; training/)."""
from __future__ import annotations

from pathlib import Path

from dynface.cli.flags import THREADS_MAX, add_number
from dynface.training.config import KINDS


def register(sub) -> None:
    p = sub.add_parser("train", help="train one network from a config (resumable)")
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("--config", default=None, help="YAML config (default: the packaged one for KIND)")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--data", default=None, help="image folder to train on (e.g. a cleaned dataset)")
    add_number(p, "--iters", lo=1, default=None, help="total training iterations (default: the config's)")
    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads (default: the config's, else physical cores)")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default=None,
                   help="override the config's `precision` (auto: bf16 only where the CPU runs it natively)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N, mps or auto: where the networks train (batches are made on the CPU)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--export-only", action="store_true", help="export the run's checkpoint to safetensors and stop")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    from dynface.training.config import TrainConfig
    from dynface.training.distributed import launched, leave_process
    from dynface.training.loop import export, train

    cfg = TrainConfig.load(a.config or Path(__file__).parent.parent / "configs" / f"{a.kind}.yaml")
    if a.cache_dir:
        cfg = cfg.replace(cache_dir=a.cache_dir)
    run_dir = a.run_dir or cfg.default_run_dir(a.kind)
    if a.export_only:
        print(export(a.kind, cfg, run_dir))
        return 0
    if a.precision:
        cfg = cfg.replace(precision=a.precision)
    out = train(a.kind, cfg, run_dir=run_dir, resume=a.resume, data=a.data, iters=a.iters, threads=a.threads,
                progress=not a.quiet, device=a.device)
    if launched().main:  # under torchrun every rank returns the same path
        print(out)
    leave_process()  # under torchrun: exit now, before Python's shutdown can abort the rank
    return 0
