"""The face generator in PyTorch: MobileStyleGAN's OpenVINO IR (v10) read into a torch module.

The IR is a graph of standard operations (opset1-7) stored as XML plus one binary file of
constants; `IRModule` reads both without the OpenVINO runtime and evaluates the graph in
topological order with torch operations, so the networks run wherever torch runs (GPU included)
and give gradients with respect to their input (a pretrained face generator as a prior). The
weights are buffers (frozen); `TorchFaceGenerator` mirrors `FaceGenerator` (same latents, same
truncation mean, same face for the same (seed, index)). `benchmarks/synth_port.py` reports its
largest difference to the OpenVINO output.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dynface.synth.generator import (FILES, LATENT_DIM, MEAN_SEED, MEAN_STYLES, DEFAULT_TRUNCATION, NATIVE_SIZE,
                                     latent, model_dir, to_size)

_DTYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32, "u8": np.uint8}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")] if text.strip() else []


class IRModule(nn.Module):
    """An OpenVINO IR graph as a torch module: forward(x) -> the graph's one result."""

    def __init__(self, xml_path, bin_path):
        super().__init__()
        root = ET.parse(xml_path).getroot()
        blob = Path(bin_path).read_bytes()
        self.ops: list[tuple[str, str, dict, list[tuple[str, int]]]] = []  # (id, type, attrs, inputs)
        edges = {}
        for e in root.find("edges"):
            edges[(e.get("to-layer"), e.get("to-port"))] = (e.get("from-layer"), int(e.get("from-port")))
        self._consts: dict[str, object] = {}
        layers = {}
        for layer in root.find("layers"):
            lid, kind = layer.get("id"), layer.get("type")
            data = layer.find("data")
            attrs = dict(data.attrib) if data is not None else {}
            in_ports = sorted((p.get("id") for p in layer.find("input") or []), key=int)
            out_ports = [int(p.get("id")) for p in layer.find("output") or []]
            inputs = [edges[(lid, p)] for p in in_ports]
            layers[lid] = (kind, attrs, inputs, out_ports)
            if kind == "Const":
                shape = _ints(attrs.get("shape", ""))
                off, size = int(attrs["offset"]), int(attrs["size"])
                arr = np.frombuffer(blob[off:off + size], dtype=_DTYPES[attrs["element_type"]]).reshape(shape)
                if arr.dtype.kind == "f":
                    name = f"c{lid}"
                    self.register_buffer(name, torch.from_numpy(arr.astype(np.float32)).clone(), persistent=False)
                    self._consts[lid] = name
                else:
                    self._consts[lid] = torch.from_numpy(arr.astype(np.int64).copy())
        self._order = self._topological(layers)
        self._layers = layers

    @staticmethod
    def _topological(layers) -> list[str]:
        order, state = [], {}

        def visit(lid):
            stack = [(lid, False)]
            while stack:
                node, done = stack.pop()
                if done:
                    state[node] = 2
                    order.append(node)
                    continue
                if state.get(node):
                    continue
                state[node] = 1
                stack.append((node, True))
                for src, _ in layers[node][2]:
                    if not state.get(src):
                        stack.append((src, False))

        for lid in layers:
            visit(lid)
        return order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vals: dict[tuple[str, int], object] = {}
        result = None
        for lid in self._order:
            kind, attrs, inputs, outs = self._layers[lid]
            args = [vals[i] for i in inputs]
            if kind == "Parameter":
                out = x
            elif kind == "Const":
                c = self._consts[lid]
                out = getattr(self, c) if isinstance(c, str) else c
            elif kind == "Result":
                result = args[0]
                continue
            else:
                out = _OPS[kind](attrs, *args)
            if isinstance(out, (list, tuple)):
                for port, o in zip(outs, out):
                    vals[(lid, port)] = o
            else:
                vals[(lid, outs[0])] = out
        return result


def _pads(attrs) -> tuple[list[int], list[int]]:
    return _ints(attrs.get("pads_begin", "0, 0")), _ints(attrs.get("pads_end", "0, 0"))


def _conv(attrs, x, w, groups=1):
    pb, pe = _pads(attrs)
    if pb != pe:
        x = F.pad(x, (pb[1], pe[1], pb[0], pe[0]))
        pb = [0, 0]
    return F.conv2d(x, w, stride=_ints(attrs["strides"]), padding=pb, dilation=_ints(attrs["dilations"]),
                    groups=groups)


def _group_conv(attrs, x, w):
    g, co, ci, kh, kw = w.shape
    return _conv(attrs, x, w.reshape(g * co, ci, kh, kw), groups=g)


def _group_deconv(attrs, x, w, *rest):
    if rest:
        raise NotImplementedError("GroupConvolutionBackpropData with an output shape")
    g, ci, co, kh, kw = w.shape
    pb, pe = _pads(attrs)
    if pb != pe:
        raise NotImplementedError("asymmetric transposed-convolution padding")
    return F.conv_transpose2d(x, w.reshape(g * ci, co, kh, kw), stride=_ints(attrs["strides"]), padding=pb,
                              output_padding=_ints(attrs.get("output_padding", "0, 0")), groups=g,
                              dilation=_ints(attrs["dilations"]))


