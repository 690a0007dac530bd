"""`dynface` command line: parses arguments and calls the library; errors are one line, exit != 0."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_args import (IMAGE_SIDE_MAX, SEED_MAX, STEPS_MAX, T_MAX, THREADS_MAX, OneLineParser, add_max_pixels,
                       add_number)

EXIT_USAGE, EXIT_FAILED = 2, 1


class CLIError(Exception):
    pass


def _bool_flag(p, name: str, default: bool, help: str):
    p.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, default=default,
                   help=help)


def add_restore_options(p) -> None:
    p.add_argument("--method", choices=["dynface", "rm", "bicubic", "idm"], default="dynface",
                   help="dynface: full DynFaceRestore; rm: restoration network only; idm: IDM conditional diffusion")
    p.add_argument("--weights-dir", default=None, help="model set folder (default: the embedded CPU models)")
    add_number(p, "--steps", lo=1, hi=STEPS_MAX, default=None,
               help="network evaluations from the start step (default: model set's)")
    p.add_argument("--n-guidance", type=int, default=None, choices=[1, 2, 3, 4], help="number of guidance images (Eq. 15)")
    add_number(p, "--guidance-scale", "--zeta", dest="zeta", kind=float, lo=0.0, hi=100.0, default=None,
               help="zeta of Eq. 5")
    add_number(p, "--sigma-lr", kind=float, lo=0.0, hi=100.0, default=None, help="eta of Eq. 7 (kernel refinement step)")
    add_number(p, "--eta", kind=float, lo=0.0, hi=1.0, default=1.0, help="1 = ancestral DDPM steps (Eq. 6), 0 = DDIM")
    add_number(p, "--guide-every", lo=1, hi=STEPS_MAX, default=1, help="guide every k-th step only")
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0)
    _bool_flag(p, "dblm", True, "Dynamic Blur-Level Mapping (off = DM only: guide with the raw input)")
    _bool_flag(p, "dsst", True, "Dynamic start step (off = --fixed-start)")
    add_number(p, "--fixed-start", lo=0, hi=T_MAX, default=T_MAX, help="start step when --no-dsst")
    _bool_flag(p, "dgsa", True, "learned per-pixel guidance scale (off = M = 1)")
    _bool_flag(p, "refine", True, "kernel refinement of Eq. 7")
    _bool_flag(p, "channels-last", False, "channels_last (NHWC) memory layout for every network")
    from .fidelity import FIDELITY_DEFAULT

    add_number(p, "--fidelity", kind=float, lo=0.0, hi=1.0, default=None, metavar="W",
               help="1 = closest to the restoration network's output, 0 = most freedom for the prior "
                    f"(default: the method's own setting, {FIDELITY_DEFAULT:g}; docs/fidelity.md)")
    add_number(p, "--samples", lo=1, hi=64, default=1, metavar="K",
               help="draw K posterior samples in one batch and write their mean and per-pixel std heat map "
                    "to uncertainty/ (default 1: no map)")


def add_runtime_options(p) -> None:
    """--threads and --precision (with the old --bf16/--no-bf16 as hidden aliases), for every command that runs networks."""
    from .hardware import PRECISION_CHOICES

    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads (default: the physical cores this process may use; see `dynface info`)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="autocast precision of every network; auto (default): bf16 only where the CPU/GPU runs it "
                        "natively (avx512_bf16/amx_bf16 or a bf16 CUDA device), else fp32")
    p.add_argument("--bf16", dest="precision", action="store_const", const="bf16", help=argparse.SUPPRESS)
    p.add_argument("--no-bf16", dest="precision", action="store_const", const="fp32", help=argparse.SUPPRESS)


def add_engine_options(p) -> None:
    """--engine local|ray, --address, --workers: where a folder job runs (engines/ray_engine.py)."""
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: files spread over a Ray cluster (pip install 'dynface[ray]')")
    p.add_argument("--address", default=None,
                   help="with --engine ray: an existing cluster (e.g. 10.0.0.1:6379 or auto); default: start a "
                        "local Ray runtime on 127.0.0.1")
    add_number(p, "--workers", lo=1, hi=4096, default=None,
               help="with --engine ray: model-loading actors (default: 1 locally, the cluster's CPUs / --threads "
                    "with --address); --threads is then the threads of each")


def engine_workers(a) -> int | None:
    """--workers with --engine ray only; None means "as many as the cluster allows" (only with --address)."""
    if a.engine != "ray" and (a.workers is not None or a.address):
        raise CLIError("--workers and --address need --engine ray")
    return a.workers if a.workers is not None or a.address else 1


def options_from_args(a, models):
    from .fidelity import check_fidelity
    from .pipeline import RestoreOptions
    from .uncertainty import check_samples

    return RestoreOptions(method=a.method, steps=a.steps if a.steps is not None else int(models.default("steps", 25)),
                          n_guidance=a.n_guidance if a.n_guidance is not None else int(models.default("n_guidance", 3)),
                          zeta=a.zeta, sigma_lr=a.sigma_lr, eta=a.eta, seed=a.seed, dblm=a.dblm, dsst=a.dsst,
                          fixed_start=a.fixed_start, dgsa=a.dgsa, refine=a.refine, guide_every=a.guide_every,
                          precision=a.precision, channels_last=a.channels_last,
                          fidelity=None if a.fidelity is None else check_fidelity(a.fidelity),
                          samples=check_samples(a.samples))


def cmd_restore(a) -> int:
    import torch

    from .batch import restore_paths
    from .pipeline import ModelSet, Restorer

    inputs = list(a.inputs) + ([a.input] if a.input else [])
    if not inputs:
        raise CLIError("no input: give image files or folders (positional or -i PATH)")
    from .batch import list_inputs

    list_inputs(inputs)  # a missing input or an empty folder fails before any model is loaded
    from .hardware import set_threads

    set_threads(a.threads)
    if a.preset != "embedded":
        from .official import load_official_modelset

        models = load_official_modelset(a.preset, a.weights_dir, device=a.device,
                                        prior=a.method == "dynface")  # rm/bicubic never sample
    else:
        models = ModelSet.load(a.weights_dir, device=a.device)
    print(f"model set {models.describe()}", file=sys.stderr)
    if models.manifest.get("note"):
        print(f"note: {models.manifest['note']}", file=sys.stderr)
    opt = options_from_args(a, models)
    workers = engine_workers(a)
    if a.engine == "ray":
        from .engines.ray_engine import restore_paths_ray

        if a.preset != "embedded" or models.device.type != "cpu":
            raise CLIError("--engine ray runs the embedded/--weights-dir model sets on CPUs only")
        rep = restore_paths_ray(inputs, a.output, a.weights_dir, opt, address=a.address, workers=workers,
                                threads=a.threads or 1, progress=not a.quiet, aligned=a.aligned, framing=a.framing,
                                only_center_face=a.only_center_face, upscale=a.upscale, suffix=a.suffix, ext=a.ext,
                                draw_box=a.draw_box)
        if rep.skipped:
            print(f"skipped {rep.skipped} file(s) already done", file=sys.stderr)
        return _finish(rep, a.output, "restored")
    rep = restore_paths(inputs, a.output, Restorer(models), opt, aligned=a.aligned, framing=a.framing,
                        only_center_face=a.only_center_face, upscale=a.upscale, suffix=a.suffix, ext=a.ext,
                        draw_box=a.draw_box, progress=not a.quiet)
    return _finish(rep, a.output, "restored")


def cmd_degrade(a) -> int:
    from .batch import degrade_paths
    from .degradation import DegradationConfig

    cfg = DegradationConfig()
    if a.config:
        cfg = DegradationConfig.from_file(a.config)
    if a.pixel_scale != 1.0:
        cfg = cfg.scaled(a.pixel_scale)
    rep = degrade_paths(a.inputs, a.output, cfg, a.seed, a.size, progress=not a.quiet)
    return _finish(rep, a.output, "degraded")


def _finish(rep, out, verb: str) -> int:
    for w in rep.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{verb} {len(rep.done)} file(s) into {out}", file=sys.stderr)
    if rep.failed:
        print(f"{len(rep.failed)} file(s) failed:", file=sys.stderr)
        for f, why in rep.failed:
            print(f"  {why}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_train(a) -> int:
    from .training import export, load_config, train

    cfg_path = a.config or str(Path(__file__).parent / "configs" / f"{a.kind}.yaml")
    cfg = load_config(cfg_path)
    if a.cache_dir:
        cfg["cache_dir"] = a.cache_dir
    run_dir = a.run_dir or cfg.get("run_dir") or f"runs/{a.kind}"
    if a.export_only:
        print(export(a.kind, cfg, run_dir))
        return 0
    if a.precision:
        cfg["precision"] = a.precision
    out = train(a.kind, cfg, run_dir=run_dir, resume=a.resume, data=a.data, iters=a.iters, threads=a.threads,
                progress=not a.quiet)
    print(out)
    return 0


def cmd_info(a) -> int:
    from .info import info_lines

    print("\n".join(info_lines(a.weights_dir)))
    return 0


def cmd_build_dsst(a) -> int:
    from .build import build_dsst_cli

    return build_dsst_cli(a)


def main(argv=None) -> int:
    ap = OneLineParser(prog="dynface", description="Blind face restoration with diffusion priors (CPU).")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("restore", help="restore faces: whole photos (detect, align, paste back) or aligned crops")
    p.add_argument("inputs", nargs="*", help="image files or folders")
    p.add_argument("-i", "--input", default=None, help="a file or folder (CodeFormer/GFPGAN style)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops (no detection)")
    p.add_argument("--framing", choices=["ffhq", "utkface", "model"], default="ffhq",
                   help="with --aligned: the crops' framing (ffhq: FFHQ-aligned, re-framed to the model's template)")
    p.add_argument("--only-center-face", action="store_true")
    add_number(p, "--upscale", kind=float, lo=1.0, hi=8.0, default=1.0, help="whole-image upscale factor")
    p.add_argument("--suffix", default=None)
    p.add_argument("--ext", default="auto", choices=["auto", "png", "jpg"])
    p.add_argument("--draw-box", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--preset", choices=["embedded", "difface512", "dps256"], default="embedded",
                   help="embedded: the CPU model set (or the set in --weights-dir); difface512 / dps256: the public "
                        "checkpoints in --weights-dir (default $DYNFACE_WEIGHTS_DIR or ~/.cache/dynface/weights), "
                        "see `dynface weights list` and docs/official-weights.md")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    add_max_pixels(p)
    add_runtime_options(p)
    add_restore_options(p)
    add_engine_options(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("degrade", help="synthetic degradation of METHOD §1 (seeded, parameters recorded)")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True)
    add_number(p, "--seed", lo=0, hi=SEED_MAX, default=0)
    add_number(p, "--size", lo=8, hi=IMAGE_SIDE_MAX, default=None, help="resize clean images to SIZE^2 first")
    p.add_argument("--config", default=None, help="YAML with a `degradation:` block of ranges")
    add_number(p, "--pixel-scale", kind=float, lo=0.0, lo_open=True, hi=16.0, default=1.0,
               help="scale sigma and r ranges (e.g. 0.25 for the paper's 512^2 ranges at 128^2)")
    add_max_pixels(p)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("train", help="train one network from a config (resumable)")
    p.add_argument("kind", choices=["prior", "rm", "se", "dgsa", "idm"])
    p.add_argument("--config", default=None, help="YAML config (default: the packaged one for KIND)")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--data", default=None, help="image folder to train on (e.g. a cleaned dataset)")
    add_number(p, "--iters", lo=1, default=None, help="total training iterations (default: the config's)")
    add_number(p, "--threads", lo=1, hi=THREADS_MAX, default=None,
               help="CPU threads (default: the config's, else physical cores)")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], default=None,
                   help="override the config's `precision` (auto: bf16 only where the CPU runs it natively)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--export-only", action="store_true", help="export the run's checkpoint to safetensors and stop")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("build-dsst", help="build the DSST table (Eq. 11) for a model set")
    p.add_argument("--data", default="../shared/data/utkface")
    add_number(p, "--size", lo=8, hi=IMAGE_SIDE_MAX, default=128)
    add_number(p, "--sigma-grid", kind=float, lo=0.0, lo_open=True, hi=1000.0, nargs=3, default=[0.025, 3.75, 150],
               metavar=("MIN", "MAX", "N"), help="sigma grid: MIN < MAX, N >= 2 points")
    add_number(p, "--images", lo=1, default=512, help="training faces used for D(sigma)")
    add_number(p, "--t-hi", lo=1, hi=T_MAX, default=925, help="t* at the largest calibration sigma")
    add_number(p, "--calib-sigma", kind=float, lo=0.0, lo_open=True, hi=1000.0, default=None,
               help="sigma whose t* is --t-hi (default: grid max)")
    add_number(p, "--tau", kind=float, lo=0.0, lo_open=True, hi=1e6, default=None,
               help="tolerance tau (default: calibrated)")
    p.add_argument("-o", "--output", required=True, help="dsst.json to write")
    p.add_argument("--cache-dir", default="runs/cache")
    p.set_defaults(func=cmd_build_dsst)

    p = sub.add_parser("info", help="this machine for bug reports: CPU and flags, torch build, what `auto` picks, models")
    p.add_argument("--weights-dir", default=None, help="official weights folder to report on")
    p.set_defaults(func=cmd_info)

    from . import cli_extra, cli_tools

    cli_extra.register(sub)
    cli_tools.register(sub)
    from .web import serve as web_serve  # `dynface serve` (Gradio is imported only when it runs)

    web_serve.register(sub)

    a = ap.parse_args(argv)
    from .cli_guard import run_command

    return run_command(a, argv)


if __name__ == "__main__":
    sys.exit(main())
