"""Video restoration: containers, frame count, fps and audio kept; tracks; per-frame mode equals the
photo path; resume; bad inputs give one line. Clips are made here (tiny, synthetic or from one face)."""
from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from conftest import load_script, smooth_image  # noqa: E402
from tiny_models import make_tiny_modelset  # noqa: E402
from dynface.cli import main  # noqa: E402
from dynface.core.imageio import read_rgb, to_uint8, write_image  # noqa: E402
from dynface.core.videoio import VideoError, need_av, probe, read_frames, video_summary  # noqa: E402
from dynface.face.detect import Face  # noqa: E402
from dynface.face.track import build_tracks, find_cuts, smooth_series, thumbnail  # noqa: E402

bench = load_script("benchmarks/video.py")


@pytest.fixture(scope="module")
def ms(tmp_path_factory):
    return make_tiny_modelset(tmp_path_factory.mktemp("ms"))


def moving_frames(n=8, h=64, w=96, seed=0) -> list[np.ndarray]:
    """A smooth synthetic picture panning across the frame (no face)."""
    big = to_uint8(smooth_image(128, seed=seed))
    return [np.ascontiguousarray(big[10 + t: 10 + t + h, 5 + 2 * t: 5 + 2 * t + w]) for t in range(n)]


@pytest.fixture(scope="module")
def face_clip(data_dir, tmp_path_factory) -> Path:
    """6 frames, 128^2, of a real face moving on the benchmark's path, degraded per frame (lossless FFV1)."""
    from dynface.core.degradation import DegradationParams

    face = read_rgb(sorted((data_dir / "london").iterdir())[0])
    _, degraded, _ = bench.make_clip(face, 6, 128, DegradationParams(1.0, 1.5, 5, 80))
    return bench.write_clip(degraded, tmp_path_factory.mktemp("clip") / "face.mkv")


def restore(args, ms, capsys, *extra):
    code = main(["restore", *args, "--weights-dir", str(ms), "--steps", "2", "--threads", "1", "-q",
                 "--precision", "fp32", *extra])
    return code, capsys.readouterr().err


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# containers, frame count, fps, audio

def test_round_trip_keeps_frames_fps_size_audio_and_input(ms, tmp_path, capsys):
    clip = bench.write_clip(moving_frames(8), tmp_path / "pan.mp4", fps=24, audio=True)
    before = digest(clip)
    code, err = restore([str(clip), "-o", str(tmp_path / "out"), "--method", "rm", "--frames"], ms, capsys)
    assert code == 0, err
    out = tmp_path / "out" / "final_results" / "pan.mp4"
    s_in, s_out = video_summary(clip), video_summary(out)
    assert (s_out["frames"], s_out["fps"], s_out["width"], s_out["height"]) == (8, 24.0, 96, 64)
    assert s_out["audio"] == "aac" == s_in["audio"]
    assert probe(out).pts == probe(clip).pts
    with av.open(str(clip)) as a, av.open(str(out)) as b:  # the audio packets are copied, not re-encoded
        pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert pa == pb and len(pa) > 3
    # frames without faces are passed through untouched
    frames = sorted((tmp_path / "out" / "frames" / "pan").glob("*.png"))
    decoded = [f for _, _, f in read_frames(probe(clip))]
    assert len(frames) == 8 and all(np.array_equal(read_rgb(p), d) for p, d in zip(frames, decoded))
    assert digest(clip) == before
    assert not list((tmp_path / "out").glob(".video-*"))  # the work folder is gone


@pytest.mark.parametrize("ext", [".gif", ".webm", ".mov", ".mkv"])
def test_other_containers(ms, tmp_path, capsys, ext):
    frames = moving_frames(6)
    src = tmp_path / f"in{ext}"
    info_codec = {".gif": "gif", ".webm": "libvpx-vp9", ".mov": "libx264", ".mkv": "ffv1"}[ext]
    with av.open(str(src), "w") as out:
        vs = out.add_stream(info_codec, rate=10)
        vs.width, vs.height = 96, 64
        vs.pix_fmt = {"gif": "rgb8", "ffv1": "yuv444p"}.get(info_codec, "yuv420p")
        for f in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    code, err = restore([str(src), "-o", str(tmp_path / "out"), "--method", "rm"], ms, capsys)
    assert code == 0, err
    s = video_summary(tmp_path / "out" / "final_results" / f"in{ext}")
    assert (s["frames"], s["fps"], s["width"], s["height"]) == (6, 10.0, 96, 64)


