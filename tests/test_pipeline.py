"""The DynFaceRestore pipeline on a tiny random model set: determinism and stage switches."""
import pytest
import torch

from conftest import smooth_image
from tiny_models import SIZE, make_tiny_modelset
from dynface.modelset.folder import ModelError, ModelSet
from dynface.pipeline import Restorer, RestoreOptions


@pytest.fixture(scope="module")
def restorer(tmp_path_factory):
    return Restorer(ModelSet.load(make_tiny_modelset(tmp_path_factory.mktemp("ms"))))


@pytest.fixture(scope="module")
def y():
    return torch.cat([smooth_image(SIZE, seed=10), smooth_image(SIZE, seed=11)])


def run(restorer, y, **kw):
    return restorer.restore(y, RestoreOptions(**{"precision": "fp32", **kw}))


def test_same_seed_same_output_and_seed_matters(restorer, y):
    a, b, c = run(restorer, y, seed=1), run(restorer, y, seed=1), run(restorer, y, seed=2)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == y.shape and a.images.abs().max() <= 1


def test_dsst_switch_changes_only_the_start(restorer, y):
    on = run(restorer, y)
    off = run(restorer, y, dsst=False, fixed_start=500)
    d = restorer.models.nets["dsst"]
    assert torch.equal(on.t_start, d.lookup(on.sigma_hat))
    assert torch.equal(off.t_start, torch.tensor([500, 500]))
    assert torch.equal(on.sigma_hat, off.sigma_hat)


def test_refine_switch(restorer, y):
    on = run(restorer, y, refine=True, sigma_lr=0.05)
    off = run(restorer, y, refine=False, sigma_lr=0.05)
    from dynface.core.dblm import guidance_sigmas

    init = guidance_sigmas(on.sigma_hat, 3, 0.3, 0.1)
    assert torch.allclose(off.sigmas_refined, init)
    assert not torch.allclose(on.sigmas_refined, init)


def test_dgsa_switch_and_identity_dgsa_equals_off(tmp_path, y):
    r_id = Restorer(ModelSet.load(make_tiny_modelset(tmp_path / "id", dgsa_identity=True)))
    on, off = run(r_id, y, dgsa=True), run(r_id, y, dgsa=False)
    assert torch.equal(on.images, off.images)  # M = 1 everywhere is plain guidance
    r = Restorer(ModelSet.load(make_tiny_modelset(tmp_path / "rnd")))
    assert not torch.equal(run(r, y, dgsa=True).images, run(r, y, dgsa=False).images)


def test_n_guidance_and_dblm_switch(restorer, y):
    a1, a3 = run(restorer, y, n_guidance=1), run(restorer, y, n_guidance=3)
    assert a1.sigmas_refined.shape[0] == 1 and a3.sigmas_refined.shape[0] == 3
    assert not torch.equal(a1.images, a3.images)
    dm = run(restorer, y, dblm=False)
    assert torch.allclose(dm.sigma_hat, torch.tensor([1.0, 1.0]))  # the set's dm_sigma, no SE
    assert "rm" not in dm.seconds


def test_rm_only_and_bicubic(restorer, y):
    rm = run(restorer, y, method="rm")
    with torch.no_grad():
        assert torch.allclose(rm.images, restorer.models.nets["rm"](y).clamp(-1, 1))
    assert torch.equal(run(restorer, y, method="bicubic").images, y)


def test_flip_average_is_mirror_equivariant(restorer, y):
    """The flip-averaged RM is the mean of the network on the face and on its mirror (mirrored back),
    so mirroring the input mirrors the output exactly, which the plain random network does not."""
    net = restorer.models.nets["rm"]
    avg = run(restorer, y, method="rm", flip_average=True).images
    with torch.no_grad():
        want = (0.5 * (net(y).float() + net(y.flip(-1)).float().flip(-1))).clamp(-1, 1)
    assert torch.allclose(avg, want, atol=1e-6)
    mirrored = run(restorer, y.flip(-1), method="rm", flip_average=True).images
    assert torch.allclose(mirrored, avg.flip(-1), atol=1e-6)
    plain = run(restorer, y, method="rm").images
    assert not torch.allclose(run(restorer, y.flip(-1), method="rm").images, plain.flip(-1), atol=1e-4)
    full, full_avg = run(restorer, y), run(restorer, y, flip_average=True)  # the guided chain starts from it
    assert not torch.equal(full.images, full_avg.images)


def test_missing_stage_is_a_clear_error(tmp_path, y):
    root = make_tiny_modelset(tmp_path / "nodgsa")
    (root / "dgsa.safetensors").unlink()
    r = Restorer(ModelSet.load(root))
    with pytest.raises(ModelError, match="dgsa"):
        run(r, y, dgsa=True)
    assert run(r, y, dgsa=False).images.shape == y.shape


def test_steps_count_network_evaluations(restorer, y):
    res = run(restorer, y[:1], steps=3)
    assert res.nfe == 3


