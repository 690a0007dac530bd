"""Official architectures (networks/architectures.py, named per checkpoint in modelset/catalogue.py) against key/shape lists derived from the public code.

The fixtures ``tests/fixtures/*_keys.json`` were written by
``tests/fixtures/derive_official_keys.py``, which re-implements only the module-naming logic of
DifFace's ``models/unet.py`` / ``models/swinir.py`` and DPS's ``guided_diffusion/unet.py`` as
read from those repositories (it never imports dynface), so these tests are not circular.
Networks are built on the ``meta`` device: no memory, well under a second each.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dynface.modelset.catalogue import CHECKPOINTS, MODEL_SETS
from dynface.modelset.official import official_checkpoint
from dynface.modelset.weights import WeightsError
from dynface.networks.architectures import build_architecture, difface_swinir512, difface_unet512, dps_unet256
from dynface.networks.swinir import SwinIRConfig
from dynface.networks.unet import UNetConfig

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"

# Parameter counts derived from the public code; /work/shared/CPU-BUDGET.md measured the same
# networks as 159.8 M (DifFace UNet 512), 93.6 M (DPS UNet 256) and 15.8 M (DifFace SwinIR).
EXPECTED_PARAMS = {"difface_unet512": 159_788_454, "dps_unet256": 93_563_910, "difface_swinir512": 15_792_587}


def _fixture(name):
    return json.loads((FIXTURES / f"{name}_keys.json").read_text())


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_preset_keys_and_shapes_match_official(name):
    fx = _fixture(name)
    model = build_architecture(CHECKPOINTS[name].architecture(), device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(fx["keys"]) - set(ours))
    extra = sorted(set(ours) - set(fx["keys"]))
    wrong = sorted(k for k in ours if k in fx["keys"] and ours[k] != fx["keys"][k])
    assert not missing and not extra and not wrong, (missing[:5], extra[:5], wrong[:5])
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == fx["param_count"] == EXPECTED_PARAMS[name]
    buffers = {k for k, _ in model.named_buffers() if k in ours}
    assert buffers == set(fx["buffers"])


def test_preset_types_and_details():
    u = difface_unet512()
    assert isinstance(u, UNetConfig)
    assert (u.image_size, u.model_channels, u.out_channels) == (512, 32, 6)
    assert u.num_res_blocks == [1, 2, 2, 2, 2, 3, 4] and u.channel_mult == [1, 2, 4, 8, 8, 16, 16]
    assert u.attention_resolutions == [32, 16, 8] and u.num_head_channels == 64 and not u.resblock_updown
    d = dps_unet256()
    assert (d.image_size, d.model_channels, d.num_res_blocks, d.channel_mult) == (256, 128, 1, [1, 1, 2, 2, 4, 4])
    assert d.attention_resolutions == [16] and d.resblock_updown and d.use_scale_shift_norm
    assert (d.num_heads, d.num_head_channels, d.num_heads_upsample, d.use_new_attention_order) == (4, 64, -1, False)
    s = difface_swinir512()
    assert isinstance(s, SwinIRConfig)
    assert (s.embed_dim, s.depths, s.window_size, s.img_size, s.unshuffle_scale, s.upscale) == (180, [6] * 8, 8, 64, 8, 8)
    assert s.io_range == "0,1" and s.output_size(512, 512) == (512, 512)


def test_difface_attention_levels():
    """Attention blocks sit exactly at the 32, 16 and 8 pixel feature maps (levels 4-6)."""
    keys = _fixture("difface_unet512")["keys"]
    attn_inputs = sorted({int(k.split(".")[1]) for k in keys if k.startswith("input_blocks") and ".qkv." in k})
    # input_blocks: 0 conv; level0: 1, down 2; level1: 3,4, down 5; level2: 6,7 d8; level3: 9,10 d11;
    # level4 (32 px): 12,13 d14; level5 (16 px): 15,16,17 d18; level6 (8 px): 19..22
    assert attn_inputs == [12, 13, 15, 16, 17, 19, 20, 21, 22]
    assert keys["middle_block.1.qkv.weight"] == [1536, 512, 1]


def test_catalogue_is_consistent():
    """Each checkpoint names its own architecture and parameter count; each official model set names
    checkpoints of the catalogue; an unknown checkpoint is a WeightsError."""
    for name, c in CHECKPOINTS.items():
        assert c.name == name and c.architecture.__name__ == name and c.params == EXPECTED_PARAMS[name]
    for name, m in MODEL_SETS.items():
        assert m.name == name and m.prior in CHECKPOINTS and m.rm in (None, *CHECKPOINTS)
        assert CHECKPOINTS[m.prior].architecture().image_size == m.size
    with pytest.raises(WeightsError, match="unknown weights"):
        official_checkpoint("nope")


def test_small_variant_of_dps_layout_runs():
    """The DPS preset's options (resblock up/down, 64-channel heads) run forward at a toy size."""
    cfg = dps_unet256()
    cfg.image_size, cfg.model_channels, cfg.channel_mult, cfg.attention_resolutions = 32, 32, [1, 2], [16]
    from dynface.networks.unet import UNetModel
    m = UNetModel(cfg).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, 32, 32), torch.tensor([5]))
    assert y.shape == (1, 6, 32, 32)
