"""Image files in and out: clear errors for bad input, atomic writes, tensors in [-1, 1].

Every reader raises `ImageError` with a one-line message; the CLI turns it into an exit code.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class ImageError(Exception):
    """A problem with an input or output image, said in one line."""


def list_images(paths) -> list[Path]:
    """Expand files and folders (non-recursive, sorted) into image paths; missing paths raise."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS and q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return out


def read_rgb(path) -> np.ndarray:
    """Read any image as uint8 RGB (H, W, 3), EXIF orientation applied.

    Grayscale is replicated, alpha is composited on white, 16-bit is scaled to 8-bit.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
            arr = _to_rgb8(im)
    except ImageError:
        raise
    except Exception as e:  # PIL raises many types for bad files
        raise ImageError(f"{path}: not a readable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt'})") from None
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(f"{path}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float64)
        peak = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def write_image(path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write uint8 RGB atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"{path.parent}: cannot create output folder ({e.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise ImageError(f"{path.parent}: output folder is not writable")
    suffix = path.suffix.lower() or ".png"
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
           ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, "PNG")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
            Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8))).save(f, format=fmt, **kw)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write bytes atomically (used for CSV/JSON reports)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
    os.replace(tmp, path)
    return path


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    if x.dim() == 4:
        x = x[0]
    return x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased when shrinking) resize of (B, C, H, W)."""
    import torch.nn.functional as F

    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)
