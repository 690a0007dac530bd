"""One photo file -> the GFPGAN/CodeFormer-style output folders (`cropped_faces/`, `restored_faces/`,
`cmp/`, `final_results/`), and `FaceJobOptions`, the one options object of a face job. The geometry
(detect, align, restore, paste back) is `face/whole.py`."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from dynface.core.imageio import check_output_pixels, read_rgb, write_image
from dynface.face.detect import DEFAULT_MIN_SCORE
from dynface.face.whole import DEFAULT_MIN_FACE, RestoreFn, restore_whole_image

__all__ = ["FaceJobOptions", "PhotoReport", "compose_side_by_side", "final_output", "process_photo_to_dir"]


def compose_side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[a | b]`` at the taller one's height: the shorter is enlarged (bicubic, keeping its aspect),
    so an upsampled face is shown at its own size beside the crop it came from."""
    nh = max(a.shape[0], b.shape[0])

    def tall(im):
        if im.shape[0] == nh:
            return im
        return cv2.resize(im, (max(1, round(im.shape[1] * nh / im.shape[0])), nh), interpolation=cv2.INTER_CUBIC)

    return np.concatenate([tall(a), tall(b)], axis=1)


_WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class FaceJobOptions:
    """How a face job treats each photo and names its files: one object for `restore` (local or Ray)
    and the library. `aligned_template` "model" means the model set's own template (`resolved`)."""

    aligned: bool = False                  # the inputs are aligned face crops (no detection)
    aligned_template: str = "ffhq"         # their framing: ffhq | utkface | model
    only_center_face: bool = False
    upscale: float = 1
    suffix: str | None = None              # restored_faces/<stem>_NN_<suffix>.png, final_results/<stem>_<suffix>.<ext>
    ext: str = "auto"                      # final image extension; auto = the input's
    draw_box: bool = False
    min_face: float = DEFAULT_MIN_FACE
    min_score: float = DEFAULT_MIN_SCORE
    border: str = "reflect"

    def resolved(self, model_template: str) -> FaceJobOptions:
        """These options with `aligned_template` "model" replaced by the model set's template name."""
        if self.aligned_template != "model":
            return self
        return replace(self, aligned_template=model_template)

    def whole_kwargs(self) -> dict:
        """The keyword arguments of `restore_whole_image`."""
        return {"aligned": self.aligned, "aligned_template": self.aligned_template,
                "only_center_face": self.only_center_face, "upscale": self.upscale, "min_face": self.min_face,
                "min_score": self.min_score, "draw_box": self.draw_box, "border": self.border}


@dataclass
class PhotoReport:
    input: str
    outputs: dict[str, list[str]]
    faces: list[dict]
    warnings: list[str]
    n_detected: int
    n_restored: int
    n_skipped: int
    size_in: tuple[int, int]         # (w, h)
    size_out: tuple[int, int]
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _final_ext(path: Path, ext: str | None) -> str:
    if ext is None or ext == "auto":
        e = path.suffix.lower()
        return e if e in _WRITABLE else ".png"
    e = "." + ext.lower().lstrip(".")
    if e not in _WRITABLE:
        raise ValueError(f"unsupported output extension {ext!r}; use one of {sorted(x[1:] for x in _WRITABLE)}")
    return e


def final_output(out_dir, path, suffix: str | None = None, ext: str = "auto", stem: str | None = None) -> Path:
    """final_results/<stem>[_suffix].<ext> of one photo (stem: the output-name policy's, default the
    file's own): written last, so it marks the photo done."""
    sfx = f"_{suffix}" if suffix else ""
    return Path(out_dir) / "final_results" / f"{stem or Path(path).stem}{sfx}{_final_ext(Path(path), ext)}"


def process_photo_to_dir(
    path,
    out_dir,
    restore_fn: RestoreFn | None,
    template_pts,
    crop_size,
    opts: FaceJobOptions | None = None,
    *,
    on_result: Callable | None = None,
    stem: str | None = None,
    **options,
) -> PhotoReport:
    """Restore one photo file and write the GFPGAN/CodeFormer-style folders under `out_dir`
    (`opts`, or FaceJobOptions fields given as keywords, say how):

        cropped_faces/<stem>_<NN>.png          aligned crops given to the restorer
        restored_faces/<stem>_<NN>[_suffix].png
        cmp/<stem>_<NN>.png                    cropped | restored side by side
        final_results/<stem>[_suffix].<ext>    the whole photo (ext "auto" = the input's)

    NN is the face's index in left-to-right order (skipped tiny faces keep their number and
    have no files).  ``on_result(rgb, result, stem, sfx, final_ext) -> {folder: [paths]}`` may
    write more files (e.g. uncertainty maps) before the final image.  Every file is written atomically (dynface.core.imageio.write_image); the final
    image is written last.  EXIF orientation is applied on reading.  Raises
    `dynface.core.imageio.ImageError` for unreadable input or unwritable output; a photo with no
    face is not an error (passed through, with a warning in the report).
    """
    t0 = time.perf_counter()
    opts = replace(opts or FaceJobOptions(), **options)
    suffix, ext = opts.suffix, opts.ext
    path, out_dir = Path(path), Path(out_dir)
    final_ext = _final_ext(path, ext)  # an unsupported --ext fails before any work
    if suffix is not None and any(c in str(suffix) for c in "/\\\0"):
        raise ValueError(f"suffix must not contain path separators: {suffix!r}")
    sfx = f"_{suffix}" if suffix else ""
    rgb = read_rgb(path)
    if opts.upscale != 1:  # the output must fit the pixel cap too, checked before it is made
        from dynface.face.paste import _up_size

        uh, uw = _up_size(rgb.shape[0], rgb.shape[1], opts.upscale)
        check_output_pixels(path, uw, uh)
    res = restore_whole_image(rgb, restore_fn, template_pts, crop_size, **opts.whole_kwargs())
    stem = stem or path.stem
    outputs: dict[str, list[str]] = {"cropped_faces": [], "restored_faces": [], "cmp": [], "final_results": []}
    for r in res.restored_records:
        name = f"{stem}_{r.index:02d}"
        outputs["cropped_faces"].append(str(write_image(out_dir / "cropped_faces" / f"{name}.png", r.cropped)))
        outputs["restored_faces"].append(str(write_image(out_dir / "restored_faces" / f"{name}{sfx}.png", r.restored)))
        outputs["cmp"].append(str(write_image(out_dir / "cmp" / f"{name}.png", compose_side_by_side(r.cropped, r.restored))))
    if on_result is not None:
        outputs.update(on_result(rgb, res, stem, sfx, final_ext))
    outputs["final_results"].append(str(write_image(final_output(out_dir, path, suffix, ext, stem), res.image)))
    return PhotoReport(
        input=str(path), outputs=outputs, faces=[f.to_dict() for f in res.faces], warnings=list(res.warnings),
        n_detected=res.n_detected, n_restored=res.n_restored, n_skipped=res.n_skipped,
        size_in=(rgb.shape[1], rgb.shape[0]), size_out=(res.image.shape[1], res.image.shape[0]),
        seconds=round(time.perf_counter() - t0, 3),
    )
