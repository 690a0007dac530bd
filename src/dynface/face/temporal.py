"""Temporal blending of a track's restored faces in aligned-crop space.

A track's face at frame t is restored in its aligned crop: the photo -> crop map M_t, made from
the track's smoothed landmarks, already undoes the face's motion, so a face point sits at the same
crop pixel in every frame. The previous frame's result S_{t-1} (the track's state, a crop) is
therefore blended in where it is, without warping by the landmarks; with `flow=True` (the default
of the video job) a Farneback optical flow from this frame's restored face to S_{t-1} first moves
S_{t-1} onto it, which undoes what the similarity cannot (landmark error, expression, out-of-plane
turns; measured in docs/video.md: without it the blend costs 1 dB PSNR, with it it gains 0.5 dB):

    d      = |GaussianBlur(R_t - S_{t-1})|          (the low-passed disagreement, grey levels)
    w      = alpha * clip(1 - d / tau, 0, 1)        (0 where the face really changed: mouth, blink, occlusion)
    S_t    = R_t + w (S_{t-1} - R_t)

The blur removes the per-frame invented detail and noise from d, so those are averaged away
(a recursive mean over about (1 + alpha) / (1 - alpha) frames), while a change that spans many
pixels stops the blending there.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["blend_state", "flow_align"]


def flow_align(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """`prev` moved onto `cur` by a dense Farneback flow (grey images)."""
    g0 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = g0.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(prev, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def blend_state(restored: np.ndarray, state: np.ndarray | None, *, alpha: float = 0.65, tau: float = 32.0,
                flow: bool = True) -> np.ndarray:
    """The new state S_t (uint8 crop) from this frame's restored crop and the previous state (module doc).
    `state` None (a track's first frame) or alpha 0: the restored crop itself."""
    if state is None or alpha <= 0:
        return restored
    h, w = restored.shape[:2]
    if state.shape[:2] != (h, w):
        state = cv2.resize(state, (w, h), interpolation=cv2.INTER_CUBIC)
    if flow:
        state = flow_align(restored, state)
    cur = restored.astype(np.float32)
    prev = state.astype(np.float32)
    sig = max(1.0, w / 32.0)
    d = np.abs(cv2.GaussianBlur(cur - prev, (0, 0), sig)).mean(axis=2)
    wgt = alpha * np.clip(1.0 - d / tau, 0.0, 1.0)
    out = cur + wgt[..., None] * (prev - cur)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
