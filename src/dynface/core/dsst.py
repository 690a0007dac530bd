"""Dynamic Starting Step lookup Table (paper Eq. 11 / 23, docs/method.md §4).

    t*(sigma) = min { t : sqrt(abar_t) D(sigma) <= tau sqrt(1 - abar_t) },
    D(sigma)  = E_x RMS(x - k_sigma (x) x)      over training faces x in [-1, 1].

A clean face and its blurred copy become indistinguishable (to tolerance tau) once both are
diffused to t*, so the sampler starts there from the guidance. The table is built once on the
grid, saved as JSON beside the weights, and looked up with sigma rounded to the grid.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dynface.core.kernels import gaussian_blur
from dynface.core.schedule import Schedule


def expected_blur_gap(images: torch.Tensor, grid: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """D(sigma) on the grid: mean over images of RMS(x - k_sigma x); images (N, 3, H, W) in [-1, 1]."""
    out = torch.zeros(len(grid), dtype=torch.float64)
    for i, s in enumerate(grid):
        acc = 0.0
        for xb in images.split(chunk):
            xb = xb.float()
            acc += (xb - gaussian_blur(xb, float(s))).pow(2).mean(dim=(1, 2, 3)).sqrt().sum().item()
        out[i] = acc / len(images)
    return out


def start_steps(gap: torch.Tensor, tau: float, schedule: Schedule) -> torch.Tensor:
    """Eq. 11: the smallest t with sqrt(abar_t) D <= tau sqrt(1 - abar_t), per grid entry."""
    ab = schedule.alphas_cumprod
    ok = ab.sqrt()[None, :] * gap[:, None] <= tau * (1 - ab).sqrt()[None, :]  # (S, T), monotone in t
    first = ok.float().argmax(dim=1)
    return torch.where(ok.any(dim=1), first, torch.full_like(first, schedule.num_steps - 1))


def calibrate_tau(gap: torch.Tensor, sigma_lo: float, sigma_hi: float, grid: torch.Tensor, schedule: Schedule,
                  t_hi: int = 925) -> float:
    """tau such that t*(sigma_hi) = t_hi (the paper's largest reported start step, docs/method.md §4)."""
    i = int((grid - sigma_hi).abs().argmin())
    ab = schedule.alphas_cumprod[t_hi]
    return float(ab.sqrt() * gap[i] / (1 - ab).sqrt()) * 1.0001


@dataclass
class DSST:
    grid: torch.Tensor      # (S,) sigmas
    gap: torch.Tensor       # (S,) D(sigma)
    tstar: torch.Tensor     # (S,) start steps
    tau: float
    num_steps: int = 1000

    @classmethod
    def build(cls, images: torch.Tensor, grid: torch.Tensor, tau: float, schedule: Schedule | None = None) -> "DSST":
        schedule = schedule or Schedule.linear()
        gap = expected_blur_gap(images, grid)
        return cls(grid.clone(), gap, start_steps(gap, tau, schedule), float(tau), schedule.num_steps)

    def lookup(self, sigma) -> torch.Tensor:
        """t* for sigma(s), sigma rounded to the nearest grid entry ("equalised")."""
        s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1, 1).cpu()  # a CPU table
        idx = (s - self.grid.float()[None]).abs().argmin(dim=1)
        return self.tstar[idx].long()

    def save(self, path) -> Path:
        path = Path(path)
        from dynface.core.atomic import write_bytes

        write_bytes(path, json.dumps({"grid": self.grid.tolist(), "gap": self.gap.tolist(), "tstar": self.tstar.tolist(),
                                    "tau": self.tau, "num_steps": self.num_steps,
                                    "rule": "t*(s) = min{t: sqrt(abar_t) D(s) <= tau sqrt(1-abar_t)}"}, indent=1).encode())
        return path

    @classmethod
    def load(cls, path) -> "DSST":
        d = json.loads(Path(path).read_text())
        return cls(torch.tensor(d["grid"]), torch.tensor(d["gap"], dtype=torch.float64),
                   torch.tensor(d["tstar"], dtype=torch.long), float(d["tau"]), int(d.get("num_steps", 1000)))
