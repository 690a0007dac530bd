"""`dynface serve`: the local web app (web/). Its flags are generated from `ServerConfig` (defaults written once),
each number checked against its range in `SERVE_RANGES` (shown in `--help`; a bad value is exit 2).

Uploads and results live in a private cache (mode 0700, under $GRADIO_TEMP_DIR or the system's
temp folder) made for this server alone and deleted when it stops, however it stops (Ctrl-C,
SIGTERM, SIGHUP or an error); `--cache-ttl-s` deletes older files while it runs.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import fields

from dynface.cli.flags import add_number, add_runtime_options
from dynface.web.jobs import ServerConfig

WEB_EXTRA_HINT = 'the web app needs the optional extra "web": pip install -e ".[web]" (Gradio)'
# ServerConfig field -> (type, low, high, low excluded): every numeric flag of `dynface serve`
SERVE_RANGES = {"port": (int, 1, 65535, False), "max_upload_mb": (float, 0.0, 1024.0, True),
                "max_pixels": (int, 64, 1_000_000_000, False), "max_files": (int, 1, 64, False),
                "max_steps": (int, 1, 1000, False), "queue_size": (int, 1, 10_000, False),
                "job_timeout_s": (float, 0.0, 86_400.0, True), "cache_ttl_s": (int, 60, 7 * 86_400, False)}


def register(sub) -> None:
    p = sub.add_parser("serve", help="local web app: upload photos, restore them, compare with a slider (Gradio)")
    for f in fields(ServerConfig):
        flag, text = "--" + f.name.replace("_", "-"), f"{f.metadata['help']} (default: {f.default})"
        if f.name in SERVE_RANGES:
            kind, lo, hi, lo_open = SERVE_RANGES[f.name]
            add_number(p, flag, dest=f.name, kind=kind, lo=lo, hi=hi, lo_open=lo_open, default=f.default, help=text)
        else:
            p.add_argument(flag, dest=f.name, type=type(f.default), default=f.default, help=text)
    p.add_argument("--weights-dir", default=None, help="model set folder (default: the embedded CPU models)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    add_runtime_options(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_serve)


def config_from_args(a) -> ServerConfig:
    """ServerConfig from parsed flags; CLIError (exit 2) in one line for a value out of its range
    (the parser already refuses them; this guards callers that build the namespace themselves)."""
    import math

    from dynface.cli.flags import CLIError, range_text

    cfg = ServerConfig(**{f.name: getattr(a, f.name) for f in fields(ServerConfig)})
    for name, (kind, lo, hi, lo_open) in SERVE_RANGES.items():
        v = getattr(cfg, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (
            (v > lo if lo_open else v >= lo) and v <= hi) and (kind is float or float(v) == int(v))
        if not ok:
            want = f"> {lo:g} and <= {hi:g}" if lo_open else range_text(lo, hi)
            raise CLIError(f"--{name.replace('_', '-')} must be {want}, got {v}")
    return cfg


@contextmanager
def private_cache():
    """A fresh 0700 folder for Gradio's uploads and results ($GRADIO_TEMP_DIR while inside), removed
    on the way out, whatever ends the server."""
    parent = os.environ.get("GRADIO_TEMP_DIR") or None
    if parent:
        os.makedirs(parent, exist_ok=True)
    root = tempfile.mkdtemp(prefix="dynface-serve-", dir=parent)  # mkdtemp: mode 0700
    os.chmod(root, 0o700)
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = root
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old


def cmd_serve(a) -> int:
    from dynface.core.hardware import set_threads
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    cfg = config_from_args(a)
    with private_cache():  # set before Gradio is imported: it reads $GRADIO_TEMP_DIR then
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
