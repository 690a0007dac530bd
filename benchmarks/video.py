"""Video restoration benchmark: a face moving on a known affine path, each frame degraded on its own,
restored per frame (`--temporal off`) and with temporal consistency (on), measured against the truth.

    python benchmarks/video.py --face ../shared/data/london/neutral_001_03.jpg -o /tmp/vbench [--frames 24]
        [--method dynface] [--arms off,on] [--json docs/video/bench.json] [--strip docs/video/strip.jpg]

The clip: frame t is the 512^2 FFHQ-aligned face warped by A_t (scale, rotation and translation on
smooth sine paths) into a `--size`^2 frame, then degraded (blur, downsampling, noise, JPEG: the
fixed `--degrade` parameters, with frame t's own random stream), written losslessly (FFV1 in
Matroska) and restored through `dynface.jobs.video.restore_video` with `frames=True`.

Measures (face region = the FFHQ face ellipse carried by A_t):
- warping error: mean |F_t - W_t(F_{t-1})| / 255 inside the face, W_t = A_t o A_{t-1}^-1 the known motion;
- TLME: mean over frames and the 5 landmarks of |(p_t - p_{t-1}) - (g_t - g_{t-1})| in pixels, p the
  landmarks RetinaFace finds on the output, g the template carried by A_t (temporal landmark error);
- PSNR / SSIM to the clean frames inside the face's box; frames/s of the restoration (CPU named).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from dynface.core.degradation import DegradationParams, degrade, make_rng
from dynface.core.imageio import read_rgb, resize, to_tensor, to_uint8
from dynface.core.imagemetrics import psnr as psnr_t
from dynface.core.imagemetrics import ssim_pm1
from dynface.face.align import compose_affine, inverse_affine
from dynface.face.templates import FFHQ_512

ARMS = {
    "off": {"enabled": False},
    "on": {},
    "smooth+noise": {"alpha": 0.0},
    "no flow": {"flow": False},
    "no smoothing": {"smooth": 0.0},
    "noise per frame": {"tie_noise": False},
}


def path_affine(t: int, n: int, size: int, scale: float = 0.8) -> np.ndarray:
    """A_t: 512 face px -> frame px. Scale, rotation and translation follow sines over the clip."""
    u = t / max(1, n - 1)
    s = size / 512.0 * scale * (1.0 + 0.10 * np.sin(2 * np.pi * u))
    a = np.deg2rad(8.0 * np.sin(2 * np.pi * u + 0.5))
    cx = size / 2 + 0.10 * size * np.sin(2 * np.pi * u)
    cy = size / 2 + 0.06 * size * np.sin(4 * np.pi * u + 1.0)
    R = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t_ = np.array([cx, cy]) - R @ np.array([256.0, 280.0])
    return np.hstack([R, t_[:, None]])


def face_mask512() -> np.ndarray:
    """The inner face (brows to chin, cheek to cheek) of an FFHQ-aligned 512 crop as an ellipse (float32 0/1)."""
    m = np.zeros((512, 512), np.float32)
    cv2.ellipse(m, (256, 290), (100, 130), 0, 0, 360, 1.0, -1)
    return m


def make_clip(face: np.ndarray, n: int, size: int, params: DegradationParams, seed: int = 0):
    """(clean frames, degraded frames, affines) of the moving-face clip."""
    face = cv2.resize(face, (512, 512), interpolation=cv2.INTER_AREA) if face.shape[:2] != (512, 512) else face
    clean, degraded, A = [], [], []
    for t in range(n):
        M = path_affine(t, n, size)
        c = cv2.warpAffine(face, M, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        y = degrade(to_tensor(c), params, make_rng(seed, t))
        clean.append(c)
        degraded.append(to_uint8(y))
        A.append(M)
    return clean, degraded, A


def write_clip(frames, path, fps: int = 24, audio: bool = False) -> Path:
    """Frames into a video (FFV1/Matroska for .mkv: lossless; libx264 otherwise), optional sine audio."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as out:
        lossless = path.suffix == ".mkv"
        vs = out.add_stream("ffv1" if lossless else "libx264", rate=fps)
        vs.width, vs.height = frames[0].shape[1], frames[0].shape[0]
        vs.pix_fmt = "yuv444p" if lossless else "yuv420p"
        ast = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if ast is not None:
            n = int(44100 * len(frames) / fps)
            s = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 44100)).astype(np.float32)
            for k in range(0, n - 1024 + 1, 1024):
                af = av.AudioFrame.from_ndarray(s[None, k:k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = 44100, k
                for p in ast.encode(af):
                    out.mux(p)
            for p in ast.encode():
                out.mux(p)
    return path


def warp_error(frames, A, mask512) -> float:
    """Mean |F_t - W_t(F_{t-1})| / 255 inside the face (known motion W_t)."""
    errs = []
    size = frames[0].shape[1], frames[0].shape[0]
    for t in range(1, len(frames)):
        W = compose_affine(A[t], inverse_affine(A[t - 1]))
        prev = cv2.warpAffine(frames[t - 1].astype(np.float32), W, size, flags=cv2.INTER_CUBIC)
        valid = cv2.warpAffine(np.ones(frames[0].shape[:2], np.float32), W, size, flags=cv2.INTER_LINEAR) > 0.999
        m = (cv2.warpAffine(mask512, A[t], size, flags=cv2.INTER_NEAREST) > 0) & valid
        d = np.abs(frames[t].astype(np.float32) - prev)[m]
        errs.append(float(d.mean()) / 255.0)
    return float(np.mean(errs))


def tlme(frames, A) -> float:
    """Temporal landmark error (px) of the detected 5 landmarks against the known motion."""
    from dynface.face.detect import detect_faces

    g = [np.asarray(FFHQ_512) @ M[:, :2].T + M[:, 2] for M in A]
    p = []
    for f in frames:
        fs = detect_faces(f)
        p.append(max(fs, key=lambda x: x.score).landmarks if fs else None)
    errs = [np.linalg.norm((p[t] - p[t - 1]) - (g[t] - g[t - 1]), axis=1).mean()
            for t in range(1, len(frames)) if p[t] is not None and p[t - 1] is not None]
    return float(np.mean(errs)) if errs else float("nan")


def fidelity(frames, clean, A, mask512) -> tuple[float, float]:
    """PSNR / SSIM to the clean frames in the box around the face ellipse."""
    ps, ss = [], []
    size = frames[0].shape[1], frames[0].shape[0]
    for f, c, M in zip(frames, clean, A):
        m = cv2.warpAffine(mask512, M, size, flags=cv2.INTER_NEAREST) > 0
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        a, b = to_tensor(np.ascontiguousarray(f[y0:y1, x0:x1])), to_tensor(np.ascontiguousarray(c[y0:y1, x0:x1]))
        ps.append(psnr_t(a, b))
        ss.append(ssim_pm1(a, b))
    return float(np.mean(ps)), float(np.mean(ss))


def measure(frames, clean, A, mask512) -> dict:
    p, s = fidelity(frames, clean, A, mask512)
    return {"warp_error": round(warp_error(frames, A, mask512), 5), "tlme_px": round(tlme(frames, A), 3),
            "psnr": round(p, 3), "ssim": round(s, 4)}


def strip(rows: dict[str, list[np.ndarray]], A, picks, crop: int = 160) -> np.ndarray:
    """A grid: one row per arm, one column per picked frame, each the face's box (stabilised by A_t)."""
    out_rows = []
    for name, frames in rows.items():
        tiles = []
        for t in picks:
            # undo the motion: the face back in 512 space, its central part, resized to `crop`
            inv = inverse_affine(A[t])
            face = cv2.warpAffine(frames[t], inv, (512, 512), flags=cv2.INTER_CUBIC)
            tile = cv2.resize(face[96:480, 64:448], (crop, crop), interpolation=cv2.INTER_AREA)
            tiles.append(tile)
        row = np.concatenate(tiles, axis=1)
        label = np.full((crop, 150, 3), 255, np.uint8)
        cv2.putText(label, name, (6, crop // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        out_rows.append(np.concatenate([label, row], axis=1))
    return np.concatenate(out_rows, axis=0)


def camera_clip(photo: np.ndarray, n: int, out_w: int, out_h: int) -> list[np.ndarray]:
    """A hand-held camera over a still photo: a window that pans, zooms in by 15 % and sways a little."""
    H, W = photo.shape[:2]
    frames = []
    for t in range(n):
        u = t / max(1, n - 1)
        z = 1.0 + 0.15 * u                                   # zoom
        s = min(W / out_w, H / out_h) / z * 0.95             # photo px per frame px
        cx = W / 2 + 0.12 * W * (u - 0.5) + 2.0 * np.sin(7 * u)
        cy = H / 2 + 0.05 * H * np.sin(2 * np.pi * u) + 1.5 * np.cos(5 * u)
        M = np.array([[1 / s, 0, out_w / 2 - cx / s], [0, 1 / s, out_h / 2 - cy / s]])
        frames.append(cv2.warpAffine(photo, M, (out_w, out_h), flags=cv2.INTER_AREA if s > 1 else cv2.INTER_CUBIC,
                                     borderMode=cv2.BORDER_REFLECT_101))
    return frames


def whole_clip(a) -> int:
    """`--whole PHOTO`: a camera-motion mp4 (h264 + AAC) from a photo, restored with the `dynface restore`
    command end to end (both --temporal on and off), with timing and a strip of frames."""
    import subprocess

    from dynface.core.hardware import cpu_model
    from dynface.core.videoio import video_summary

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = read_rgb(a.whole)
    w = int(a.size) // 2 * 2
    h = int(round(w * photo.shape[0] / photo.shape[1])) // 2 * 2
    clip = write_clip(camera_clip(photo, a.frames, w, h), out / f"{Path(a.whole).stem}_camera.mp4", audio=True)
    rows, report = {}, {"input": video_summary(clip), "cpu": cpu_model(), "method": a.method}
    for mode in a.arms.split(","):
        cmd = [sys.executable, "-m", "dynface.cli", "restore", str(clip), "-o", str(out / mode), "--temporal", mode,
               "--frames", "--method", a.method, "-q", "--seed", str(a.seed)]
        if a.steps:
            cmd += ["--steps", str(a.steps)]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(r.stderr, file=sys.stderr)
        res = out / mode / "final_results" / clip.name
        report[mode] = {"exit": r.returncode, "output": video_summary(res) if res.exists() else None,
                        "seconds": round(wall, 1), "frames_per_s": round(a.frames / wall, 3)}
        rows[mode] = [read_rgb(p) for p in sorted((out / mode / "frames" / clip.stem).glob("*.png"))]
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")
    if a.strip:
        picks = [0, a.frames // 3, 2 * a.frames // 3, a.frames - 1]
        src = [f for f in camera_clip(photo, a.frames, w, h)]
        grid = [np.concatenate([src[t] for t in picks], axis=1)]
        grid += [np.concatenate([fr[t] for t in picks], axis=1) for fr in rows.values() if len(fr) == a.frames]
        cv2.imwrite(str(a.strip), np.concatenate(grid, axis=0)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    return 0 if all(report[m]["exit"] == 0 for m in rows) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", help="a 512 FFHQ-aligned face (e.g. ../shared/data/london/...)")
    ap.add_argument("--whole", help="instead: a whole photo (../shared/data/whole/...) filmed by a moving camera, "
                                    "restored end to end with the command (--size: the frame width)")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=320, help="frame side (px)")
    ap.add_argument("--degrade", default="2.0,2.5,10,60", help="blur sigma, downscale, noise (0-255), JPEG quality")
    ap.add_argument("--method", default="dynface")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", default="off,on")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--strip", default=None)
    a = ap.parse_args(argv)
    if a.whole:
        return whole_clip(a)
    if not a.face:
        ap.error("give --face (the moving-face benchmark) or --whole (a camera clip of a photo)")

    from dynface.core.hardware import cpu_model, set_threads
    from dynface.jobs.video import TemporalOptions, restore_video
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    set_threads(a.threads)
    sig, sc, noise, q = (float(v) for v in a.degrade.split(","))
    params = DegradationParams(sigma=sig, scale=sc, noise=noise, jpeg=int(q))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    face = read_rgb(a.face)
    clean, degraded, A = make_clip(face, a.frames, a.size, params, a.seed)
    clip = write_clip(degraded, out / "clip.mkv")
    mask = face_mask512()
    models = ModelSet.load(None)
    restorer = Restorer(models)
    opt = RestoreOptions.for_models(models, method=a.method, steps=a.steps, seed=a.seed)
    results = {"clean": measure(clean, clean, A, mask), "input": measure(degraded, clean, A, mask)}
    outputs = {"input": degraded}
    for arm in a.arms.split(","):
        temporal = TemporalOptions(**ARMS[arm])
        arm_dir = out / arm.replace(" ", "_").replace("+", "_")
        done = arm_dir / "timing.json"  # a finished arm of the same clip is measured again, not re-run
        if done.exists() and json.loads(done.read_text())["key"] == [a.face, a.frames, a.size, a.degrade, a.method,
                                                                       a.steps, a.seed, temporal.describe()]:
            wall = json.loads(done.read_text())["seconds"]
            frame_files = sorted((arm_dir / "frames" / "clip").glob("*.png"))
        else:
            t0 = time.perf_counter()
            rep = restore_video(clip, arm_dir, restorer, opt, temporal=temporal, frames=True, progress=False)
            wall = time.perf_counter() - t0
            frame_files = rep.frame_files
            done.write_text(json.dumps({"key": [a.face, a.frames, a.size, a.degrade, a.method, a.steps, a.seed,
                                                temporal.describe()], "seconds": wall}))
        frames = [read_rgb(p) for p in frame_files]
        results[arm] = {**measure(frames, clean, A, mask), "frames_per_s": round(a.frames / wall, 3),
                        "temporal": temporal.describe()}
        outputs[arm] = frames
        print(arm, results[arm], file=sys.stderr, flush=True)
    outputs["truth"] = clean
    cpu = cpu_model()
    meta = {"face": Path(a.face).name, "frames": a.frames, "size": a.size, "degrade": a.degrade,
            "method": a.method, "steps": opt.steps or "model set default", "seed": a.seed, "cpu": cpu,
            "torch_threads": torch.get_num_threads(), "models": models.describe()}
    report = {"meta": meta, "results": results}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")
    if a.strip:
        picks = list(range(a.frames // 2 - 2, a.frames // 2 + 2))
        img = strip(outputs, A, picks)
        Path(a.strip).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(a.strip), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return 0


if __name__ == "__main__":
    sys.exit(main())
