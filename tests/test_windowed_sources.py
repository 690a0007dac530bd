"""Windowed data sources: tight face crops trained at their place in a wider frame (training/data.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dynface.core.imageio import write_image
from dynface.core.schedule import Schedule
from dynface.face import templates
from dynface.face.templates import crop_window, template_for
from dynface.networks.eps_model import coord_grid
from dynface.training import data as data_mod
from dynface.training.batches import Ctx, crop_patch
from dynface.training.config import TrainConfig

SIZE = 64


def test_a_utkface_crop_lands_where_its_landmarks_meet_the_ffhq_template():
    top, left, side = crop_window("utkface", "ffhq", 128)
    assert (top, left, side) == (36, 24, 82)
    # the UTKFace landmarks, carried into the window, fall on the FFHQ landmarks (rounding: < 1.5 px)
    carried = templates.UTKFACE_200 * side / 200 + np.array([left, top])
    assert np.abs(carried - template_for("ffhq", 128)).max() < 1.5
    assert crop_window("ffhq", "ffhq", 128) == (0, 0, 128)
    big = crop_window("utk", "ffhq512", 512)  # aliases; the window scales with the frame
    assert all(abs(b - 4 * v) <= 2 for b, v in zip(big, (top, left, side)))
    with pytest.raises(ValueError, match="unknown face template"):
        crop_window("nope", "ffhq", 128)


def test_a_template_rotated_against_the_frame_has_no_window(monkeypatch):
    pts, base = templates.TEMPLATES["utkface"]
    a = np.radians(10)
    rot = (pts - base / 2) @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T + base / 2
    monkeypatch.setitem(templates.TEMPLATES, "utkface", (rot, base))
    with pytest.raises(ValueError, match="degrees from upright"):
        crop_window("utkface", "ffhq", 128)


def _folder(folder, value: int, n: int, size: int) -> str:
    folder.mkdir()
    rng = np.random.default_rng(value)
    for i in range(n):  # textured, never black: a crop that leaves the window would show the canvas
        write_image(folder / f"{folder.name}{i}.png", rng.integers(value, value + 40, (size, size, 3), dtype=np.uint8))
    return str(folder)


@pytest.fixture
def mix(tmp_path):
    wide = _folder(tmp_path / "wide", 60, n=5, size=SIZE)
    tight = _folder(tmp_path / "tight", 160, n=7, size=200)
    data = [{"path": wide, "weight": 1}, {"path": tight, "weight": 1, "template": "utkface"}]
    return data, tmp_path / "cache"


def test_a_windowed_source_sits_on_a_blank_canvas_at_its_window(mix):
    data, cache = mix
    images, probs, windows = data_mod.load_sources(data, SIZE, split="all", cache_dir=cache, frame="ffhq")
    top, left, side = crop_window("utkface", "ffhq", SIZE)
    assert images.shape == (12, 3, SIZE, SIZE) and probs.shape == (12,)
    assert windows[:5].tolist() == [[0, 0, SIZE]] * 5 and windows[5:].tolist() == [[top, left, side]] * 7
    tight = data_mod.load_cache(data[1]["path"], side, "all", cache_dir=cache)
    assert torch.equal(images[5:, :, top:top + side, left:left + side], tight)
    outside = images[5:].clone()
    outside[..., top:top + side, left:left + side] = 0
    assert int(outside.max()) == 0 and int(images[:5].min()) >= 60
    # without a frame for the run, a source's template cannot be placed
    with pytest.raises(ValueError, match="config key `template`"):
        data_mod.load_sources(data, SIZE, split="all", cache_dir=cache)
    # a source framed like the run is no window
    same = [data[0], {"path": data[1]["path"], "template": "ffhq"}]
    assert data_mod.load_sources(same, SIZE, split="all", cache_dir=cache, frame="ffhq")[2] is None


def test_patches_of_windowed_faces_stay_inside_their_windows_with_their_coordinates(mix):
    data, cache = mix
    images, probs, windows = data_mod.load_sources(data, SIZE, split="all", cache_dir=cache, frame="ffhq")
    b = data_mod.Batcher(images, seed=3, probs=probs, windows=windows)
    ctx = Ctx(cfg={"size": SIZE}, batcher=b, schedule=Schedule.linear())
    side = crop_window("utkface", "ffhq", SIZE)[2]
    p = 16
    seen_tight = seen_flipped = 0
    for _ in range(30):
        x = b(8, min_side=p)
        wins = b.last_windows
        (crops,), coords = crop_patch(ctx, p, x)
        assert crops.shape == (8, 3, p, p) and coords.shape == (8, 2, p, p)
        assert crops.min() > -0.99  # never the blank canvas (uint8 0 -> -1)
        for i in range(8):
            t, l, s = wins[i].tolist()
            seen_tight += s == side
            seen_flipped += s == side and l != crop_window("utkface", "ffhq", SIZE)[1]
            # the coordinates name a place inside the image's window, and the crop is that place
            full = coord_grid(SIZE)[0]
            r0 = int(np.argmin(np.abs(full[0, :, 0].numpy() - coords[i, 0, 0, 0].item())))
            c0 = int(np.argmin(np.abs(full[1, 0, :].numpy() - coords[i, 1, 0, 0].item())))
            assert t <= r0 <= t + s - p and l <= c0 <= l + s - p
            assert torch.equal(crops[i], x[i, :, r0:r0 + p, c0:c0 + p])
    assert seen_tight > 0 and seen_flipped > 0
    # a patch wider than the window draws only the faces framed like the run
    for _ in range(10):
        b(8, min_side=side + 1)
        assert (b.last_windows[:, 2] == SIZE).all()
    narrow = data_mod.Batcher(images[5:], seed=0, windows=windows[5:])
    with pytest.raises(ValueError, match="no training image"):
        narrow(2, min_side=side + 1)


def test_only_a_prior_with_a_run_framed_first_source_takes_windowed_sources(mix):
    data, cache = mix
    base = {"data": data, "size": SIZE, "template": "ffhq", "split": "all", "cache_dir": str(cache),
            "iters": 1, "lr": 1e-4, "arch": {"x": 1}}
    b = data_mod.training_batcher(TrainConfig.from_dict({**base, "kind": "prior"}), seed=0)
    assert b.windows is not None and len(b.images) == 12
    with pytest.raises(ValueError, match="prior only"):
        data_mod.training_batcher(TrainConfig.from_dict({**base, "kind": "idm"}), seed=0)
    with pytest.raises(ValueError, match="first data source"):
        data_mod.training_batcher(TrainConfig.from_dict({**base, "kind": "prior", "data": data[::-1]}), seed=0)


def test_a_source_keeps_its_own_sharpest_fraction(tmp_path):
    wide = _folder(tmp_path / "wide", 60, n=6, size=SIZE)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # even: flat grey (no detail); odd: noise (much detail)
        img = np.full((200, 200, 3), 120, np.uint8) if i % 2 == 0 else rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
        write_image(mixed / f"m{i}.png", img)
    data = [{"path": wide}, {"path": str(mixed), "template": "utkface", "sharpest": 0.5}]
    images, probs, windows = data_mod.load_sources(data, SIZE, split="all", cache_dir=tmp_path / "cache", frame="ffhq")
    assert len(images) == 6 + 4 and (windows[:, 2] < SIZE).sum() == 4
    top, left, side = crop_window("utkface", "ffhq", SIZE)
    kept = images[6:, :, top:top + side, left:left + side].float()
    assert (kept.std(dim=(1, 2, 3)) > 5).all()  # only the detailed half is left (the flat ones: 0)
    assert torch.isclose(probs[6:].sum(), torch.tensor(0.5, dtype=torch.float64))  # its weight is unchanged
    with pytest.raises(ValueError, match="fraction"):
        data_mod.sources([{"path": str(mixed), "sharpest": 0}])
