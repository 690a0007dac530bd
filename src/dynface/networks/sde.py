"""Std-deviation estimator SDE (supplement Tab. 4): reads a Gaussian-blurred face, returns its sigma."""
from __future__ import annotations

import torch
import torch.nn as nn


def _cbl(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


class SDE(nn.Module):
    """conv(3-64) conv(64-64) conv(64-128,s2) conv(128-128) conv(128-256,s2) conv(256-256), each BN+LReLU;
    global average pool; Linear 256-256, LReLU, Linear 256-256, Linear 256-1.

    The head predicts sigma / sigma_max; forward returns sigma in pixels, clamped to [sigma_min, sigma_max].
    """

    def __init__(self, sigma_min: float = 0.1, sigma_max: float = 15.0, width: int = 64):
        super().__init__()
        w = width
        self.features = nn.Sequential(*_cbl(3, w), *_cbl(w, w), *_cbl(w, 2 * w, 2), *_cbl(2 * w, 2 * w),
                                      *_cbl(2 * w, 4 * w, 2), *_cbl(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(4 * w, 4 * w), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(4 * w, 4 * w), nn.Linear(4 * w, 1))
        self.register_buffer("sigma_range", torch.tensor([float(sigma_min), float(sigma_max)]))

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """sigma / sigma_max, unclamped (the training target of Eq. 20-22), shape (B,)."""
        return self.head(self.features(x)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.sigma_range[0], self.sigma_range[1]
        return (self.normalized(x) * hi).clamp(lo, hi)
