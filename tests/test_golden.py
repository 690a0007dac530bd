"""Golden outputs: restore (every method and stage switch), degrade and the DSST table are pinned,
so a refactor that changes any of them fails here.

The goldens (tests/fixtures/golden.npz) were recorded on one CPU at 1 thread. On the same CPU (torch's
SIMD level, and the model and SIMD flags of `dynface info`: two CPUs at one torch level can run other
oneDNN kernels, e.g. with AMX or without) the outputs must be bit-identical; on another the float
kernels round differently, so there they must agree within 1e-3 (quantised images within 1 grey
level). Each pinned output is its own test case, so one run reports every key that moved. Regenerate
deliberately, after a change that is meant to alter outputs (all files, or the ones named):

    DYNFACE_REGEN_GOLDEN=1 python -m pytest -q tests/test_golden.py
    DYNFACE_REGEN_GOLDEN=golden_options.npz python -m pytest -q tests/test_golden.py
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
GOLDEN_OPTIONS = Path(__file__).parent / "fixtures" / "golden_options.npz"  # --samples, --fidelity, --channels-last
REGEN = os.environ.get("DYNFACE_REGEN_GOLDEN", "")  # "1": every file; else the names of the files to rewrite
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
OPTION_CASES = {
    "samples_2": dict(samples=2),
    "fidelity_0.25": dict(fidelity=0.25),
    "fidelity_1": dict(fidelity=1.0),
    "channels_last": dict(channels_last=True),
}


def _restore_outputs(restorer, y, cases: dict) -> dict[str, np.ndarray]:
    out = {}
    for name, kw in cases.items():
        res = restorer.restore(y, RestoreOptions(**{"precision": "fp32", "steps": 3, "seed": 7, **kw}))
        out[f"restore/{name}"] = res.images.numpy()
        if res.samples is not None:
            out[f"samples/{name}"] = res.samples.numpy()
        if res.sigmas_refined is not None:
            out[f"sigmas/{name}"] = res.sigmas_refined.numpy()
        if res.t_start is not None:
            out[f"t_start/{name}"] = res.t_start.numpy()
    return out


def outputs() -> dict[Path, dict[str, np.ndarray]]:
    """Every pinned output, by the fixture file that pins it."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        restorer = Restorer(ModelSet.load(make_tiny_modelset(Path(d) / "ms")))
        y = torch.cat([smooth_image(SIZE, seed=20), smooth_image(SIZE, seed=21)])
        out = _restore_outputs(restorer, y, CASES)
        options = _restore_outputs(restorer, y, OPTION_CASES)
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
    return {GOLDEN: out, GOLDEN_OPTIONS: options}


def _pinned(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(k for k in np.load(path).files if not k.startswith("meta/"))


PINNED = [(path, key) for path in (GOLDEN, GOLDEN_OPTIONS) for key in _pinned(path)]


def recording_cpu() -> str:
    """What a golden file records of the CPU it came from, and what must match for bit-identity."""
    from dynface.core.hardware import cpu_summary

    return f"{torch.backends.cpu.get_cpu_capability()} {cpu_summary()}"


@pytest.fixture(scope="module")
def current():
    torch.set_num_threads(1)
    out = outputs()
    capability = recording_cpu()
    for path, values in out.items():
        if REGEN == "1" or path.name in REGEN.split(","):
            path.parent.mkdir(exist_ok=True)
            np.savez_compressed(path, **values, **{"meta/capability": np.array(capability)})
    if REGEN:
        pytest.skip(f"goldens regenerated on {capability}: {REGEN}")
    return out


def test_no_golden_case_added_or_removed(current):
    for path, values in current.items():
        changed = sorted(set(_pinned(path)) ^ set(values))
        assert not changed, f"{path.name}: cases added or removed: {changed}"


@pytest.mark.parametrize("path, key", PINNED, ids=[f"{p.stem}:{k}" for p, k in PINNED])
def test_output_matches_its_golden(current, path, key):
    """Each pinned output on its own: bit-identical on the CPU the goldens came from (same SIMD level),
    within 1e-3 elsewhere; strings, start steps and DSST steps exactly."""
    gold = np.load(path)
    v, g = current[path][key], gold[key]
    assert v.shape == g.shape and v.dtype == g.dtype, key
    if v.dtype.kind in "US" or key.startswith(("t_start/", "dsst/tstar")):
        assert np.array_equal(v, g), key
    elif str(gold["meta/capability"]) == recording_cpu():
        assert np.array_equal(v, g), f"{key}: not bit-identical on the CPU the goldens came from"
    else:
        assert np.allclose(v, g, atol=1e-3, rtol=0), f"{key}: max diff {np.abs(v - g).max():.2e}"


def test_golden_cases_differ_from_each_other(current):
    """The switches really change the output (a pinned case that equals another pins nothing new);
    channels_last changes the memory layout only, so it must give the default output up to rounding."""
    base, options = current[GOLDEN], current[GOLDEN_OPTIONS]
    ref = base["restore/dynface"]
    for name in CASES:
        if name != "dynface":
            assert not np.array_equal(base[f"restore/{name}"], ref), name
    for name in ("fidelity_0.25", "fidelity_1"):
        assert not np.array_equal(options[f"restore/{name}"], ref), name
    assert options["samples/samples_2"].shape[0] == 2
    assert np.array_equal(options["restore/samples_2"], options["samples/samples_2"][0])
    assert not np.array_equal(options["samples/samples_2"][0], options["samples/samples_2"][1])
    assert np.allclose(options["restore/channels_last"], ref, atol=1e-3, rtol=0)