def test_variable_frame_rate_keeps_timestamps(ms, tmp_path, capsys):
    src = tmp_path / "vfr.mkv"
    pts = [0, 40, 80, 200, 240, 400]
    with av.open(str(src), "w") as out:
        vs = out.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv444p"
        vs.codec_context.time_base = Fraction(1, 1000)
        for f, t in zip(moving_frames(6), pts):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    info = probe(src)
    assert info.vfr
    code, err = restore([str(src), "-o", str(tmp_path / "out"), "--method", "rm"], ms, capsys, "--quiet")
    assert code == 0, err
    out = probe(tmp_path / "out" / "final_results" / "vfr.mkv")
    assert out.n_frames == 6
    tb_in, tb_out = info.time_base, out.time_base
    assert [round(float(p * tb_out), 3) for p in out.pts] == [round(float(p * tb_in), 3) for p in info.pts]


def test_rotation_metadata_output_upright(ms, tmp_path, capsys):
    src = tmp_path / "rot.mp4"
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        vs.set_display_rotation(90)
        for f in moving_frames(4):
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    assert probe(src).rotation == 90 and (probe(src).width, probe(src).height) == (64, 96)
    main(["restore", str(src), "-o", str(tmp_path / "out"), "--weights-dir", str(ms), "--method", "rm"])
    err = capsys.readouterr().err
    assert "rotation metadata 90" in err
    out = probe(tmp_path / "out" / "final_results" / "rot.mp4")
    assert (out.rotation, out.width, out.height, out.n_frames) == (0, 64, 96, 4)


# --------------------------------------------------------------------------------------------
# bad input: one line, never a traceback, the input untouched

def _one_line_error(code, err):
    assert code != 0 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return lines


def test_not_a_video(ms, tmp_path, capsys):
    bad = tmp_path / "notvideo.mp4"
    bad.write_text("hello, not a video")
    code, err = restore([str(bad), "-o", str(tmp_path / "out")], ms, capsys)
    lines = _one_line_error(code, err)
    assert any("notvideo.mp4: not a readable video" in ln for ln in lines), err
    assert bad.read_text() == "hello, not a video"


def test_zero_frames(ms, tmp_path, capsys):
    empty = tmp_path / "empty.mkv"
    with av.open(str(empty), "w") as out:
        vs = out.add_stream("ffv1", rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv444p"
        out.start_encoding()  # the header, no frames
    code, err = restore([str(empty), "-o", str(tmp_path / "out")], ms, capsys)
    _one_line_error(code, err)
    assert "empty.mkv: the video has no frames" in err, err


def test_huge_frames_refused_before_decoding(ms, tmp_path, capsys):
    clip = bench.write_clip(moving_frames(3), tmp_path / "big.mp4")
    code, err = restore([str(clip), "-o", str(tmp_path / "out"), "--max-pixels", "1000"], ms, capsys)
    _one_line_error(code, err)
    assert "over the pixel cap" in err


def test_video_flags_refused(ms, tmp_path, capsys):
    clip = bench.write_clip(moving_frames(3), tmp_path / "c.mp4")
    code, err = restore([str(clip), "-o", str(tmp_path / "out"), "--upscale", "2"], ms, capsys)
    assert code == 2 and "--upscale" in err


def test_missing_pyav_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(VideoError, match=r'pip install "dynface\[video\]"'):
        need_av()


# --------------------------------------------------------------------------------------------
# tracks and smoothing

def _face(x, y, s=40.0, score=0.99):
    pts = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]) * s + [x, y]
    return Face(box=np.array([x, y, x + s, y + s]), score=score, landmarks=pts)


def test_tracks_continue_through_gaps_split_at_cuts_and_start_for_new_faces():
    dets = []
    for t in range(12):
        fs = [] if t == 4 else [_face(10 + 2 * t, 20)]     # face A, missed by the detector at frame 4
        if 6 <= t < 9:
            fs.append(_face(150, 30))                       # face B appears at 6 and leaves after 8
        dets.append(fs)
    tracks = build_tracks(dets, cuts=[10])
    a = [tr for tr in tracks if tr.boxes[0][0] < 100]
    b = [tr for tr in tracks if tr.boxes[0][0] > 100]
    assert [(tr.first, tr.last) for tr in a] == [(0, 9), (10, 11)]    # the cut splits A
    assert [(tr.first, tr.last) for tr in b] == [(6, 8)]
    assert a[0].scores[4] == 0.0 and np.allclose(a[0].landmarks[4], _face(18, 20).landmarks)  # interpolated
    assert len({tr.id for tr in tracks}) == len(tracks) == 3
    # a face far from where the track was is a new track, not a jump of the old one
    jump = build_tracks([[_face(10, 10)], [_face(200, 10)]])
    assert len(jump) == 2


