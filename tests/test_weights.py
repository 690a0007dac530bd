"""Checkpoint loading: containers, prefixes, strict reports, refused pickles, registry, verify."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from dynface.modelset import official as O
from dynface.modelset.catalogue import CHECKPOINTS
from dynface.modelset.official import official_file, weights_dir, weights_list, weights_verify
from dynface.modelset.weights import (WeightsError, compare_state, load_checkpoint_state, load_into, save_safetensors_fp16,
                                      sha256_file)

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 3, 1))


def test_module_prefix_and_difface_container(tmp_path):
    net = _net()
    prefixed = OrderedDict((f"module.{k}", v) for k, v in net.state_dict().items())
    # DifFace SwinIR layout: {'iters_start', 'log_step', 'log_step_img', 'state_dict': {'module.*'}}
    torch.save({"iters_start": 300000, "log_step": {"train": 1, "val": 2}, "log_step_img": {"train": 3, "val": 4},
                "state_dict": prefixed}, tmp_path / "difface_style.pth")
    torch.save(prefixed, tmp_path / "bare_prefixed.pth")
    for name in ("difface_style.pth", "bare_prefixed.pth"):
        state = load_checkpoint_state(tmp_path / name)
        assert list(state) == list(net.state_dict())
        other = _net()
        for p in other.parameters():
            nn.init.zeros_(p)
        load_into(other, state)
        for k, v in net.state_dict().items():
            assert torch.equal(other.state_dict()[k], v)


def test_basicsr_container_prefers_ema(tmp_path):
    net = _net()
    ema = {k: v + 1 for k, v in net.state_dict().items()}
    torch.save({"params": net.state_dict(), "params_ema": ema}, tmp_path / "basicsr.pth")
    state = load_checkpoint_state(tmp_path / "basicsr.pth")
    assert all(torch.equal(state[k], ema[k]) for k in ema)


def test_missing_key_gives_readable_report():
    net = _net()
    state = dict(net.state_dict())
    del state["0.bias"]
    with pytest.raises(WeightsError) as e:
        load_into(_net(), state)
    msg = str(e.value)
    assert "1 missing" in msg and "missing keys" in msg and "0.bias" in msg
    assert "\n" in msg


def test_report_lists_first_ten_and_counts():
    ref = {f"k{i}": torch.zeros(2) for i in range(25)}
    state = {f"x{i}": torch.zeros(2) for i in range(12)}
    state["k0"] = torch.zeros(3)
    rep = compare_state(ref, state, target="toy")
    text = rep.format()
    assert "24 missing, 12 unexpected, 1 shape mismatch" in text
    assert "... and 14 more" in text and "... and 2 more" in text
    assert "k0: file [3] vs network [2]" in text


def test_shape_mismatch_raises_even_non_strict():
    state = dict(_net().state_dict())
    state["2.weight"] = torch.zeros(3, 8, 3, 3)
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_into(_net(), state, strict=False)


def test_non_strict_returns_report():
    state = dict(_net().state_dict())
    state["extra.weight"] = torch.zeros(1)
    rep = load_into(_net(), state, strict=False)
    assert rep.unexpected == ["extra.weight"] and not rep.missing


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused(tmp_path, kind):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(2)}, "x": _Evil(marker)}
    if kind == "torch_zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(WeightsError, match="refusing to load"):
        load_checkpoint_state(path)
    assert not marker.exists()


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint_state(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_checkpoint_state(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(WeightsError):
        load_checkpoint_state(tmp_path / "junk.safetensors")
    torch.save({"iters": 3, "log": {"a": 1}}, tmp_path / "nostate.pth")
    with pytest.raises(WeightsError, match="no state dict"):
        load_checkpoint_state(tmp_path / "nostate.pth")


def test_sha256_file(tmp_path):
    p = tmp_path / "f.bin"
    data = os.urandom(3 << 20)
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_fp16_refuses_out_of_range(tmp_path):
    with pytest.raises(WeightsError, match="float16"):
        save_safetensors_fp16({"w": torch.tensor([1e6])}, tmp_path / "x.safetensors")


def test_weights_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(O.ENV_WEIGHTS_DIR, raising=False)
    assert weights_dir() == Path("~/.cache/dynface/weights").expanduser()
    monkeypatch.setenv(O.ENV_WEIGHTS_DIR, str(tmp_path / "env"))
    assert weights_dir() == tmp_path / "env"
    assert weights_dir(tmp_path / "arg") == tmp_path / "arg"


def test_catalogue_list_and_official_file(tmp_path):
    assert set(CHECKPOINTS) == {"difface_unet512", "dps_unet256", "difface_swinir512"}
    rows = weights_list(tmp_path)
    assert {r["filename"] for r in rows} == {"iddpm_ffhq512_ema500000.pth", "ffhq_10m.pt", "swinir_restoration512_L1.pth"}
    assert not any(r["present"] for r in rows)
    assert {r["architecture"] for r in rows} == set(CHECKPOINTS)  # the architecture function, by name
    assert all(r["url"].startswith("https://") for r in rows)
    with pytest.raises(WeightsError) as e:
        official_file("difface_swinir512", tmp_path)
    assert "https://github.com/zsyOAOA/DifFace/releases/download/V1.0/swinir_restoration512_L1.pth" in str(e.value)
    assert official_file("dps_unet256", tmp_path, must_exist=False) == tmp_path / "ffhq_10m.pt"
    with pytest.raises(WeightsError, match="unknown weights"):
        official_file("nope", tmp_path)


def test_verify_with_a_fake_official_swinir(tmp_path):
    """A file laid out like DifFace's SwinIR checkpoint (DDP prefix, 'state_dict' container),
    built from the key list derived from the public code, passes the strict key check."""
    keys = json.loads((FIXTURES / "difface_swinir512_keys.json").read_text())["keys"]
    state = {f"module.{k}": torch.zeros(s, dtype=torch.int64 if k.endswith("relative_position_index") else torch.float16)
             for k, s in keys.items()}
    path = tmp_path / CHECKPOINTS["difface_swinir512"].filename
    torch.save({"iters_start": 1, "state_dict": state}, path)
    (r,) = weights_verify(tmp_path, names=["difface_swinir512"])
    assert r.exists and r.keys_ok and r.ok, r.summary()
    assert r.sha256 == sha256_file(path) and r.sha256_ok is None and r.size == path.stat().st_size
    # the same file with one block missing fails with the report
    del state["module.layers.7.residual_group.blocks.5.mlp.fc2.bias"]
    torch.save({"state_dict": state}, path)
    (r,) = weights_verify(tmp_path, names=["difface_swinir512"], hash_files=False)
    assert not r.ok and not r.keys_ok and "layers.7.residual_group.blocks.5.mlp.fc2.bias" in r.message


def test_verify_missing_files(tmp_path):
    results = weights_verify(tmp_path)
    assert len(results) == 3 and not any(r.exists or r.ok for r in results)
    assert all(CHECKPOINTS[r.name].url in r.message for r in results)
    assert all("MISSING" in r.summary() for r in results)
