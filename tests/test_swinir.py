"""SwinIR restorer: sizes, value ranges, masks, round trips through checkpoint files."""
from __future__ import annotations

import pytest
import torch

from dynface.networks.swinir import SwinIR, SwinIRConfig, embedded_swinir_config
from dynface.modelset.weights import (load_checkpoint_state, load_into, load_model_safetensors,
                                      read_safetensors_metadata, save_safetensors_fp16, save_state)

torch.set_num_threads(1)


def tiny(**kw) -> SwinIRConfig:
    """A very small embedded-style SwinIR (unshuffle 4, window 8) to keep the tests fast."""
    base = dict(embed_dim=24, depths=[2, 2], num_heads=[6, 6], image_size=128)
    base.update(kw)
    size = base.pop("image_size")
    depths = base.pop("depths")
    heads = base.pop("num_heads")
    return embedded_swinir_config(image_size=size, depths=depths, num_heads=heads[0], **base)


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    return SwinIR(cfg).eval()


@pytest.mark.parametrize("hw", [(128, 128), (96, 96), (77, 101), (40, 136), (5, 9)])
def test_output_size_equals_input_size(hw):
    m = _model(tiny())
    x = torch.rand(2, 3, *hw) * 2 - 1
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_random_non_multiple_size():
    g = torch.Generator().manual_seed(1234)
    h, w = (int(v) for v in torch.randint(33, 150, (2,), generator=g))
    h, w = h | 1, w | 1  # odd, so never a multiple of 32
    m = _model(tiny())
    with torch.no_grad():
        y = m(torch.rand(1, 3, h, w) * 2 - 1)
    assert y.shape == (1, 3, h, w)


def test_embedded_default_config_128():
    cfg = embedded_swinir_config()
    assert (cfg.embed_dim, cfg.depths, cfg.unshuffle_scale, cfg.upscale, cfg.io_range) == (60, [4, 4, 4, 4], 4, 4, "-1,1")
    assert cfg.output_size(128, 128) == (128, 128) and cfg.size_multiple == 32
    m = _model(cfg)
    sd = m.state_dict()
    assert sd["conv_first.1.weight"].shape == (60, 48, 3, 3)  # 3 * 4 * 4 input channels
    assert "conv_up1.weight" in sd and "conv_up2.weight" in sd and "conv_up3.weight" not in sd
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 128, 128)


def test_io_ranges_agree():
    a = _model(tiny(io_range="-1,1"))
    b = SwinIR(tiny(io_range="0,1")).eval()
    b.load_state_dict(a.state_dict())
    x01 = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x01 * 2 - 1), b(x01) * 2 - 1, atol=1e-5, rtol=0)


def test_runtime_mask_equals_stored_mask():
    """At a size other than img_size the shifted-window mask is recomputed; it must equal the
    buffer a model built for that size stores."""
    a = _model(tiny(image_size=128))  # nominal 32x32 tokens
    b = SwinIR(tiny(image_size=96)).eval()  # nominal 24x24 tokens
    b.load_state_dict({k: v for k, v in a.state_dict().items() if not k.endswith("attn_mask")}, strict=False)
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=0)
    mask = b.state_dict()["layers.0.residual_group.blocks.1.attn_mask"]
    assert mask.shape == (9, 64, 64) and set(mask.unique().tolist()) == {-100.0, 0.0}


def test_official_key_layout_without_unshuffle():
    cfg = SwinIRConfig(embed_dim=30, depths=[2], num_heads=[6], img_size=24, unshuffle_scale=1, upscale=2,
                       upsampler="pixelshuffle", resi_connection="3conv", io_range="0,1")
    keys = SwinIR(cfg).state_dict()
    for k in ("conv_first.weight", "patch_embed.norm.weight", "layers.0.conv.0.weight", "layers.0.conv.4.weight",
              "conv_after_body.4.weight", "conv_before_upsample.0.weight", "upsample.0.weight", "conv_last.weight",
              "layers.0.residual_group.blocks.0.attn.relative_position_index",
              "layers.0.residual_group.blocks.1.attn_mask"):
        assert k in keys, k
    assert "layers.0.residual_group.blocks.0.attn_mask" not in keys  # unshifted blocks keep None
    assert "mean" not in keys


def test_backward_and_bf16():
    m = SwinIR(tiny(drop_path_rate=0.1, use_checkpoint=True)).train()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    m(x).abs().mean().backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    m.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.shape == x.shape and torch.isfinite(y.float()).all()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_state_dict_round_trip_bit_exact(tmp_path, suffix):
    m = _model(tiny())
    path = save_state(m, tmp_path / f"swinir{suffix}", metadata={"config": tiny().to_dict()})
    state = load_checkpoint_state(path)
    ref = m.state_dict()
    assert sorted(state) == sorted(ref)  # safetensors stores keys in its own order
    for k, v in ref.items():
        assert state[k].dtype == v.dtype and torch.equal(state[k], v), k
    m2 = SwinIR(tiny()).eval()
    load_into(m2, state)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))


def test_fp16_safetensors_round_trip(tmp_path):
    cfg = tiny()
    m = _model(cfg)
    path = save_safetensors_fp16(m, tmp_path / "swinir_fp16.safetensors", metadata={"config": cfg.to_dict(), "note": "x"})
    raw = load_checkpoint_state(path)
    assert raw["conv_first.1.weight"].dtype == torch.float16
    assert raw["layers.0.residual_group.blocks.0.attn.relative_position_index"].dtype == torch.int64
    m2 = SwinIR(SwinIRConfig.from_dict(__import__("json").loads(read_safetensors_metadata(path)["config"])))
    meta = load_model_safetensors(m2, path)
    assert meta["note"] == "x" and meta["dynface_storage_dtype"] == "float16"
    for k, v in m.state_dict().items():
        w = m2.state_dict()[k]
        assert w.dtype == v.dtype
        if v.is_floating_point():
            assert torch.equal(w, v.half().float()), k
        else:
            assert torch.equal(w, v), k


def test_config_validation():
    with pytest.raises(ValueError):
        SwinIRConfig(embed_dim=50, num_heads=[6, 6, 6, 6])
    with pytest.raises(ValueError):
        SwinIRConfig(io_range="0,255")
    with pytest.raises(ValueError):
        SwinIRConfig.from_dict({"embed_dim": 60, "bogus": 1})
    cfg = tiny()
    assert SwinIRConfig.from_dict(cfg.to_dict()) == cfg
