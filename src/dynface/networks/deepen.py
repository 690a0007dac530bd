"""Deepen a UNet without changing what it computes: more residual blocks per level.

A UNet (networks/unet.py) with `num_res_blocks` a per level may be grown to b >= a per level. The
old blocks keep their weights; every new block starts as the identity, so the grown network's
output equals the old one's (up to float rounding) and training goes on from where it stood:
- a new encoder block maps C -> C channels: its last convolution (and its attention's projection)
  is zero, so it returns its input;
- the encoder now pushes b skips per level, the new ones equal to the last old one. The decoder's
  first block of the level keeps its weights (it reads the newest skip, equal to the old one it read);
  the b - a blocks after it are new and read the duplicated skips: their 1x1 skip convolution passes
  the running features through ([I | 0] over the concatenation) and their residual branch starts at
  zero; the remaining old blocks follow, each reading the skip it read before.
"""
from __future__ import annotations

import torch

from dynface.networks.unet import UNetConfig, UNetModel


def _encoder_slots(counts: list[int]) -> list[tuple]:
    """Each input block's role: ('in',), ('res', level, j) or ('down', level)."""
    slots = [("in",)]
    for level, n in enumerate(counts):
        slots += [("res", level, j) for j in range(n)]
        if level != len(counts) - 1:
            slots.append(("down", level))
    return slots


def _decoder_slots(counts: list[int]) -> list[tuple]:
    """Each output block's role: ('res', level, i), i = 0..count."""
    return [("res", level, i) for level in reversed(range(len(counts))) for i in range(counts[level] + 1)]


def deepened_state(src: dict, src_cfg: UNetConfig | dict, dst: UNetModel, prefix: str = "") -> dict:
    """A state dict for `dst` (keys with `prefix`) holding the UNet `src` (its state dict with the
    same prefix, built from `src_cfg`) with identity blocks added where `dst` has more per level."""
    src_cfg = src_cfg if isinstance(src_cfg, UNetConfig) else UNetConfig(**src_cfg)
    dst_cfg = dst.config
    a, b = src_cfg.blocks_per_level(), dst_cfg.blocks_per_level()
    same = {k: v for k, v in src_cfg.to_dict().items() if k != "num_res_blocks"}
    if same != {k: v for k, v in dst_cfg.to_dict().items() if k != "num_res_blocks"}:
        raise ValueError("a UNet can only be deepened: every setting but num_res_blocks must match")
    if len(a) != len(b) or any(y < x or (x == 0 and y) for x, y in zip(a, b)):
        raise ValueError(f"num_res_blocks {b} is not a deepening of {a}")

    enc = {slot: i for i, slot in enumerate(_encoder_slots(b))}
    dec = {slot: i for i, slot in enumerate(_decoder_slots(b))}
    rename = {}  # source block prefix -> destination block prefix
    for i, slot in enumerate(_encoder_slots(a)):
        rename[f"input_blocks.{i}."] = f"input_blocks.{enc[slot]}."
    for i, (_, level, k) in enumerate(_decoder_slots(a)):
        shift = 0 if k == 0 else b[level] - a[level]
        rename[f"output_blocks.{i}."] = f"output_blocks.{dec[('res', level, k + shift)]}."

    out = {prefix + k: v.clone() for k, v in dst.state_dict().items()}
    for key, value in src.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for old, new in rename.items():
            if rest.startswith(old):
                rest = new + rest[len(old):]
                break
        target = prefix + rest
        if target not in out or out[target].shape != value.shape:
            raise ValueError(f"{key}: no tensor of that shape in the deepened UNet")
        out[target] = value.to(out[target].dtype).clone()

    mapped = set(rename.values())
    for kind, slots in (("input_blocks", enc), ("output_blocks", dec)):
        for idx in slots.values():
            head = f"{prefix}{kind}.{idx}."
            if f"{kind}.{idx}." in mapped:
                continue
            for key in out:
                if not key.startswith(head):
                    continue
                if ".out_layers.3." in key or ".proj_out." in key:
                    out[key] = torch.zeros_like(out[key])
                elif key.endswith(".skip_connection.weight"):
                    w = torch.zeros_like(out[key])
                    w[:, : w.shape[0], 0, 0] = torch.eye(w.shape[0], dtype=w.dtype)
                    out[key] = w
                elif key.endswith(".skip_connection.bias"):
                    out[key] = torch.zeros_like(out[key])
    return out


def new_blocks(src_cfg: UNetConfig | dict, dst_cfg: UNetConfig | dict) -> int:
    """How many residual blocks deepening `src_cfg` to `dst_cfg` adds (encoder and decoder)."""
    src_cfg = src_cfg if isinstance(src_cfg, UNetConfig) else UNetConfig(**src_cfg)
    dst_cfg = dst_cfg if isinstance(dst_cfg, UNetConfig) else UNetConfig(**dst_cfg)
    return 2 * sum(y - x for x, y in zip(src_cfg.blocks_per_level(), dst_cfg.blocks_per_level()))