def _reshape(attrs, x, shape):
    shape = [int(s) for s in shape.tolist()]
    if attrs.get("special_zero") == "true":
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _axes(a, rank):
    return sorted(int(v) % rank for v in torch.as_tensor(a).flatten().tolist())


def _unsqueeze(attrs, x, axes):
    for ax in _axes(axes, x.dim() + torch.as_tensor(axes).numel()):
        x = x.unsqueeze(ax)
    return x


def _squeeze(attrs, x, axes=None):
    if axes is None:
        return x.squeeze()
    for ax in reversed(_axes(axes, x.dim())):
        x = x.squeeze(ax)
    return x


def _gather(attrs, data, idx, axis):
    if int(attrs.get("batch_dims", 0)):
        raise NotImplementedError("Gather with batch_dims")
    ax = int(axis) % data.dim()
    out = torch.index_select(data, ax, idx.flatten().long() % data.shape[ax])
    return out.reshape((*data.shape[:ax], *idx.shape, *data.shape[ax + 1:]))


def _split(attrs, x, axis, lengths):
    ax = int(axis) % x.dim()
    lengths = [int(v) for v in lengths.tolist()]
    if -1 in lengths:
        lengths[lengths.index(-1)] = x.shape[ax] - sum(v for v in lengths if v != -1)
    return torch.split(x, lengths, dim=ax)


def _broadcast(attrs, x, shape, *rest):
    shape = [int(s) for s in shape.tolist()]
    if attrs.get("mode", "numpy") == "bidirectional":
        return x * torch.ones(shape, dtype=x.dtype)
    return x.expand(shape).clone()


def _prelu(attrs, x, slope):
    if slope.numel() > 1 and x.dim() > 1:
        slope = slope.reshape(1, -1, *([1] * (x.dim() - 2)))
    return torch.where(x >= 0, x, x * slope)


def _matmul(attrs, a, b):
    if attrs.get("transpose_a") == "true":
        a = a.transpose(-1, -2)
    if attrs.get("transpose_b") == "true":
        b = b.transpose(-1, -2)
    return a @ b


_OPS = {
    "Add": lambda a, x, y: x + y,
    "Multiply": lambda a, x, y: x * y,
    "Subtract": lambda a, x, y: x - y,
    "Divide": lambda a, x, y: x / y,
    "Power": lambda a, x, y: torch.pow(x, y),
    "ReduceMean": lambda a, x, axes: x.mean(dim=_axes(axes, x.dim()), keepdim=a.get("keep_dims") == "true"),
    "MatMul": _matmul,
    "PReLU": _prelu,
    "ShapeOf": lambda a, x: torch.tensor(list(x.shape), dtype=torch.long),
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda a, *xs: torch.cat([torch.as_tensor(x).reshape(-1) if torch.as_tensor(x).dim() == 0 else x
                                        for x in xs], dim=int(a.get("axis", 0))),
    "Reshape": _reshape,
    "Broadcast": _broadcast,
    "Tile": lambda a, x, reps: x.repeat(*[int(r) for r in reps.tolist()]),
    "Convolution": _conv,
    "GroupConvolution": _group_conv,
    "GroupConvolutionBackpropData": _group_deconv,
    "VariadicSplit": _split,
}


class TorchFaceGenerator(nn.Module):
    """MobileStyleGAN in torch: mapping(z) -> w, synthesis(w) -> image in about [-1, 1]; `face`
    gives FaceGenerator's uint8 faces for the same (seed, index, psi, size)."""

    def __init__(self, path=None):
        super().__init__()
        self.path = model_dir(path)
        self.mapping = IRModule(self.path / FILES[0], self.path / FILES[1])
        self.synthesis = IRModule(self.path / FILES[2], self.path / FILES[3])

    @cached_property
    def mean_style(self) -> torch.Tensor:
        z = np.random.default_rng(MEAN_SEED).standard_normal((MEAN_STYLES, LATENT_DIM)).astype(np.float32)
        with torch.no_grad():
            w = torch.cat([self.mapping(torch.from_numpy(z[i:i + 1])) for i in range(MEAN_STYLES)])
        return w.double().mean(0).float()

    def style(self, z: torch.Tensor, psi: float = DEFAULT_TRUNCATION) -> torch.Tensor:
        w = torch.cat([self.mapping(z[i:i + 1]) for i in range(len(z))])
        return w if psi == 1.0 else self.mean_style + psi * (w - self.mean_style)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """(B, 512) styles -> (B, 3, 1024, 1024) images in about [-1, 1], differentiable in w."""
        return torch.cat([self.synthesis(w[i:i + 1]) for i in range(len(w))])

    @torch.no_grad()
    def face(self, seed: int, index: int, psi: float = DEFAULT_TRUNCATION, size: int = NATIVE_SIZE) -> np.ndarray:
        img = self(self.style(torch.from_numpy(latent(seed, index))[None], psi))[0]
        rgb = ((img.permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
        return to_size(rgb, size)
