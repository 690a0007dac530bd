"""The fidelity knob w in [0, 1]: one number mapped onto DynFaceRestore's own guidance controls.

w = 1 keeps the result as close to the restoration network's output RM(y) as the method allows;
w = 0 gives the diffusion prior the most freedom; w = FIDELITY_DEFAULT (0.5) is the method's
default setting and reproduces the output without the knob bit for bit. With d = 2w - 1 in [-1, 1]:

    trust level   sigma_i <- sigma_i * SIGMA_SPAN**(-d)         Eq. 8/15: y_i = k_sigma_i (x) RM(y)
                  (and t* = DSST(sigma_1) follows it)           Eq. 11: the start step shifts within
                                                                the DSST table's own range
    guidance      zeta    <- zeta * ZETA_SPAN**d                Eq. 5/12: the guidance step
    guidances     N       <- clamp(N + round(2 d), 1, 4)        Eq. 15: more guidance, more fidelity

The DGSA map M of Eq. 12 keeps its learned per-pixel shape; zeta scales it as a whole. (A floor
M <- f + (1 - f) M rising to M = 1 at w = 1 was tried and lowered PSNR: docs/fidelity.md.)

Every control is relative to the options it modulates (the model set's zeta, the user's N), so
w = FIDELITY_DEFAULT changes nothing. The mapping is documented in docs/fidelity.md with its measured effect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

FIDELITY_DEFAULT = 0.5   # the paper's setting: the model set's sigma_hat, zeta, N and DGSA map unchanged
SIGMA_SPAN = 2.0         # w = 0 trusts RM only at 2x the estimated blur level, w = 1 at half of it
ZETA_SPAN = 2.0          # w = 0 halves the guidance scale, w = 1 doubles it
N_SPAN = 2               # guidances added (w = 1) or removed (w = 0) around the default N


@dataclass(frozen=True)
class FidelityControls:
    """What one w does to the method's controls."""

    w: float
    sigma_scale: float   # multiplies every guidance sigma (and so moves the DSST start step)
    zeta_scale: float    # multiplies the guidance scale zeta
    n_shift: int         # added to the number of guidances N (result clamped to 1..4)

    def n_guidance(self, n: int) -> int:
        return min(4, max(1, int(n) + self.n_shift))


def check_fidelity(w) -> float:
    """w as a float, or ValueError with one line if it is not a number in [0, 1]."""
    try:
        v = float(w)
    except (TypeError, ValueError):
        raise ValueError(f"fidelity must be a number in [0, 1], got {w!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"fidelity must be a number in [0, 1], got {w!r}")
    return v


def fidelity_controls(w: float | None) -> FidelityControls:
    """The controls of fidelity w (None = FIDELITY_DEFAULT); see the module docstring."""
    w = FIDELITY_DEFAULT if w is None else check_fidelity(w)
    d = (w - FIDELITY_DEFAULT) / ((1.0 - FIDELITY_DEFAULT) if w >= FIDELITY_DEFAULT else FIDELITY_DEFAULT)
    return FidelityControls(w=w, sigma_scale=SIGMA_SPAN ** (-d), zeta_scale=ZETA_SPAN ** d,
                            n_shift=int(round(N_SPAN * d)))