def test_smoothing_removes_jitter_and_keeps_steady_motion():
    t = np.arange(30, dtype=np.float64)
    path = np.stack([3.0 * t + 0.05 * t**2, 100 - 2.0 * t], axis=1)
    assert np.allclose(smooth_series(path, 3.0), path, atol=1e-6)   # a quadratic passes unchanged
    rng = np.random.default_rng(0)
    noisy = path + rng.normal(0, 1.5, path.shape)
    err_raw = np.abs(noisy - path).mean()
    err_s = np.abs(smooth_series(noisy, 3.0) - path).mean()
    assert err_s < 0.65 * err_raw


def test_cuts_found_at_shot_changes_not_at_camera_motion():
    a, b = moving_frames(10, seed=1), [255 - f for f in moving_frames(5, seed=2)]
    thumbs = [thumbnail(f) for f in a + b]
    assert find_cuts(thumbs) == [10]


# --------------------------------------------------------------------------------------------
# per-frame mode equals the photo path; temporal mode resumes exactly

def test_temporal_off_equals_image_path_frame_for_frame(ms, face_clip, tmp_path, capsys):
    code, err = restore([str(face_clip), "-o", str(tmp_path / "v"), "--temporal", "off", "--frames"], ms, capsys)
    assert code == 0, err
    src = tmp_path / "decoded"
    src.mkdir()
    for i, _, rgb in read_frames(probe(face_clip)):
        write_image(src / f"{i:06d}.png", rgb)
    code, err = restore([str(src), "-o", str(tmp_path / "img")], ms, capsys)
    assert code == 0, err
    ours = sorted((tmp_path / "v" / "frames" / "face").glob("*.png"))
    theirs = sorted((tmp_path / "img" / "final_results").glob("*.png"))
    assert len(ours) == len(theirs) == 6
    assert len(list((tmp_path / "img" / "restored_faces").glob("*.png"))) >= 5  # faces were found and restored
    for a, b in zip(ours, theirs):
        assert np.array_equal(read_rgb(a), read_rgb(b)), a.name


def _run(ms_path, clip, out, **kw):
    from dynface.jobs.video import TemporalOptions, restore_video
    from dynface.modelset.folder import ModelSet
    from dynface.pipeline import Restorer, RestoreOptions

    models = ModelSet.load(ms_path)
    opt = RestoreOptions.for_models(models, steps=2, precision="fp32", seed=3)
    return restore_video(clip, out, Restorer(models), opt, temporal=TemporalOptions(), frames=True,
                         progress=False, **kw)


def test_temporal_run_is_deterministic_restores_faces_and_resumes(ms, face_clip, tmp_path):
    full = _run(ms, face_clip, tmp_path / "full")
    assert full.tracks == 1 and full.restored_faces >= 5 and full.resumed_at == 0

    class Killed(Exception):
        pass

    def kill_after_2(i):
        if i == 2:
            raise Killed

    with pytest.raises(Killed):
        _run(ms, face_clip, tmp_path / "resumed", on_frame=kill_after_2)
    assert len(list((tmp_path / "resumed" / "frames" / "face").glob("*.png"))) == 3
    again = _run(ms, face_clip, tmp_path / "resumed")
    assert again.resumed_at == 3
    for a, b in zip(full.frame_files, again.frame_files):
        assert np.array_equal(read_rgb(a), read_rgb(b)), Path(a).name
    assert video_summary(again.output)["frames"] == 6
    # temporal consistency changes the result (the same seed, another clip than per frame)
    inp = [f for _, _, f in read_frames(probe(face_clip))]
    assert any(not np.array_equal(read_rgb(a), b) for a, b in zip(full.frame_files, inp))


def test_blend_averages_flicker_and_stops_at_real_change():
    from dynface.face.temporal import blend_state

    base = to_uint8(smooth_image(64, seed=4)).astype(np.float32)
    rng = np.random.default_rng(0)
    frames = [np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    state, outs = None, []
    for f in frames:
        state = blend_state(f, state)
        outs.append(state)
    flicker = lambda seq: np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(seq[1:], seq[:-1])])  # noqa: E731
    assert flicker(outs[4:]) < 0.6 * flicker(frames[4:])
    assert np.abs(outs[-1].astype(np.float32) - base).mean() < np.abs(frames[-1].astype(np.float32) - base).mean()
    changed = frames[-1].copy()
    changed[16:48, 16:48] = 255                      # a large real change: the new frame wins there
    out = blend_state(changed, outs[-2])
    assert np.abs(out[20:44, 20:44].astype(np.float32) - 255).mean() < 3
