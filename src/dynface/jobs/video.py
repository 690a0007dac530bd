"""Restore the faces of a video, frame by frame or with temporal consistency (docs/video.md).

Three passes over the clip, each resumable:

1. detect: faces in every frame (or the template for `aligned` clips) and shot cuts; then tracks
   (face/track.py) with landmarks smoothed along each track. Stored in the work folder.
2. restore: every frame in order. With temporal consistency (`TemporalOptions`, the default) each
   track's face is aligned with its smoothed landmarks, restored with noise tied to the track (the
   sampler's seed is the track's, so the invented detail does not change from frame to frame), and
   blended with the track's previous result carried along by the landmark motion
   (in aligned-crop space, face/temporal.py); `enabled=False` restores each frame exactly as `dynface restore` restores a
   photo. Frames without faces are passed through untouched. Each finished frame is a PNG (written
   atomically, last); a killed run re-run with the same input and options continues at the first
   missing frame (a track's blending state is saved beside it).
3. encode: the frames into the input's container with the input's timestamps, audio copied.

Layout under `out_dir`: `final_results/<stem>[_suffix].<ext>` (the video), `frames/<stem>/NNNNNN.png`
with `frames=True`, and the work folder `.video-<stem>/` (removed when the video is written).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynface.core.atomic import write_bytes
from dynface.core.imageio import read_rgb, write_image
from dynface.core.videoio import VideoError, VideoInfo, is_video, probe, read_frames, write_video
from dynface.face.align import estimate_similarity, warp_face
from dynface.face.detect import DEFAULT_MIN_SCORE, Face, detect_faces
from dynface.face.paste import paste_faces
from dynface.face.temporal import blend_state
from dynface.face.templates import template_for
from dynface.face.track import Track, build_tracks, find_cuts, thumbnail
from dynface.face.whole import DEFAULT_MIN_FACE, _center_index, restore_whole_image, sort_faces
from dynface.jobs.batch import BatchReport, check_output_dir, make_restore_fn
from dynface.jobs.outnames import output_stems
from dynface.pipeline import SEED_MAX, Restorer, RestoreOptions

WORK_PREFIX = ".video-"
JOB_VERSION = 1


@dataclass
class TemporalOptions:
    """Temporal consistency of a video restoration; `enabled=False` is plain per-frame restoration."""

    enabled: bool = True
    smooth: float = 2.0      # std (frames) of the landmark smoothing along a track; 0 = raw detections
    tie_noise: bool = True   # the sampler's noise seeded by the track, not drawn afresh per frame
    alpha: float = 0.65      # weight of the previous frame's result carried into this frame (0 = none)
    tau: float = 32.0        # low-passed disagreement (grey levels) at which blending stops
    flow: bool = True        # move the previous result onto this frame's face by optical flow before blending
    max_gap: int = 2         # frames a track may miss and continue (landmarks interpolated)

    def describe(self) -> str:
        if not self.enabled:
            return "off (per-frame)"
        return (f"on (smooth {self.smooth:g}, noise {'tied' if self.tie_noise else 'per frame'}, "
                f"blend {self.alpha:g}/{self.tau:g}{', flow' if self.flow else ''})")


@dataclass
class VideoReport:
    input: str
    output: str
    frames: int
    fps: float
    size: tuple[int, int]
    tracks: int
    restored_faces: int
    frames_with_faces: int
    resumed_at: int
    seconds: float
    frames_per_s: float
    warnings: list[str] = field(default_factory=list)
    frame_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("frame_files")
        return d


def track_seed(seed: int, track_id: int) -> int:
    """The sampler seed of a track: `seed` for the first track, a hash of (seed, id) for the others."""
    if track_id == 0:
        return int(seed)
    h = hashlib.sha256(f"dynface-track:{int(seed)}:{int(track_id)}".encode()).digest()
    return int.from_bytes(h[:7], "little") % SEED_MAX


def _frame_name(i: int) -> str:
    return f"{i:06d}.png"


def _job_key(info: VideoInfo, restorer: Restorer, opt: RestoreOptions, temporal: TemporalOptions, extra: dict) -> dict:
    return {"version": JOB_VERSION, "input": info.fingerprint(), "options": asdict(opt),
            "temporal": asdict(temporal) if temporal.enabled else {"enabled": False}, "models": restorer.models.describe(), **extra}


def _prepare_work(work: Path, frame_dir: Path, key: dict) -> bool:
    """True when `work` holds a run of the same job (resume); else start it afresh."""
    job = work / "job.json"
    if job.exists():
        try:
            if json.loads(job.read_text()) == json.loads(json.dumps(key)):
                return True
        except (OSError, ValueError):
            pass
    if work.exists():
        shutil.rmtree(work)
    if frame_dir.exists():
        for p in frame_dir.glob("[0-9]" * 6 + ".png"):
            p.unlink()
    (work / "state").mkdir(parents=True, exist_ok=True)
    frame_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(job, json.dumps(key, indent=1, default=str).encode())
    return False


def _faces_from_json(rows) -> list[Face]:
    return [Face(box=np.asarray(r["box"], np.float64), score=float(r["score"]),
                 landmarks=np.asarray(r["landmarks"], np.float64)) for r in rows]


def detect_clip(info: VideoInfo, work: Path, *, aligned: bool, framing: str, only_center_face: bool,
                min_score: float = DEFAULT_MIN_SCORE, progress: bool = True) -> tuple[list[list[Face]], list[int]]:
    """Pass 1: faces per frame and the cuts, cached in work/detections.json."""
    cache = work / "detections.json"
    if cache.exists():
        d = json.loads(cache.read_text())
        return [_faces_from_json(f) for f in d["faces"]], d["cuts"]
    faces, thumbs = [], []
    w, h = info.width, info.height
    tmpl = template_for(framing, 512) * np.array([w / 512.0, h / 512.0]) if aligned else None
    for i, _, rgb in tqdm(read_frames(info), total=info.n_frames, desc="  detecting", unit="frame",
                          disable=not progress, leave=False):
        if aligned:
            fs = [Face(box=np.array([0.0, 0.0, float(w), float(h)]), score=1.0, landmarks=tmpl.copy())]
        else:
            fs = sort_faces(detect_faces(rgb, min_score=min_score))
            if only_center_face and len(fs) > 1:
                fs = [fs[_center_index(fs, h, w)]]
        faces.append(fs)
        thumbs.append(thumbnail(rgb))
    cuts = [] if aligned else find_cuts(thumbs)
    rows = [[{"box": f.box.tolist(), "score": f.score, "landmarks": f.landmarks.tolist()} for f in fs] for fs in faces]
    write_bytes(cache, json.dumps({"faces": rows, "cuts": cuts}).encode())
    return faces, cuts


def restore_video(path, out_dir, restorer: Restorer, opt: RestoreOptions, *,
                  temporal: TemporalOptions | None = None, frames: bool = False, aligned: bool = False,
                  framing: str = "ffhq", only_center_face: bool = False, min_face: float = DEFAULT_MIN_FACE,
                  suffix: str | None = None, stem: str | None = None, progress: bool = True,
                  on_frame=None) -> VideoReport:
    """Restore one video into `out_dir` (module doc). `on_frame(i)` is called after each restored frame
    (tests interrupt a run with it). Raises VideoError (ImageError) for a bad input or output."""
    t0 = time.perf_counter()
    temporal = temporal or TemporalOptions()
    path, out_dir = Path(path), Path(out_dir)
    if opt.samples > 1:
        raise VideoError(f"{path}: --samples > 1 (uncertainty maps) is for images, not videos")
    if suffix is not None and any(c in str(suffix) for c in "/\\\0"):
        raise ValueError(f"suffix must not contain path separators: {suffix!r}")
    info = probe(path)
    out_dir = check_output_dir(out_dir, [path])
    sfx = f"_{suffix}" if suffix else ""
    stem = f"{stem or path.stem}{sfx}"
    final = out_dir / "final_results" / f"{stem}{path.suffix.lower()}"
    work = out_dir / f"{WORK_PREFIX}{stem}"
    frame_dir = out_dir / "frames" / stem if frames else work / "frames"
    warnings: list[str] = []
    if info.rotation:
        warnings.append(f"rotation metadata {info.rotation} degrees: frames restored upright, output written "
                        "upright without the metadata")
    if info.vfr:
        warnings.append("variable frame rate: every frame keeps its input timestamp")
    if info.has_audio and info.container == "gif":
        warnings.append("gif cannot hold audio; dropped")
    size = restorer.models.size
    tmpl_name = restorer.models.manifest.get("template", "utkface")
    template = template_for(tmpl_name, size)
    framing = tmpl_name if framing == "model" else framing  # --aligned --framing model: the model's own
    key = _job_key(info, restorer, opt, temporal, {"aligned": aligned, "framing": framing,
                                                    "only_center_face": only_center_face, "min_face": min_face,
                                                    "frames_dir": str(frame_dir)})
    resumed = _prepare_work(work, frame_dir, key)

    # pass 1: detections, tracks, smoothed landmarks
    dets, cuts = detect_clip(info, work, aligned=aligned, framing=framing, only_center_face=only_center_face,
                             progress=progress)
    if len(dets) != info.n_frames:
        raise VideoError(f"{path}: decoded {len(dets)} frames, the container lists {info.n_frames}")
    tracks = build_tracks(dets, cuts, max_gap=temporal.max_gap)
    for tr in tracks:
        tr.smooth(temporal.smooth if temporal.enabled else 0.0)
    restorable = [tr for tr in tracks if aligned or tr.size() >= min_face]
    by_frame: dict[int, list[Track]] = {}
    for tr in restorable:
        for i in tr.frames:
            by_frame.setdefault(i, []).append(tr)

    # pass 2: restore, from the first frame without a PNG
    start = 0
    while (frame_dir / _frame_name(start)).exists() and start < info.n_frames:
        start += 1
    if resumed and start:
        warnings.append(f"resumed at frame {start} of {info.n_frames}")
    states: dict[int, np.ndarray] = {}
    if temporal.enabled and start:
        for tr in by_frame.get(start - 1, []):
            p = work / "state" / f"{start - 1:06d}_{tr.id:04d}.png"
            if p.exists():
                states[tr.id] = read_rgb(p)
    per_frame_fn = make_restore_fn(restorer, opt, show_steps=False)
    fns: dict[int, object] = {}
    n_faces, t_restore = 0, time.perf_counter()
    bar = tqdm(total=info.n_frames, initial=start, desc=f"restoring {path.name}", unit="frame",
               disable=not progress or start >= info.n_frames)
    try:
        for i, _, rgb in (read_frames(info, start) if start < info.n_frames else ()):
            if not temporal.enabled:
                if aligned or dets[i]:
                    res = restore_whole_image(rgb, per_frame_fn, template, size, aligned=aligned,
                                              aligned_template=framing, only_center_face=only_center_face,
                                              min_face=min_face)
                    out, n = res.image, res.n_restored
                else:
                    out, n = rgb, 0
            else:
                out, n = _restore_frame_temporal(i, rgb, by_frame.get(i, []), states, restorer, opt, temporal,
                                                 template, size, fns, work)
            write_image(frame_dir / _frame_name(i), out)
            n_faces += n
            _drop_old_states(work, i)
            bar.update(1)
            if on_frame is not None:
                on_frame(i)
    finally:
        bar.close()
    secs_restore = time.perf_counter() - t_restore
    done_now = info.n_frames - start

    # pass 3: encode
    frame_files = [frame_dir / _frame_name(i) for i in range(info.n_frames)]
    final.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=info.n_frames, desc="  encoding", unit="frame", disable=not progress, leave=False) as ebar:
        write_video(final, info, (read_rgb(p) for p in frame_files), progress=ebar)
    shutil.rmtree(work, ignore_errors=True)
    secs = time.perf_counter() - t0
    return VideoReport(input=str(path), output=str(final), frames=info.n_frames, fps=float(info.fps),
                       size=(info.width, info.height), tracks=len(restorable), restored_faces=n_faces,
                       frames_with_faces=len(by_frame), resumed_at=start, seconds=round(secs, 3),
                       frames_per_s=round(done_now / secs_restore, 4) if secs_restore > 0 and done_now else 0.0,
                       warnings=warnings,
                       frame_files=[str(p) for p in frame_files] if frames else [])


def _drop_old_states(work: Path, i: int) -> None:
    """Blending states are needed for the previous frame only (a resume reads frame i's)."""
    for p in (work / "state").glob(f"{i - 1:06d}_*.png"):
        p.unlink(missing_ok=True)


def _restore_frame_temporal(i: int, rgb: np.ndarray, tracks: list[Track], states: dict, restorer: Restorer,
                            opt: RestoreOptions, temporal: TemporalOptions, template, size: int, fns: dict,
                            work: Path) -> tuple[np.ndarray, int]:
    """One frame with temporal consistency: align with the smoothed landmarks, restore with the track's
    noise, blend with the track's previous result, paste back."""
    if not tracks:
        states.clear()
        return rgb, 0
    Ms = [estimate_similarity(tr.at(i), template) for tr in tracks]
    crops = [warp_face(rgb, M, (size, size)) for M in Ms]
    if temporal.tie_noise:
        restored = []
        for tr, crop in zip(tracks, crops):
            fn = fns.get(tr.id)
            if fn is None:
                fn = fns[tr.id] = make_restore_fn(restorer, replace(opt, seed=track_seed(opt.seed, tr.id)),
                                                  show_steps=False)
            restored.append(fn([crop])[0])
    else:
        fn = fns.get(-1) or fns.setdefault(-1, make_restore_fn(restorer, opt, show_steps=False))
        restored = fn(crops)
    faces, new_states = [], {}
    for tr, M, r in zip(tracks, Ms, restored):
        prev = states.get(tr.id) if i > tr.first else None
        s = blend_state(r, prev, alpha=temporal.alpha, tau=temporal.tau, flow=temporal.flow)
        new_states[tr.id] = s
        write_image(work / "state" / f"{i:06d}_{tr.id:04d}.png", s)
        faces.append((s, M, size))
    states.clear()
    states.update(new_states)
    return paste_faces(rgb, faces), len(faces)


def split_videos(paths) -> tuple[list[Path], list]:
    """(the video files among `paths`, the other paths) - videos are named files, never folder contents."""
    vids = [Path(p) for p in paths if is_video(p) and not Path(p).is_dir()]
    return vids, [p for p in paths if not (is_video(p) and not Path(p).is_dir())]


def restore_video_paths(paths, out_dir, restorer: Restorer, opt: RestoreOptions, *,
                        temporal: TemporalOptions | None = None, frames: bool = False, aligned: bool = False,
                        framing: str = "ffhq", only_center_face: bool = False, suffix: str | None = None,
                        progress: bool = True, log=None) -> BatchReport:
    """Restore several videos; a bad one is reported and the others go on."""
    report = BatchReport()
    paths = [Path(p) for p in paths]
    stems, report.warnings = output_stems(paths)
    for p in paths:
        try:
            rep = restore_video(p, out_dir, restorer, opt, temporal=temporal, frames=frames, aligned=aligned,
                                framing=framing, only_center_face=only_center_face, suffix=suffix, stem=stems[p],
                                progress=progress)
        except (VideoError, ValueError) as e:
            report.failed.append((str(p), str(e)))
            continue
        report.done.append(rep.to_dict())
        report.warnings.extend(f"{p.name}: {w}" for w in rep.warnings)
        if log is not None:
            log(f"{p.name}: {rep.frames} frames ({rep.size[0]}x{rep.size[1]}, {rep.fps:.3g} fps), "
                f"{rep.tracks} face track(s), {rep.restored_faces} faces restored at {rep.frames_per_s:.3g} frames/s "
                f"-> {rep.output}")
    return report
