"""Shapes, invariants and round-trips of the method's own networks and the DGSA loss."""
import torch

from conftest import smooth_image
from dynface.modelset.checkpoint import export_safetensors, load_network
from dynface.networks.dgsa import DGSA
from dynface.networks.eps_model import coord_grid
from dynface.networks.factory import build_network
from dynface.networks.restorer import ResUNet
from dynface.networks.sde import SDE
from dynface.training.dgsa_loss import dgsa_objective, ssim, swt_haar


def test_sde_shape_and_clamp():
    sde = SDE(0.1, 3.0, width=8).eval()
    s = sde(torch.randn(3, 3, 32, 32))
    assert s.shape == (3,) and torch.all(s >= 0.1) and torch.all(s <= 3.0)


def test_dgsa_map_in_unit_range_and_time_dependent():
    d = DGSA(width=8, temb=16)
    torch.nn.init.normal_(d.conv3.weight, std=0.5)
    y, x0 = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    m1, m2 = d(y, x0, torch.tensor([10, 10])), d(y, x0, torch.tensor([900, 900]))
    assert m1.shape == (2, 3, 16, 16) and m1.min() >= 0 and m1.max() <= 1
    assert not torch.equal(m1, m2)


def test_resunet_any_size_and_zero_init_is_identity():
    net = ResUNet(channels=[8, 16, 16], blocks=1)
    for h, w in ((32, 32), (37, 50)):
        y = torch.rand(1, 3, h, w) * 2 - 1
        assert torch.equal(net(y), y)  # zero-initialised tail: out = y + 0


def test_coord_grid_patch_is_crop_of_full():
    full = coord_grid(16, 1)
    patch = coord_grid(16, 1, top=4, left=6, patch=8)
    assert torch.equal(patch, full[..., 4:12, 6:14])
    assert full.min() > -1 and full.max() < 1


def test_safetensors_roundtrip_bit_exact_fp32(tmp_path):
    for kind, arch in [("rm", {"type": "resunet", "channels": [8, 16], "blocks": 1}),
                       ("sde", {"sigma_min": 0.1, "sigma_max": 3.0, "width": 8}),
                       ("prior", {"coord_channels": True, "unet": {"image_size": 16, "in_channels": 5, "model_channels": 32,
                                  "out_channels": 3, "channel_mult": [1, 2], "num_res_blocks": 1,
                                  "attention_resolutions": [8], "num_head_channels": 32}})]:
        net = build_network(kind, arch)
        p = export_safetensors(net, tmp_path / f"{kind}.safetensors", kind, arch, dtype=torch.float32)
        back = load_network(p, kind)
        a, b = net.state_dict(), back.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_swt_and_dgsa_objective_known_answers():
    c = torch.full((1, 3, 8, 8), 0.3)
    bands = swt_haar(c)
    assert torch.allclose(bands[:, 1:], torch.zeros_like(bands[:, 1:]))
    assert torch.allclose(bands[:, 0], torch.full_like(bands[:, 0], 0.6))  # LL = 2 * mean (orthonormal Haar)
    x = smooth_image(32)
    assert abs(float(ssim((x + 1) / 2, (x + 1) / 2)) - 1) < 1e-6
    assert float(dgsa_objective(x, x)) < 1e-6
    assert float(dgsa_objective(x + 0.1 * torch.randn_like(x), x)) > 0.01


def test_dgsa_swt_weights_price_a_shift_of_shading_by_its_ll_band():
    """A uniform shift by c moves only LL, by 2c: the paper's weights (LL 0) leave the SWT part at
    zero, an LL weight of 1 adds exactly 2c; a config with other than four weights >= 0 fails."""
    import pytest

    from dynface.training.config import ConfigError, TrainConfig

    x, c = smooth_image(32), 0.05
    paper = float(dgsa_objective(x + c, x))
    with_ll = float(dgsa_objective(x + c, x, swt_weights=(1.0, 0.01, 0.01, 0.05)))
    assert abs((with_ll - paper) - 2 * c) < 1e-5
    for bad in ([1.0, 0.0], [0.0, -0.01, 0.01, 0.05]):
        with pytest.raises(ConfigError, match="swt_weights"):
            TrainConfig.from_dict({"kind": "dgsa", "swt_weights": bad})


def test_dgsa_objective_with_the_inception_perceptual_term_sees_lost_detail():
    """perceptual: inception (a DISTS substitute): zero on the face itself, larger for
    a blurred face than for the same face with mild noise of equal pixel error; an unknown name fails."""
    import pytest

    from dynface.core.kernels import gaussian_blur

    x = smooth_image(64) + 0.2 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    x = x.clamp(-1, 1)
    assert float(dgsa_objective(x, x, "inception")) < 1e-5
    blurred = gaussian_blur(x, 1.5)
    noisy = x + (blurred - x).abs().mean() * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert float(dgsa_objective(blurred, x, "inception")) > float(dgsa_objective(noisy, x, "inception"))
    with pytest.raises(ValueError, match="perceptual"):
        dgsa_objective(x, x, "dists")


def test_dgsa_clamp_passes_gradients_in_training_and_is_the_same_map():
    """M is clamped to [0, 1] in both modes; in training a clipped pixel still gets a gradient
    (straight-through), so a saturated map can learn its way back."""
    from dynface.networks.dgsa import DGSA

    torch.manual_seed(0)
    net = DGSA(width=8, temb=16)
    with torch.no_grad():
        net.conv3.bias.fill_(3.0)   # every pixel far above 1: a hard clamp would give no gradient
    y, x0, t = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.tensor([500])
    net.eval()
    with torch.no_grad():
        m_eval = net(y, x0, t)
    net.train()
    m = net(y, x0, t)
    assert torch.equal(m.detach(), m_eval) and float(m_eval.min()) == 1.0
    m.sum().backward()
    assert float(net.conv3.bias.grad.abs().sum()) > 0
