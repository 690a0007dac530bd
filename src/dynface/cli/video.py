"""The video part of `dynface restore`: flag checks for video inputs and the run (jobs/video.py)."""
from __future__ import annotations

import sys

from dynface.cli.flags import CLIError


def check_video_args(a, videos) -> None:
    """Flags that cannot apply to videos fail before any model is loaded; so does a missing PyAV."""
    if not videos:
        return
    from pathlib import Path

    from dynface.core.imageio import ImageError

    for v in videos:  # like images: a missing input fails before any model is loaded
        if not Path(v).exists():
            raise ImageError(f"{v}: no such file or folder")
    if a.upscale != 1:
        raise CLIError("--upscale is for photos: a restored video keeps its input's size")
    if a.engine != "local":
        raise CLIError("--engine ray restores photos; videos run with --engine local")
    if getattr(a, "samples", 1) and a.samples > 1:
        raise CLIError("--samples > 1 (uncertainty maps) is for photos, not videos")
    from dynface.core.videoio import need_av

    need_av()


def run_video_restore(videos, a, restorer, opt):
    from dynface.jobs.video import TemporalOptions, restore_video_paths

    temporal = TemporalOptions(enabled=a.temporal == "on")
    if not a.quiet:
        print(f"videos: temporal consistency {temporal.describe()}", file=sys.stderr)
    return restore_video_paths(videos, a.output, restorer, opt, temporal=temporal, frames=a.frames,
                               aligned=a.aligned, framing=a.framing, only_center_face=a.only_center_face,
                               suffix=a.suffix, progress=not a.quiet,
                               log=None if a.quiet else (lambda m: print(m, file=sys.stderr)))
