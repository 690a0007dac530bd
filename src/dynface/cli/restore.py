"""`dynface restore`: restore faces in whole photos (detect, align, paste back) or aligned crops."""
from __future__ import annotations

import sys

from dynface.cli.flags import (CLIError, add_engine_options, add_max_pixels, add_number, add_restore_options,
                               add_runtime_options, engine_workers, finish, options_from_args)


def register(sub) -> None:
    p = sub.add_parser("restore", help="restore faces: whole photos (detect, align, paste back) or aligned crops")
    p.add_argument("inputs", nargs="*", help="image files or folders, or video files (mp4 mov mkv webm gif)")
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
    from dynface.modelset.catalogue import MODEL_SETS

    p.add_argument("--preset", choices=["embedded", *MODEL_SETS], default="embedded",
                   help="embedded: the CPU model set (or the set in --weights-dir); difface512 / dps256: the public "
                        "checkpoints in --weights-dir (default $DYNFACE_WEIGHTS_DIR or ~/.cache/dynface/weights), "
                        "see `dynface weights list` and docs/official-weights.md")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--temporal", choices=["on", "off"], default="on",
                   help="videos: on (default) = face tracks, smoothed landmarks, noise tied to the track and "
                        "blending with the previous frame; off = every frame restored like a photo (docs/video.md)")
    p.add_argument("--frames", action="store_true", help="videos: also write the restored frames to frames/<stem>/")
    add_max_pixels(p)
    add_runtime_options(p)
    add_restore_options(p)
    add_engine_options(p)
    p.set_defaults(func=cmd_restore)


def cmd_restore(a) -> int:
    import torch

    from dynface.face.folders import FaceJobOptions
    from dynface.jobs.batch import restore_paths
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer

    inputs = list(a.inputs) + ([a.input] if a.input else [])
    if not inputs:
        raise CLIError("no input: give image files or folders (positional or -i PATH)")
    from dynface.jobs.batch import list_inputs
    from dynface.cli.video import check_video_args
    from dynface.jobs.video import split_videos

    videos, inputs = split_videos(inputs)
    check_video_args(a, videos)
    if inputs or not videos:
        list_inputs(inputs)  # a missing input or an empty folder fails before any model is loaded
    from dynface.core.hardware import set_threads

    set_threads(a.threads)
    if a.preset != "embedded":
        from dynface.modelset.official import load_official_modelset

        models = load_official_modelset(a.preset, a.weights_dir, device=a.device,
                                        prior=a.method == "dynface")  # rm/bicubic never sample
    else:
        models = ModelSet.load(a.weights_dir, device=a.device)
    print(f"model set {models.describe()}", file=sys.stderr)
    if models.manifest.get("note"):
        print(f"note: {models.manifest['note']}", file=sys.stderr)
    opt = options_from_args(a, models)
    face = FaceJobOptions(aligned=a.aligned, aligned_template=a.framing, only_center_face=a.only_center_face,
                          upscale=a.upscale, suffix=a.suffix, ext=a.ext, draw_box=a.draw_box)
    workers = engine_workers(a)
    if a.engine == "ray":
        from dynface.engines.ray_engine import restore_paths_ray

        if a.preset != "embedded" or models.device.type != "cpu":
            raise CLIError("--engine ray runs the embedded/--weights-dir model sets on CPUs only")
        rep = restore_paths_ray(inputs, a.output, a.weights_dir, opt, face, address=a.address, workers=workers,
                                threads=a.threads or 1, progress=not a.quiet)
        if rep.skipped:
            print(f"skipped {rep.skipped} file(s) already done", file=sys.stderr)
        return finish(rep, a.output, "restored")
    if videos:
        from dynface.cli.video import run_video_restore

        rep = run_video_restore(videos, a, Restorer(models), opt)
        if not inputs:
            return finish(rep, a.output, "restored")
    rep_images = restore_paths(inputs, a.output, Restorer(models), opt, face, progress=not a.quiet)
    if videos:
        rep_images.done += rep.done
        rep_images.failed += rep.failed
        rep_images.warnings += rep.warnings
    return finish(rep_images, a.output, "restored")
