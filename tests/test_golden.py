"""Golden outputs: restore (every method and stage switch), degrade and the DSST table are pinned,
so a refactor that changes any of them fails here.

The goldens (tests/fixtures/golden.npz) were recorded on one CPU at 1 thread. On a CPU with the same
SIMD level (torch.backends.cpu.get_cpu_capability()) the outputs must be bit-identical; on another
the float kernels round differently, so there they must agree within 1e-3 (quantised images within 1
grey level). Regenerate deliberately, after a change that is meant to alter outputs:

    DYNFACE_REGEN_GOLDEN=1 python -m pytest -q tests/test_golden.py
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_image
from tiny_models import SIZE, make_tiny_modelset
from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.dsst import calibrate_tau, expected_blur_gap, start_steps
from dynface.core.schedule import Schedule
from dynface.core.sigma_label import sigma_grid
from dynface.modelset.folder import ModelSet
from dynface.pipeline import Restorer, RestoreOptions

GOLDEN = Path(__file__).parent / "fixtures" / "golden.npz"
REGEN = os.environ.get("DYNFACE_REGEN_GOLDEN") == "1"
CASES = {
    "dynface": {},
    "dm_only": dict(dblm=False, n_guidance=1, dsst=False, dgsa=False, refine=False),
    "no_dsst": dict(dsst=False, fixed_start=500),
    "no_dgsa": dict(dgsa=False),
    "no_refine": dict(refine=False),
    "n_guidance_1": dict(n_guidance=1),
    "ddim": dict(eta=0.0),
    "guide_every_2": dict(guide_every=2),
    "rm": dict(method="rm"),
    "bicubic": dict(method="bicubic"),
    "idm": dict(method="idm"),
}


def outputs() -> dict[str, np.ndarray]:
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory() as d:
        restorer = Restorer(ModelSet.load(make_tiny_modelset(Path(d) / "ms")))
        y = torch.cat([smooth_image(SIZE, seed=20), smooth_image(SIZE, seed=21)])
        for name, kw in CASES.items():
            res = restorer.restore(y, RestoreOptions(**{"precision": "fp32", "steps": 3, "seed": 7, **kw}))
            out[f"restore/{name}"] = res.images.numpy()
            if res.sigmas_refined is not None:
                out[f"sigmas/{name}"] = res.sigmas_refined.numpy()
            if res.t_start is not None:
                out[f"t_start/{name}"] = res.t_start.numpy()
    for i, seed in enumerate((0, 1, 12345)):
        x = smooth_image(64, seed=30 + i)
        y, p = degrade_random(x, DegradationConfig(), seed, i)
        out[f"degrade/{seed}"] = y.numpy()
        out[f"degrade_params/{seed}"] = np.array(json.dumps(p.to_dict(), sort_keys=True))
    imgs = torch.cat([smooth_image(SIZE, seed=i) for i in range(4)])
    grid = sigma_grid(0.1, 3.0, 30)
    gap = expected_blur_gap(imgs, grid)
    sched = Schedule.linear()
    tau = calibrate_tau(gap, 0.1, 3.0, grid, sched, 900)
    out["dsst/gap"] = gap.numpy()
    out["dsst/tau"] = np.array(tau)
    out["dsst/tstar"] = start_steps(gap, tau, sched).numpy()
    return out


@pytest.fixture(scope="module")
def current():
    torch.set_num_threads(1)
    return outputs()


def test_outputs_match_the_goldens(current):
    capability = torch.backends.cpu.get_cpu_capability()
    if REGEN:
        GOLDEN.parent.mkdir(exist_ok=True)
        np.savez_compressed(GOLDEN, **current, **{"meta/capability": np.array(capability)})
        pytest.skip(f"goldens regenerated on {capability}")
    gold = np.load(GOLDEN)
    same_cpu = str(gold["meta/capability"]) == capability
    missing = sorted(set(k for k in gold.files if not k.startswith("meta/")) ^ set(current))
    assert not missing, f"cases added or removed: {missing}"
    for k, v in current.items():
        g = gold[k]
        assert v.shape == g.shape and v.dtype == g.dtype, k
        if v.dtype.kind in "US" or k.startswith(("t_start/", "dsst/tstar")):
            assert np.array_equal(v, g), k
        elif same_cpu:
            assert np.array_equal(v, g), f"{k}: not bit-identical on the CPU the goldens came from"
        else:
            assert np.allclose(v, g, atol=1e-3, rtol=0), f"{k}: max diff {np.abs(v - g).max():.2e}"


def test_golden_cases_differ_from_each_other(current):
    """The switches really change the output (a pinned case that equals another pins nothing new)."""
    ref = current["restore/dynface"]
    for name in CASES:
        if name != "dynface":
            assert not np.array_equal(current[f"restore/{name}"], ref), name
