"""Video files in and out through PyAV (whose wheel carries FFmpeg; no system FFmpeg needed).

    info = probe(path)                       # one-line VideoError for anything that is not a usable video
    for i, pts, rgb in read_frames(info):    # uint8 RGB, upright (rotation metadata applied)
        ...
    write_video(out, info, frames)           # same container, frame count, timestamps and size; audio copied

Handling of awkward inputs (each a one-line `VideoError` or a documented behaviour, docs/video.md):
- not a video, no video stream, zero frames, a frame over the pixel cap (`--max-pixels`): VideoError;
- rotation metadata (a multiple of 90 degrees): frames are turned upright before restoration and the
  output is written upright without the metadata, so it displays the same; other angles: VideoError;
- variable frame rate: every frame keeps its input timestamp (the output has the same timing);
- audio: the first audio stream is copied packet for packet (no re-encoding).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dynface.core.atomic import write_atomic
from dynface.core.imageio import MAX_PIXELS_ENV, ImageError, max_pixels

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".gif"}
#: container (muxer) name per extension; the output is written in the input's container
MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".gif": "gif"}
INSTALL_HINT = 'pip install "dynface[video]"'


class VideoError(ImageError):
    """A video that cannot be read or written; one line, naming the file."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def need_av():
    """The `av` module, or a one-line VideoError naming the extra to install."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise VideoError(f"video needs PyAV, which is not installed: {INSTALL_HINT}") from None
    import av.logging

    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own chatter off; errors reach us as exceptions
    return av


@dataclass
class VideoInfo:
    path: Path
    container: str               # muxer name of the output (MUXERS)
    codec: str                   # the input's video codec
    width: int                   # upright (after rotation) frame size
    height: int
    rotation: int                # counter-clockwise display rotation of the stored frames, degrees
    fps: Fraction                # average frame rate
    time_base: Fraction
    pts: list[int] = field(default_factory=list)  # presentation timestamps in time_base, in display order
    has_audio: bool = False
    audio_codec: str | None = None
    vfr: bool = False            # frame intervals differ by more than 10 %
    bit_rate: int | None = None

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    def describe(self) -> str:
        extra = (f", rotation {self.rotation}" if self.rotation else "") + (", variable frame rate" if self.vfr else "")
        audio = f", audio {self.audio_codec}" if self.has_audio else ", no audio"
        return (f"{self.width}x{self.height} {self.codec} {self.n_frames} frames at {float(self.fps):.3g} fps"
                f"{audio}{extra}")

    def fingerprint(self) -> dict:
        st = self.path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "frames": self.n_frames,
                "width": self.width, "height": self.height}


def _check_regular(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except OSError as e:
        raise VideoError(f"{path}: cannot open ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise VideoError(f"{path}: is not a regular file; refused")


def _open(path: Path):
    av = need_av()
    try:
        return av.open(str(path), "r")
    except av.error.EOFError:
        raise VideoError(f"{path}: the video has no frames (empty or cut short)") from None
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({_why(e)})") from None


def _why(e) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(";")[0].strip() or type(e).__name__


def probe(path) -> VideoInfo:
    """Read a video's header and packet timestamps (no decoding); VideoError when it cannot be restored."""
    path = Path(path)
    _check_regular(path)
    ext = path.suffix.lower()
    if ext not in MUXERS:
        raise VideoError(f"{path}: not a video extension ({' '.join(sorted(VIDEO_EXTS))})")
    av = need_av()
    with _open(path) as c:
        if not c.streams.video:
            raise VideoError(f"{path}: no video stream")
        vs = c.streams.video[0]
        w, h = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
        if w <= 0 or h <= 0:
            raise VideoError(f"{path}: video stream without a frame size")
        cap = max_pixels()
        if w * h > cap:
            raise VideoError(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP frames are over the pixel cap of "
                             f"{cap / 1e6:.1f} MP (--max-pixels or ${MAX_PIXELS_ENV} raise it)")
        pts, rotation = [], 0
        try:
            for pkt in c.demux(vs):
                if pkt.size == 0:
                    continue
                pts.append(pkt.pts if pkt.pts is not None else (pkt.dts if pkt.dts is not None else len(pts)))
        except av.FFmpegError as e:
            raise VideoError(f"{path}: damaged video ({_why(e)})") from None
        if not pts:
            raise VideoError(f"{path}: the video has no frames")
        pts.sort()
        try:  # rotation is a frame property (display matrix); read it from the first frame
            c.seek(0)
            for frame in c.decode(vs):
                rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
                break
        except av.FFmpegError as e:
            raise VideoError(f"{path}: damaged video ({_why(e)})") from None
        if rotation % 90:
            raise VideoError(f"{path}: rotation metadata of {rotation} degrees is not a multiple of 90; "
                             "rotate the video first")
        tb = Fraction(vs.time_base) if vs.time_base else Fraction(1, 1000)
        fps = Fraction(vs.average_rate or vs.guessed_rate or 0) if (vs.average_rate or vs.guessed_rate) else None
        d = np.diff(np.asarray(pts, dtype=np.float64))
        vfr = bool(d.size > 1 and d.min() > 0 and (d.max() - d.min()) > 0.1 * d.mean())
        if fps is None or fps <= 0:
            if d.size and d.mean() > 0:
                fps = Fraction(1) / (tb * Fraction(float(d.mean())).limit_denominator(1_000_000))
            else:
                fps = Fraction(25)
        if rotation in (90, 270):
            w, h = h, w
        aud = c.streams.audio[0] if c.streams.audio else None
        return VideoInfo(path=path, container=MUXERS[ext], codec=vs.codec_context.name, width=w, height=h,
                         rotation=rotation, fps=fps, time_base=tb, pts=pts, has_audio=aud is not None,
                         audio_codec=aud.codec_context.name if aud is not None else None, vfr=vfr,
                         bit_rate=int(vs.bit_rate) if vs.bit_rate else None)


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned as it is displayed (`rotation`: counter-clockwise degrees, as PyAV reads it)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def read_frames(info: VideoInfo, start: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """(index, pts, uint8 RGB upright) for every frame in display order; frames before `start` are
    decoded but not converted. Raises VideoError on a damaged stream."""
    av = need_av()
    with _open(info.path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        i = 0
        try:
            for frame in c.decode(vs):
                if i >= start:
                    rgb = frame.to_ndarray(format="rgb24")
                    pts = info.pts[i] if i < len(info.pts) else (frame.pts or 0)
                    yield i, pts, upright(rgb, info.rotation)
                i += 1
        except av.FFmpegError as e:
            raise VideoError(f"{info.path}: damaged video at frame {i} ({_why(e)})") from None
    if i == 0:
        raise VideoError(f"{info.path}: the video has no frames")


# --------------------------------------------------------------------------------------------
# writing

#: input codec -> the encoder that writes it again (others: DEFAULT_ENCODER of the container)
_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp8": "libvpx", "vp9": "libvpx-vp9", "gif": "gif",
             "mjpeg": "mjpeg", "png": "png", "ffv1": "ffv1"}
DEFAULT_ENCODER = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9", "gif": "gif"}
_WEBM_OK = {"libvpx", "libvpx-vp9"}


def _encoder(info: VideoInfo) -> str:
    enc = _ENCODERS.get(info.codec, DEFAULT_ENCODER[info.container])
    if info.container == "webm" and enc not in _WEBM_OK:
        enc = "libvpx-vp9"
    if info.container == "gif":
        enc = "gif"
    if info.container != "gif" and enc == "gif":
        enc = DEFAULT_ENCODER[info.container]
    return enc


def _add_video_stream(out, info: VideoInfo):
    enc = _encoder(info)
    vs = out.add_stream(enc, rate=info.fps if info.fps.denominator < 100_000 else float(info.fps))
    vs.width, vs.height = info.width, info.height
    even = info.width % 2 == 0 and info.height % 2 == 0
    if enc == "gif":
        vs.pix_fmt = "rgb8"
    elif enc in ("png",):
        vs.pix_fmt = "rgb24"
    elif enc == "ffv1":
        vs.pix_fmt = "yuv444p"
    elif enc == "mjpeg":
        vs.pix_fmt = "yuvj444p"
    else:
        vs.pix_fmt = "yuv420p" if even else "yuv444p"
    if enc == "libx264":
        vs.options = {"crf": "16", "preset": "medium"}
    elif enc in ("libvpx", "libvpx-vp9"):
        vs.options = {"crf": "18", "b": "0"} if enc == "libvpx-vp9" else {"crf": "8", "b": "4M"}
    elif enc in ("mpeg4", "mjpeg"):
        vs.options = {"qscale": "2"}
        vs.codec_context.qmin = 1
    vs.time_base = info.time_base
    vs.codec_context.time_base = info.time_base
    return vs


def write_video(out_path, info: VideoInfo, frames: Iterable[np.ndarray], progress=None) -> Path:
    """Write `frames` (uint8 RGB, upright, info's size) into `out_path` atomically, in the input's
    container, each frame at its input timestamp, with the input's first audio stream copied.
    VideoError when the frame count or a frame's size differs, or encoding fails."""
    av = need_av()
    out_path = Path(out_path)

    def write(tmp: Path) -> None:
        with _open(info.path) as src, av.open(str(tmp), "w", format=info.container) as out:
            vs = _add_video_stream(out, info)
            a_in = src.streams.audio[0] if (info.has_audio and info.container != "gif" and src.streams.audio) else None
            a_out = out.add_stream_from_template(a_in) if a_in is not None else None
            n = 0
            for rgb in frames:
                if n >= info.n_frames:
                    raise VideoError(f"{out_path}: more frames than the input's {info.n_frames}")
                if rgb.shape != (info.height, info.width, 3):
                    raise VideoError(f"{out_path}: frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                     f"not {info.width}x{info.height}")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                vf.pts = int(info.pts[n])
                vf.time_base = info.time_base
                for pkt in vs.encode(vf):
                    out.mux(pkt)
                n += 1
                if progress is not None:
                    progress.update(1)
            for pkt in vs.encode():
                out.mux(pkt)
            if n != info.n_frames:
                raise VideoError(f"{out_path}: wrote {n} frames, the input has {info.n_frames}")
            if a_out is not None:
                for pkt in src.demux(a_in):
                    if pkt.dts is None:
                        continue
                    pkt.stream = a_out
                    out.mux(pkt)

    try:
        return write_atomic(out_path, write)
    except (av.FFmpegError, ValueError) as e:  # ValueError: PyAV refuses a codec/container pairing
        raise VideoError(f"{out_path}: cannot encode ({_why(e)})") from None


def video_summary(path) -> dict:
    """Frame count, fps, size, audio of a video (for reports and tests)."""
    info = probe(path)
    return {"frames": info.n_frames, "fps": float(info.fps), "width": info.width, "height": info.height,
            "audio": info.audio_codec, "codec": info.codec, "vfr": info.vfr}
