"""A face generator on the CPU: MobileStyleGAN (FFHQ-aligned 1024^2 faces), as OpenVINO IR.

The two networks ship inside the `random-face` wheel (PyPI, Apache-2.0 code; the weights are
distilled from StyleGAN2-FFHQ, so the faces are for research use like FFHQ itself):
`random_face/data/MappingNetwork.{xml,bin}` maps a latent z ~ N(0, I) (1, 512) to a style w, and
`SynthesisNetwork.{xml,bin}` maps w (1, 512) to an RGB image (1, 3, 1024, 1024) in about [-1, 1].
The wheel's own Python uses an OpenVINO API that no longer exists and pulls in notebook packages,
so it is installed with `--no-deps` and only its data files are read, with today's `openvino`.

Face `index` of run `seed` is a pure function of (seed, index): its latent comes from a NumPy
generator seeded with the pair, truncation is w' = mean + psi (w - mean) around the mean style of
4,096 latents drawn from a fixed seed, and inference runs in fp32 (never the bf16 a CPU may offer),
so the same call gives the same bytes whatever the thread count.
"""
from __future__ import annotations

import importlib.util
import os
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from dynface.errors import DynfaceError

LATENT_DIM = 512
NATIVE_SIZE = 1024
SIZES = (128, 256, 512, 1024)
DEFAULT_TRUNCATION = 0.7
MEAN_STYLES, MEAN_SEED = 4096, 20_210_721
WHEEL = "random-face==2021.7.21.1"
INSTALL = f'pip install "dynface[synth]" && pip install --no-deps {WHEEL}'
MODEL_DIR_ENV = "DYNFACE_SYNTH_DIR"
FILES = ("MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin")


class GeneratorUnavailable(DynfaceError, RuntimeError):
    """The OpenVINO runtime or the generator's files are missing."""


def model_dir(path=None) -> Path:
    """The folder with the four IR files: `path`, else $DYNFACE_SYNTH_DIR, else the data folder of
    the installed `random-face` wheel (found without importing its Python)."""
    path = path or os.environ.get(MODEL_DIR_ENV)
    if path is None:
        spec = importlib.util.find_spec("random_face")
        if spec is None or spec.origin is None:
            raise GeneratorUnavailable(f"the face generator is not installed: {INSTALL}")
        path = Path(spec.origin).parent / "data"
    path = Path(path)
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise GeneratorUnavailable(f"{path}: generator files missing ({', '.join(missing)}): {INSTALL}")
    return path


def latent(seed: int, index: int) -> np.ndarray:
    """z of face `index` in run `seed`: (512,) float32, N(0, I)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return np.random.default_rng([int(seed), int(index)]).standard_normal(LATENT_DIM).astype(np.float32)


def to_size(rgb: np.ndarray, size: int) -> np.ndarray:
    """A square uint8 RGB image resized to size^2 (Lanczos, antialiased)."""
    if rgb.shape[0] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS))


class FaceGenerator:
    """MobileStyleGAN on the CPU. `face(seed, index, psi, size)` -> (size, size, 3) uint8 RGB."""

    def __init__(self, path=None, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise GeneratorUnavailable(f"the OpenVINO runtime is not installed: {INSTALL}") from None
        self.path = model_dir(path)
        self._core = ov.Core()
        cfg = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        self._cfg = cfg
        try:
            self._mapping_ir = self._core.read_model(str(self.path / FILES[0]), str(self.path / FILES[1]))
            self._mapping = self._core.compile_model(self._mapping_ir, "CPU", cfg)
            synthesis = self._core.read_model(str(self.path / FILES[2]), str(self.path / FILES[3]))
            self._synthesis = self._core.compile_model(synthesis, "CPU", cfg)
        except RuntimeError as e:
            raise GeneratorUnavailable(f"{self.path}: cannot read the generator: {str(e).splitlines()[0]}") from None

    @cached_property
    def mean_style(self) -> np.ndarray:
        """The mean of 4,096 mapped styles from a fixed seed: the truncation centre (512,)."""
        z = np.random.default_rng(MEAN_SEED).standard_normal((MEAN_STYLES, LATENT_DIM)).astype(np.float32)
        ir = self._mapping_ir.clone()
        ir.reshape({ir.inputs[0].get_any_name(): [MEAN_STYLES, LATENT_DIM]})
        styles = self._core.compile_model(ir, "CPU", self._cfg)([z])[0]
        return styles.astype(np.float64).mean(0).astype(np.float32)

    def style(self, z: np.ndarray, psi: float = DEFAULT_TRUNCATION) -> np.ndarray:
        """w' = mean + psi (mapping(z) - mean), (512,) float32."""
        w = self._mapping([z.reshape(1, LATENT_DIM)])[0][0]
        if psi == 1.0:
            return w
        m = self.mean_style
        return (m + np.float32(psi) * (w - m)).astype(np.float32)

    def render(self, w: np.ndarray) -> np.ndarray:
        """The 1024^2 uint8 RGB face of style w."""
        img = self._synthesis([w.reshape(1, LATENT_DIM)])[0][0]
        return np.clip((img.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)

    def face(self, seed: int, index: int, psi: float = DEFAULT_TRUNCATION, size: int = NATIVE_SIZE) -> np.ndarray:
        """Face `index` of run `seed` at truncation `psi`, resized to size^2 (uint8 RGB)."""
        return to_size(self.render(self.style(latent(seed, index), psi)), size)
