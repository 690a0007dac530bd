"""The RM's detail losses: Inception feature loss, PatchGAN critic, crop training."""
from __future__ import annotations

import pytest
import torch

from conftest import rm_config, shipped_rm, smooth_image
from tiny_models import SIZE
from dynface.core.kernels import gaussian_blur
from dynface.modelset.weights import load_torch_file
from dynface.training.adversarial import Adversary, patch_critic
from dynface.training.loop import build_adversary, train


def test_feature_loss_is_zero_on_equal_images_and_grows_with_blur():
    from dynface.training.feature_loss import inception_feature_loss

    x = smooth_image(64, seed=3)
    assert float(inception_feature_loss(x, x)) == 0.0
    losses = [float(inception_feature_loss(gaussian_blur(x, torch.tensor([s])), x)) for s in (0.5, 1.5, 3.0)]
    assert 0 < losses[0] < losses[1] < losses[2]


def test_feature_loss_refuses_images_below_its_receptive_field():
    from dynface.training.feature_loss import MIN_SIDE, inception_feature_loss

    x = smooth_image(MIN_SIDE - 2, seed=5)
    with pytest.raises(ValueError, match="at least"):
        inception_feature_loss(x, x)


def test_feature_loss_backbone_stays_frozen_and_passes_gradients():
    from dynface.training.feature_loss import backbone, inception_feature_loss

    x = smooth_image(64, seed=4)
    out = gaussian_blur(x, torch.tensor([1.0])).requires_grad_(True)
    inception_feature_loss(out, x).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in backbone().parameters()) and not backbone().training


def test_patch_critic_scores_patches():
    d = patch_critic(channels=8, layers=3)
    s = d(torch.zeros(2, 3, 64, 64))
    assert s.shape == (2, 1, 6, 6)  # 64 / 8 = 8, then two 4x4 stride-1 convs with padding 1


def test_critic_step_learns_to_separate_and_generator_loss_leaves_critic_alone():
    torch.manual_seed(0)
    adv = Adversary({"channels": 8, "lr": 2e-3})
    real = torch.stack([smooth_image(32, seed=s)[0] for s in range(4)])
    fake = gaussian_blur(real, torch.full((4,), 2.0))
    first = adv.critic_step(real, fake)
    for _ in range(30):
        last = adv.critic_step(real, fake)
    assert last < first
    adv.opt.zero_grad(set_to_none=True)
    out = fake.clone().requires_grad_(True)
    adv.generator_loss(out).backward()
    assert out.grad.abs().sum() > 0
    assert all(p.grad is None for p in adv.critic.parameters())  # the restorer's loss does not train the critic
    assert all(p.requires_grad for p in adv.critic.parameters())  # unfrozen again for its own step


def test_gan_is_for_the_rm_and_the_upsampler_only():
    with pytest.raises(ValueError, match="RM and upsampler training option"):
        build_adversary("prior", {"gan": {}})
    assert build_adversary("up", {"gan": {}}) is not None
    with pytest.raises(ValueError, match="torchrun"):
        build_adversary("rm", {"gan": {}}, world=2)
    assert build_adversary("rm", {}) is None


def test_rm_with_all_detail_losses_resumes_bit_for_bit(tmp_path):
    """feature + GAN + crop training: 4 iterations in one go equal 2 + resume + 2 (critic included)."""
    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "eval_every": 0, "fft_weight": 0.0,
           "feature_weight": 0.05, "gan": {"weight": 0.01, "channels": 8}, "crop": SIZE - 4}
    train("rm", cfg, run_dir=tmp_path / "once", progress=False)
    train("rm", {**cfg, "iters": 2}, run_dir=tmp_path / "twice", progress=False)
    train("rm", cfg, run_dir=tmp_path / "twice", resume=True, progress=False)
    a, b = load_torch_file(tmp_path / "once" / "ckpt.pt"), load_torch_file(tmp_path / "twice" / "ckpt.pt")
    assert a["step"] == b["step"] == 4
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for k, v in a["adversary"]["critic"].items():
        assert torch.equal(v, b["adversary"]["critic"][k]), k


def test_a_saved_critic_round_trips_and_refuses_another_shape(tmp_path):
    from dynface.training.adversarial import save_critic

    torch.manual_seed(1)
    adv = Adversary({"channels": 8, "lr": 2e-3})
    real = torch.stack([smooth_image(32, seed=s)[0] for s in range(2)])
    adv.critic_step(real, gaussian_blur(real, torch.full((2,), 2.0)))  # weights and spectral-norm vectors move
    path = save_critic(adv.critic.state_dict(), {"channels": 8}, tmp_path / "critic.safetensors")
    warm = build_adversary("rm", {"gan": {"channels": 8, "init": str(path)}})
    for k, v in adv.critic.state_dict().items():
        assert torch.equal(warm.critic.state_dict()[k], v.half().float()), k  # fp16 on disk, bit for bit
    cold = build_adversary("rm", {"gan": {"channels": 8, "init": str(path)}}, init=False)  # a resume: no init
    assert not torch.equal(cold.critic.state_dict()["0.parametrizations.weight.original"],
                           warm.critic.state_dict()["0.parametrizations.weight.original"])
    with pytest.raises(ValueError, match="not a critic of this run's shape"):
        build_adversary("rm", {"gan": {"channels": 16, "init": str(path)}})
    with pytest.raises(ValueError, match="not a critic"):
        build_adversary("rm", {"gan": {"channels": 8, "init": str(shipped_rm(tmp_path))}})


def test_a_run_exports_its_critic_and_the_next_run_starts_from_it(tmp_path):
    """Run A's export writes critic.safetensors; run B (`gan: {init: it}`, critic rate 0) trains
    beside exactly that critic."""
    from dynface.modelset.weights import load_safetensors_file

    cfg = {**rm_config(tmp_path, shipped_rm(tmp_path)), "eval_every": 0, "iters": 2,
           "gan": {"weight": 0.01, "channels": 8}}
    train("rm", cfg, run_dir=tmp_path / "a", progress=False)
    saved = load_safetensors_file(tmp_path / "a" / "critic.safetensors")
    train("rm", {**cfg, "gan": {**cfg["gan"], "lr": 0.0, "init": str(tmp_path / "a" / "critic.safetensors")}},
          run_dir=tmp_path / "b", progress=False)
    b = load_torch_file(tmp_path / "b" / "ckpt.pt")["adversary"]["critic"]
    weights = [k for k in saved if k.endswith(".original")]
    assert weights and all(torch.equal(b[k], saved[k].float()) for k in weights)
