"""The page's examples: a few clean faces, degraded at run time.

The clean faces are three of the Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0,
doi 10.6084/m9.figshare.5047666.v5), 512x512 FFHQ-aligned JPEGs, read from `examples_dir()`:
$DYNFACE_EXAMPLES_DIR, else the `data/london` folder of the `shared` folder beside a source
checkout. No face image ships in the package; without that folder the page has no examples row.
Each face is degraded with dynface's own seeded degradation (`core.degradation.degrade`, fixed
parameters and seed), so the examples are the same on every start. No Gradio here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dynface.core.degradation import DegradationParams, degrade, make_rng
from dynface.core.imageio import read_rgb, to_tensor, to_uint8, write_image

EXAMPLES_ENV = "DYNFACE_EXAMPLES_DIR"
#: the London Set folder beside a source checkout (src/dynface/web -> the checkout's parent)
CHECKOUT_LONDON = Path(__file__).resolve().parents[4] / "shared" / "data" / "london"
ATTRIBUTION = ("Example faces: Face Research Lab London Set (DeBruine & Jones 2017), CC BY 4.0, "
               "doi:10.6084/m9.figshare.5047666.v5; degraded on this machine by dynface's own degradation.")
ATTRIBUTION_URL = "https://doi.org/10.6084/m9.figshare.5047666.v5"
SEED = 0


@dataclass(frozen=True)
class ExampleSpec:
    source: str                 # file in examples_dir()
    caption: str
    params: DegradationParams   # at 512x512 (sigma and r in pixels, noise on 0..255, JPEG quality)


SPECS = (
    ExampleSpec("smiling_005_08.jpg", "blurred, noisy", DegradationParams(sigma=8.0, scale=6.0, noise=10.0, jpeg=50)),
    ExampleSpec("smiling_025_08.jpg", "low resolution", DegradationParams(sigma=4.0, scale=12.0, noise=8.0, jpeg=50)),
    ExampleSpec("smiling_021_08.jpg", "very blurred", DegradationParams(sigma=12.0, scale=8.0, noise=15.0,
                                                                               jpeg=40)),
)


@dataclass(frozen=True)
class Example:
    path: Path                  # the degraded face (PNG, aligned crop)
    caption: str


def examples_dir() -> Path | None:
    """Where the clean example faces are: $DYNFACE_EXAMPLES_DIR, else the checkout's London Set, else None."""
    d = Path(os.environ[EXAMPLES_ENV]) if os.environ.get(EXAMPLES_ENV) else CHECKOUT_LONDON
    return d if d.is_dir() else None


def make_examples(out_dir: str | Path, specs=SPECS) -> list[Example]:
    """Degrade every spec's clean face into `out_dir` (`<source stem>_<caption>.png`); skips a missing
    source (and makes none without an examples folder)."""
    out_dir = Path(out_dir)
    out = []
    folder = examples_dir()
    if folder is None:
        return out
    for i, spec in enumerate(specs):
        src = folder / spec.source
        if not src.is_file():
            continue
        y = degrade(to_tensor(read_rgb(src)), spec.params, make_rng(SEED, i))
        path = write_image(out_dir / f"example_{i + 1}_{Path(spec.source).stem}.png", to_uint8(y))
        out.append(Example(path, spec.caption))
    return out
