"""Face tracks across the frames of a clip, and landmarks smoothed along each track.

    cuts = find_cuts(thumbnails)                         # shot boundaries
    tracks = build_tracks(detections, cuts)              # detections: per frame, a list of Face
    for tr in tracks: tr.smooth(sigma=3.0)               # tr.landmarks -> tr.smoothed

Association: a detection continues the track whose last box overlaps it most (IoU >= `iou_min`,
greedy, largest overlap first), if that track was seen at most `max_gap` frames earlier and no cut
lies between; otherwise it starts a new track. A track never crosses a cut. Frames a track misses
inside a gap get interpolated landmarks (the face is still restored there, so it does not blink).

Smoothing is offline (the whole track is known): at every frame a quadratic is fitted to the
track's landmarks with Gaussian weights over time (std `sigma` frames), and its value at that
frame is the smoothed landmark. A quadratic follows steady motion and acceleration without lag,
so only the detector's frame-to-frame jitter is removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from dynface.face.detect import Face

__all__ = ["Track", "build_tracks", "find_cuts", "thumbnail", "smooth_series", "box_iou"]


@dataclass
class Track:
    id: int
    frames: list[int] = field(default_factory=list)        # consecutive frame indices (gaps filled)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)      # 0 for an interpolated frame
    smoothed: np.ndarray | None = None                      # (n, 5, 2) after smooth()

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def __len__(self) -> int:
        return len(self.frames)

    def size(self) -> float:
        """Median shorter box side over the track (min_face compares with it)."""
        b = np.asarray(self.boxes)
        return float(np.median(np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))

    def add(self, frame: int, face: Face) -> None:
        if self.frames and frame > self.last + 1:  # a gap: interpolate the frames in between
            n = frame - self.last
            for k in range(1, n):
                w = k / n
                self.frames.append(self.last + 1)
                self.boxes.append((1 - w) * self._b0 + w * face.box)
                self.landmarks.append((1 - w) * self._l0 + w * face.landmarks)
                self.scores.append(0.0)
        self.frames.append(frame)
        self.boxes.append(np.asarray(face.box, np.float64).copy())
        self.landmarks.append(np.asarray(face.landmarks, np.float64).copy())
        self.scores.append(float(face.score))
        self._b0, self._l0 = self.boxes[-1], self.landmarks[-1]

    def smooth(self, sigma: float) -> np.ndarray:
        pts = np.asarray(self.landmarks, np.float64)
        self.smoothed = smooth_series(pts.reshape(len(pts), -1), sigma).reshape(pts.shape)
        return self.smoothed

    def at(self, frame: int) -> np.ndarray:
        """The (smoothed, if smooth() ran) landmarks at `frame`."""
        i = frame - self.first
        src = self.smoothed if self.smoothed is not None else np.asarray(self.landmarks)
        return src[i]

    def to_dict(self) -> dict:
        return {"id": self.id, "first": self.first, "last": self.last,
                "boxes": [[round(float(v), 3) for v in b] for b in self.boxes],
                "landmarks": [[[round(float(x), 3), round(float(y), 3)] for x, y in p] for p in self.landmarks],
                "scores": [round(s, 4) for s in self.scores]}


def box_iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


def build_tracks(detections: list[list[Face]], cuts=(), *, iou_min: float = 0.3, max_gap: int = 2) -> list[Track]:
    """Link per-frame detections into tracks (module doc). Tracks are numbered in order of appearance."""
    cuts = set(int(c) for c in cuts)
    tracks: list[Track] = []
    active: list[Track] = []
    for t, faces in enumerate(detections):
        if t in cuts:
            active = []
        active = [tr for tr in active if t - tr.last <= max_gap + 1]
        pairs = sorted(((box_iou(tr.boxes[-1], f.box), i, j) for i, tr in enumerate(active)
                        for j, f in enumerate(faces)), key=lambda p: (-p[0], p[1], p[2]))
        used_t, used_f = set(), set()
        for iou, i, j in pairs:
            if iou < iou_min:
                break
            if i in used_t or j in used_f:
                continue
            used_t.add(i)
            used_f.add(j)
            active[i].add(t, faces[j])
        for j, f in enumerate(faces):
            if j not in used_f:
                tr = Track(id=len(tracks))
                tr.add(t, f)
                tracks.append(tr)
                active.append(tr)
    return tracks


def smooth_series(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local quadratic regression of (n, d) values along axis 0 (module doc);
    sigma <= 0 or fewer than 3 values: unchanged."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if sigma <= 0 or n < 3:
        return x.copy()
    r = int(np.ceil(3 * sigma))
    out = np.empty_like(x)
    for i in range(n):
        lo, hi = max(0, i - r), min(n, i + r + 1)
        dt = np.arange(lo, hi, dtype=np.float64) - i
        w = np.exp(-0.5 * (dt / sigma) ** 2)
        deg = 2 if hi - lo >= 5 else 1
        V = np.vander(dt, deg + 1, increasing=True)          # 1, dt, dt^2
        sw = np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(V * sw, x[lo:hi] * sw, rcond=None)
        out[i] = coef[0]                                      # the fit's value at dt = 0
    return out


def thumbnail(rgb: np.ndarray, size: int = 32) -> np.ndarray:
    """A small grayscale copy of a frame for cut detection (uint8, size x size)."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)


def find_cuts(thumbs: list[np.ndarray], hist_threshold: float = 0.25, diff_threshold: float = 25.0) -> list[int]:
    """Frames that start a new shot: the 16-bin brightness histogram moves by more than
    `hist_threshold` (L1 of normalised histograms, 0..2) and the thumbnails differ by more than
    `diff_threshold` grey levels on average. Camera motion changes the thumbnail but hardly the
    histogram; a fade changes both slowly, one frame at a time."""
    cuts = []
    prev_h = prev_t = None
    for i, th in enumerate(thumbs):
        h = np.histogram(th, bins=16, range=(0, 256))[0].astype(np.float64)
        h /= max(h.sum(), 1)
        if prev_h is not None:
            if np.abs(h - prev_h).sum() > hist_threshold and np.abs(th.astype(np.float64) - prev_t).mean() > diff_threshold:
                cuts.append(i)
        prev_h, prev_t = h, th.astype(np.float64)
    return cuts
