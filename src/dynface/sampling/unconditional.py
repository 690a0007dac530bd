"""Unconditional samples of a face prior: what the prior knows, without a measurement.

Sample k of seed s starts from its own noise stream (a generator seeded with (s, k)), so a sample
does not depend on the batch it was drawn in, and the chain (chain.sample, Eq. 6) runs `steps`
respaced network evaluations from T-1 down to 0: ancestral DDPM (eta 1) or DDIM (eta 0).
"""
from __future__ import annotations

import torch

from dynface.core.schedule import Schedule, space_timesteps
from dynface.sampling.chain import sample
from dynface.sampling.denoiser import Denoiser


SAMPLE_STEPS = 25  # ancestral steps: on the embedded prior, KID of its samples rises with more (docs/quality.md)


def stream_seed(seed: int, k: int) -> int:
    """The noise-stream seed of sample k of run `seed` (a 63-bit mix of the pair)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(k) * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


@torch.no_grad()
def sample_prior(net, size: int, indices, steps: int = SAMPLE_STEPS, *, seed: int = 0, eta: float = 1.0,
                 precision: str = "fp32", schedule: Schedule | None = None, device="cpu") -> torch.Tensor:
    """Samples `indices` (a list of ints) of run `seed`: (len, 3, size, size) in [-1, 1]."""
    schedule = schedule or Schedule.linear()
    indices = list(indices)
    gens = [torch.Generator().manual_seed(stream_seed(seed, k)) for k in indices]
    x = torch.cat([torch.randn((1, 3, size, size), generator=g) for g in gens]).to(device)
    timesteps = space_timesteps(schedule.num_steps, steps)
    return sample(Denoiser(net, precision), x, timesteps, schedule, eta=eta, generator=gens).clamp(-1, 1).cpu()
