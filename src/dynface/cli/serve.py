"""`dynface serve`: the local web app (web/). Its flags are generated from `ServerConfig` (defaults written once)."""
from __future__ import annotations

import sys
from dataclasses import fields

from dynface.cli.flags import add_runtime_options
from dynface.web.jobs import ServerConfig

WEB_EXTRA_HINT = 'the web app needs the optional extra "web": pip install -e ".[web]" (Gradio)'


def register(sub) -> None:
    p = sub.add_parser("serve", help="local web app: upload photos, restore them, compare with a slider (Gradio)")
    for f in fields(ServerConfig):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default), default=f.default,
                       help=f"{f.metadata['help']} (default: {f.default})")
    p.add_argument("--weights-dir", default=None, help="model set folder (default: the embedded CPU models)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    add_runtime_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_serve)


def config_from_args(a) -> ServerConfig:
    """ServerConfig from parsed flags; ValueError in one line for limits that make no sense."""
    cfg = ServerConfig(**{f.name: getattr(a, f.name) for f in fields(ServerConfig)})
    if not 0 < cfg.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {cfg.port}")
    for name in ("max_upload_mb", "max_pixels", "max_files", "max_steps", "queue_size", "job_timeout_s",
                 "cache_ttl_s"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    return cfg


def cmd_serve(a) -> int:
    from dynface.core.hardware import set_threads
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    cfg = config_from_args(a)
    try:
        from dynface.web.page import RestorePage
    except ImportError as e:
        if getattr(e, "name", None) and e.name.split(".")[0] == "gradio":
            raise ValueError(WEB_EXTRA_HINT) from None
        raise
    threads = set_threads(a.threads)
    models = ModelSet.load(a.weights_dir, device=a.device)
    base = RestoreOptions.for_models(models, precision=a.precision)  # every job sets its own steps
    print(f"model set {models.describe()}; {threads} thread(s), precision {a.precision}", file=sys.stderr)
    page = RestorePage(Restorer(models), base, cfg)
    print(f"dynface serve: http://{cfg.host}:{cfg.port} (Ctrl+C stops)", file=sys.stderr, flush=True)
    page.launch(quiet=a.quiet)
    return 0
