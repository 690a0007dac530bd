"""Image files in and out: clear errors for bad input, atomic writes, tensors in [-1, 1].

Every reader raises `ImageError` with a one-line message; the CLI turns it into an exit code.
Inputs are checked before they are decoded: only regular files (a FIFO or a device would block
or never end), at most `max_pixels()` pixels (`--max-pixels`, $DYNFACE_MAX_PIXELS; Pillow's own
bomb limit is only the last line). Writes go through `dynface.core.atomic` (no half-written file).
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dynface.core.atomic import is_temp_or_hidden, write_atomic, write_bytes
from dynface.core.files import FileRefused, open_regular
from dynface.errors import DynfaceError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
MAX_PIXELS_ENV = "DYNFACE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000  # 8000x8000; a 48 MP phone photo fits, a 13000^2 PNG bomb does not
_max_pixels: int | None = None   # set by set_max_pixels (the CLI's --max-pixels)


class ImageError(DynfaceError):
    """A problem with an input or output image, said in one line."""


class ImageWarning(UserWarning):
    """Something about an input the user should know (e.g. only the first frame of a GIF is used)."""


def set_max_pixels(n: int | None) -> None:
    """The pixel cap for every later read (None: back to $DYNFACE_MAX_PIXELS or the default)."""
    global _max_pixels
    if n is not None and int(n) < 64:
        raise ValueError(f"max pixels must be >= 64, got {n}")
    _max_pixels = None if n is None else int(n)


def max_pixels() -> int:
    """The pixel cap: set_max_pixels, else $DYNFACE_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return DEFAULT_MAX_PIXELS
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 64:
        raise ImageError(f"${MAX_PIXELS_ENV}={env!r}: not a pixel count >= 64")
    return n


def _is_loop(p: Path) -> bool:
    import errno

    try:
        os.stat(p)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def _folder_entries(p: Path) -> list[Path]:
    try:
        return list(p.iterdir())
    except PermissionError:
        raise ImageError(f"{p}: folder not readable (permission denied)") from None
    except OSError as e:
        raise ImageError(f"{p}: cannot list folder ({e.strerror or e})") from None


def list_images(paths) -> list[Path]:
    """Expand files and folders (non-recursive, sorted) into image paths; missing paths raise.

    A folder's dot files are skipped (interrupted writes leave `.tmp-*` files; see dynface.core.atomic).
    A file named twice (directly and through its folder) is listed once. A path that is neither a
    folder nor missing is kept, whatever it is: `read_rgb` refuses it with its reason, so a batch
    reports it and goes on. In a folder, a symlink loop with an image extension is kept too (and
    then reported by name); an unreadable folder is an ImageError naming it."""
    out: list[Path] = []
    seen: set[str] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in _folder_entries(p)
                           if q.suffix.lower() in IMAGE_EXTS and not is_temp_or_hidden(q.name)
                           and (q.is_file() or (q.is_symlink() and _is_loop(q))))
        elif p.exists() or p.is_symlink():
            found = [p]
        else:
            raise ImageError(f"{p}: no such file or folder")
        for q in found:
            key = os.path.realpath(q)
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def check_output_pixels(name, w: int, h: int) -> None:
    """An output of w x h must fit the pixel cap too (`--max-pixels`): refused before it is made."""
    cap = max_pixels()
    if w * h > cap:
        raise ImageError(f"{name}: the output would be {w}x{h} = {w * h / 1e6:.1f} MP, over the pixel cap of "
                         f"{cap / 1e6:.1f} MP (--max-pixels or ${MAX_PIXELS_ENV} raise it)")


def _open_regular(path: Path):
    """A binary file object for a regular file; ImageError for anything else (never blocks)."""
    try:
        return open_regular(path, "an image file")
    except FileRefused as e:
        raise ImageError(str(e)) from None


def read_rgb(path) -> np.ndarray:
    """Read any image as uint8 RGB (H, W, 3), EXIF orientation applied.

    Grayscale is replicated, alpha is composited on white, 16-bit is scaled from its full 0..65535
    range. Only regular files of at most `max_pixels()` pixels are decoded (the size is read from
    the header first). A file with several frames (GIF, multi-page TIFF) gives its first frame
    and an `ImageWarning`.
    """
    path = Path(path)
    cap = max_pixels()
    with _open_regular(path) as fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap decides
                im = Image.open(fh)
            with im:
                w, h = im.size
                if w * h > cap:
                    raise ImageError(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP is over the pixel cap of "
                                     f"{cap / 1e6:.1f} MP (--max-pixels or ${MAX_PIXELS_ENV} raise it)")
                frames = int(getattr(im, "n_frames", 1) or 1)
                fmt = im.format
                im = ImageOps.exif_transpose(im)
                im.load()
                arr = _to_rgb8(im)
        except ImageError:
            raise
        except Image.UnidentifiedImageError:
            empty = os.fstat(fh.fileno()).st_size == 0
            raise ImageError(f"{path}: {'empty file' if empty else 'not an image (format not recognised)'}") from None
        except Image.DecompressionBombError as e:
            raise ImageError(f"{path}: over Pillow's decompression-bomb limit ({e})".splitlines()[0]) from None
        except Exception as e:  # PIL raises many types for bad files
            raise ImageError(f"{path}: not a readable image ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'corrupt'})") from None
    if frames > 1:
        warnings.warn(ImageWarning(f"{path}: {fmt} with {frames} frames; only the first is used"), stacklevel=2)
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError(f"{path}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples: always the full 0..65535 scale, so a dark image stays dark (a peak-based
        # guess made every 16-bit image with max <= 255 look like 8-bit and brightened it 257x)
        a = np.asarray(im).astype(np.float64)
        a = np.clip(a / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
            ".tif": "TIFF", ".tiff": "TIFF"}


def writable_folder(folder) -> Path:
    """Create `folder` if needed and return it; ImageError (one line) when it cannot be made or written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(f"{folder}: cannot create output folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ImageError(f"{folder}: output folder is not writable")
    return folder


def write_image(path, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write uint8 RGB atomically (dynface.core.atomic: complete file or none, never a leftover temp)."""
    path = Path(path)
    writable_folder(path.parent)
    fmt = _FORMATS.get(path.suffix.lower(), "PNG")
    kw = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    img = Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)))
    try:
        return write_atomic(path, lambda tmp: img.save(tmp, format=fmt, **kw))
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write bytes atomically (CSV/JSON reports); ImageError when the folder or disk refuses."""
    path = Path(path)
    writable_folder(path.parent)
    try:
        return write_bytes(path, data)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


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