def test_default_steps_depend_on_the_method(tmp_path, y):
    """steps=None: the manifest's `steps` for the guided chain, its `idm_steps` for IDM; a given
    count wins for both."""
    r = Restorer(ModelSet.load(make_tiny_modelset(tmp_path / "ms", defaults={"steps": 2, "idm_steps": 3})))
    assert (run(r, y[:1]).nfe, run(r, y[:1], method="idm").nfe) == (2, 3)
    assert run(r, y[:1], method="idm", steps=4).nfe == 4


def test_bench_steps_group_runs_the_full_method_at_each_count(restorer, y):
    """`dynface bench --settings steps`: one full-method row per step count, in order, and the row's
    options give that many network evaluations; an unknown name is refused with the group list."""
    from dataclasses import replace
    from dynface.jobs.ablation import setting_names

    rows = setting_names(restorer, ["steps"])
    assert [n for n, _ in rows] == ["steps=25", "steps=50", "steps=100"]
    res = restorer.restore(y[:1], replace(RestoreOptions(precision="fp32"), **rows[0][1]))
    assert res.nfe == 25
    assert [n for n, _ in setting_names(restorer, ["RM only", "steps=50"])] == ["RM only", "steps=50"]
    with pytest.raises(ValueError, match="groups: ablation, fidelity, steps, eta"):
        setting_names(restorer, ["steps=30"])


def test_bench_eta_group_runs_the_full_method_with_ddim_to_ancestral_steps(restorer, y):
    """`dynface bench --settings eta`: rows eta=0 (DDIM), 0.5 and 1 (ancestral, the default); the
    row's eta reaches the sampler (a different output) and a seeded row repeats."""
    from dataclasses import replace
    from dynface.jobs.ablation import setting_names

    rows = setting_names(restorer, ["eta"])
    assert [n for n, _ in rows] == ["eta=0", "eta=0.5", "eta=1"]
    base = RestoreOptions(precision="fp32", steps=3)
    ddim, ancestral = (restorer.restore(y[:1], replace(base, **rows[k][1])).images for k in (0, 2))
    assert not torch.equal(ddim, ancestral)
    assert torch.equal(ddim, restorer.restore(y[:1], replace(base, **rows[0][1])).images)


def test_bench_dgsa_group_is_the_default_with_the_map_switched_off(restorer, y):
    """`dynface bench --settings dgsa`: one row, the default (the set's own fidelity) without DGSA's
    per-pixel map; its output is the `--no-dgsa` restore's and differs from the default's."""
    from dynface.jobs.ablation import setting_names

    rows = setting_names(restorer, ["dgsa"])
    assert [n for n, _ in rows] == ["default without DGSA"] and "fidelity" not in rows[0][1]
    off = run(restorer, y[:1], steps=3, **rows[0][1]).images
    assert torch.equal(off, run(restorer, y[:1], steps=3, dgsa=False).images)
    assert not torch.equal(off, run(restorer, y[:1], steps=3).images)


def test_bench_ablation_runs_at_the_papers_setting_and_default_at_the_sets(restorer):
    """The ablation rows (paper Table 3) pin fidelity to the method's own setting, so a model set's
    preset fidelity cannot shift their guidance count; the "default" row leaves it to the set."""
    from dynface.core.fidelity_control import FIDELITY_DEFAULT
    from dynface.jobs.ablation import setting_names

    rows = dict(setting_names(restorer))
    assert list(rows)[:2] == ["input", "RM only"] and "default" in rows
    for name in ("DM only", "+DBLM", "+multi", "+DSST", "+DGSA (full)"):
        assert rows[name]["fidelity"] == FIDELITY_DEFAULT
    assert "fidelity" not in rows["default"]


def test_untrained_x0_residual_idm_returns_its_condition(restorer, y):
    """Known answer: an IDM whose output layer is zero predicts x0 = y at every step, so the whole
    ancestral chain (shared sampler, respaced) must end exactly at the degraded input."""
    for steps in (3, 10):
        res = run(restorer, y, method="idm", steps=steps, seed=5)
        assert res.nfe == steps * 1 and torch.allclose(res.images, y, atol=1e-4)


def test_channels_last_gives_the_same_restoration(restorer, y):
    a = run(restorer, y, seed=3, precision="fp32")
    b = run(restorer, y, seed=3, precision="fp32", channels_last=True)
    c = run(restorer, y, seed=3, precision="fp32")  # switching back restores the contiguous layout
    assert torch.allclose(a.images, b.images, atol=1e-4)
    assert torch.equal(a.images, c.images)


def test_stage_seconds_do_not_overlap(restorer, y):
    """The per-stage breakdown of the speed benchmark adds up to no more than the total."""
    res = run(restorer, y, seed=1)
    parts = {k: v for k, v in res.seconds.items() if k != "total"}
    assert {"rm", "se", "dsst", "sample_unet_forward", "sample_backward", "sample_dgsa", "sample_other"} <= set(parts)
    assert all(v >= 0 for v in parts.values())
    assert sum(parts.values()) <= res.seconds["total"] * 1.001 + 1e-4
