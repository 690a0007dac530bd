"""Precision and threads chosen from the hardware (issue: fast on every CPU)."""
import hashlib

import pytest
import torch

import dynface.core.hardware as hw
from conftest import smooth_image
from dynface.cli import main
from dynface.core.imageio import to_uint8, write_image
from dynface.training.loop import config_precision

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})                # AMD EPYC Zen 3
SPR = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"})  # Sapphire Rapids
COOPER = frozenset({"avx2", "avx512f", "avx512_bf16"})                    # Cooper Lake: no AMX, bf16 via AVX-512


@pytest.mark.parametrize("flags, want", [(AVX2, "fp32"), (SPR, "bf16"), (COOPER, "bf16"),
                                         (frozenset({"avx512f", "amx_bf16"}), "bf16"), (frozenset(), "fp32")])
def test_auto_picks_bf16_only_with_native_flags(flags, want):
    assert hw.resolve_precision("auto", "cpu", flags) == want
    assert hw.resolve_precision(None, "cpu", flags) == want


def test_explicit_precision_is_kept_and_unknown_refused():
    for p in ("fp32", "fp16", "bf16"):
        assert hw.resolve_precision(p, "cpu", AVX2) == p
    with pytest.raises(hw.PrecisionError, match="unknown precision 'fp8'"):
        hw.resolve_precision("fp8", "cpu")
    with pytest.raises(hw.PrecisionError, match="not resolved"):
        hw.autocast("cpu", "auto")


def test_training_config_precision(monkeypatch):
    monkeypatch.setattr(hw, "cpu_flags", lambda: AVX2)
    assert config_precision({"precision": "auto"}) == "fp32"
    assert config_precision({}) == "fp32"
    monkeypatch.setattr(hw, "cpu_flags", lambda: SPR)
    assert config_precision({"precision": "auto"}) == "bf16"
    assert config_precision({"precision": "fp32"}) == "fp32"
    with pytest.warns(FutureWarning, match="removed in dynface 1.0"):  # the key before `precision`
        assert config_precision({"bf16": True}) == "bf16"


def test_cpu_flags_and_model_are_read():
    flags = hw.cpu_flags()
    assert isinstance(flags, frozenset) and hw.cpu_model()
    if flags:  # on Linux x86 the flags include the baseline SSE2
        assert "sse2" in flags or "fp" in flags or "asimd" in flags
    assert hw.cpu_model() in hw.cpu_summary()


def test_default_threads_respects_affinity_cgroup_and_env(monkeypatch):
    monkeypatch.delenv("DYNFACE_THREADS", raising=False)
    monkeypatch.setattr(hw, "physical_cores", lambda cpus=None: 8)
    monkeypatch.setattr(hw, "_cgroup_cpu_limit", lambda: None)
    assert hw.default_threads() == 8
    monkeypatch.setattr(hw, "_cgroup_cpu_limit", lambda: 2.0)
    assert hw.default_threads() == 2
    monkeypatch.setattr(hw, "_cgroup_cpu_limit", lambda: 0.5)
    assert hw.default_threads() == 1
    monkeypatch.setenv("DYNFACE_THREADS", "3")
    assert hw.default_threads() == 3


def test_physical_cores_counts_smt_siblings_once(monkeypatch, tmp_path):
    real = hw.available_cpus()
    assert 1 <= hw.physical_cores(real) <= len(real)
    assert hw.physical_cores([]) == 1


def test_set_threads():
    old = torch.get_num_threads()
    try:
        assert hw.set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match=">= 1"):
            hw.set_threads(-2)
    finally:
        torch.set_num_threads(old)


def _restore_default(ms, tmp_path, out, monkeypatch, flags):
    """The README example's path: `dynface restore --aligned` with default options (tiny model set)."""
    monkeypatch.setattr(hw, "cpu_flags", lambda: flags)
    seen = []
    real = torch.autocast

    def spy(device_type, dtype=None, **kw):
        seen.append(dtype)
        return real(device_type, dtype=dtype, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    write_image(src / "face.png", to_uint8(smooth_image(64)))
    rc = main(["restore", "-i", str(src / "face.png"), "--aligned", "--framing", "model", "-o", str(tmp_path / out),
               "--weights-dir", str(ms), "--steps", "2", "--threads", "1", "-q"])
    assert rc == 0
    data = (tmp_path / out / "restored_faces" / "face_00.png").read_bytes()
    return seen, hashlib.sha256(data).hexdigest()


def test_default_restore_never_uses_bf16_without_native_support(ms, tmp_path, monkeypatch):
    seen, h1 = _restore_default(ms, tmp_path, "a", monkeypatch, AVX2)
    assert torch.bfloat16 not in seen and torch.float16 not in seen
    _, h2 = _restore_default(ms, tmp_path, "b", monkeypatch, AVX2)
    assert h1 == h2  # same seed -> byte-identical output on the fp32 path


def test_default_restore_uses_bf16_on_native_cpus(ms, tmp_path, monkeypatch):
    seen, _ = _restore_default(ms, tmp_path, "c", monkeypatch, SPR)
    assert seen and set(seen) == {torch.bfloat16}


def test_info_command(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("cpu:", "torch:", "threads:", "precision auto on cpu:", "embedded model set:", "official weights"):
        assert key in out
    assert hw.cpu_model() in out
