"""Deepening a diffusion UNet (networks/deepen.py): the grown network computes what the old one did."""
import pytest
import torch

from conftest import smooth_image
from dynface.modelset.checkpoint import export_safetensors
from dynface.networks.deepen import deepened_state, new_blocks
from dynface.networks.factory import build_network
from dynface.training.loop import init_from

SIZE = 32


def prior_arch(nrb) -> dict:
    return {"coord_channels": True, "prediction": "v",
            "unet": {"image_size": SIZE, "in_channels": 5, "model_channels": 16, "out_channels": 3,
                     "channel_mult": [1, 2, 2], "num_res_blocks": nrb, "attention_resolutions": [16],
                     "num_head_channels": 16}}


def trained_like(nrb, seed=0):
    """A prior whose every tensor is non-zero (the zero-initialised layers too), as after training."""
    torch.manual_seed(seed)
    net = build_network("prior", prior_arch(nrb))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


def outputs(net, seed=3):
    x, t = smooth_image(SIZE, seed=seed) * 2 - 1, torch.tensor([400])
    with torch.no_grad():
        return net(x, t)[0]


@pytest.mark.parametrize("deeper", [[2, 2, 2], [1, 3, 2], 2])
def test_a_deepened_prior_starts_as_the_prior_it_grew_from(tmp_path, deeper):
    small = trained_like(1)
    path = export_safetensors(small, tmp_path / "prior.safetensors", "prior", prior_arch(1), {"iters": 7},
                              dtype=torch.float32)
    deep = build_network("prior", prior_arch(deeper)).eval()
    counts = init_from(deep, str(path))
    added = new_blocks(small.unet.config, deep.unet.config)
    assert counts["deepened"] == added > 0 and counts["kept"] == 0
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in small.parameters())
    assert torch.allclose(outputs(deep), outputs(small), atol=1e-5)
    with torch.no_grad():  # the new blocks lie on the path: once they learn, the output moves
        for name, p in deep.named_parameters():
            if "out_layers.3" in name:
                p.add_(torch.randn_like(p) * 0.05)
    assert not torch.allclose(outputs(deep), outputs(small), atol=1e-3)


def test_deepening_keeps_every_old_tensor_and_refuses_other_changes():
    small = trained_like(1, seed=1)
    deep = build_network("prior", prior_arch([2, 2, 2]))
    state = deepened_state(small.state_dict(), small.unet.config, deep.unet, prefix="unet.")
    assert set(state) == set(deep.state_dict())
    moved = [k for k, v in small.state_dict().items()
             if not any(torch.equal(v, w) for w in state.values() if w.shape == v.shape)]
    assert not moved  # every trained tensor is somewhere in the deepened network
    with pytest.raises(ValueError, match="deepening"):
        deepened_state(deep.state_dict(), deep.unet.config, small.unet, prefix="unet.")
    wide = build_network("prior", {**prior_arch(2), "unet": {**prior_arch(2)["unet"], "model_channels": 32,
                                                            "num_head_channels": 32}})
    with pytest.raises(ValueError, match="only be deepened"):
        deepened_state(small.state_dict(), small.unet.config, wide.unet, prefix="unet.")
