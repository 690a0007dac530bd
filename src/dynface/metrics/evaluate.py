"""Evaluate a folder of restored faces: per-image rows, means, FID/KID, CSV/JSON report.

``evaluate(restored_dir, gt_dir=None, ref_dir=None, metrics=None, y_channel=False)``

* Full-reference metrics (``psnr``, ``ssim``, ``id``, ``lmd``) need ``gt_dir``.  Restored files
  are matched to ground truth by file stem, in this order:
  1. the exact stem (``name.png`` <-> ``name.jpg``);
  2. the stem without a trailing ``_<digits>`` (``name_00.png`` -> ``name``), the suffix face
     restorers add per detected face;
  3. the longest ground-truth stem ``g`` with ``stem.startswith(g + "_")``
     (``name_restored.png`` -> ``name``).
  The row says which rule matched (``match`` = exact / suffix / prefix).  A restored image
  whose size differs from its ground truth but has the same aspect ratio (within 1 %) is
  compared with the ground truth resized to the restored size (PIL bicubic, antialiased;
  the row's ``note`` says so); other size mismatches fail the full-reference metrics of that
  row.
* No-reference metrics (``niqe``, ``brisque``) run on every restored image.
* Set metrics (``fid``, ``kid``) compare all readable restored images with all readable images
  of ``ref_dir`` when given (e.g. FFHQ for a real-degradation set such as val/real), else of
  ``gt_dir``.  When the restored and reference sets are in one-to-one correspondence (each
  restored image matched to a distinct ground truth, reference = gt_dir), KID uses the paired
  U-statistic, which is unbiased despite the pairing and exactly 0 for identical sets;
  otherwise the Binkowski et al. subset estimator (see ``fid.kid_from_features``).
* A bad image (unreadable, too small, wrong size) is reported in its row and left out of the
  means; it never stops the run.  A metric that cannot run here (missing package or model
  file) is listed once in ``skipped`` with the reason.

Means: arithmetic mean over the rows where the value is finite; PSNR = inf (identical pair)
is excluded from the PSNR mean and counted in ``means["psnr_n_inf"]`` (mean is inf if every
pair is identical).
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dynface.core.imageio import ImageError, list_images, read_rgb, write_bytes_atomic
from dynface.metrics.identity import MetricUnavailable

__all__ = [
    "ALL_METRICS", "FULL_REF_METRICS", "NO_REF_METRICS", "SET_METRICS", "EvalResult",
    "match_files", "evaluate", "write_report", "format_table", "run_eval_cli",
]

FULL_REF_METRICS = ("psnr", "ssim", "id", "lmd")
NO_REF_METRICS = ("niqe", "brisque")
SET_METRICS = ("fid", "kid")
ALL_METRICS = FULL_REF_METRICS + NO_REF_METRICS + SET_METRICS

# per-image numeric columns and whether larger is better (for the table legend)
_NUMERIC = ("psnr", "ssim", "id_cos", "id_dist", "lmd", "niqe", "brisque")


@dataclass
class EvalResult:
    """Everything an evaluation produced; ``to_dict`` is what the JSON report holds."""

    restored_dir: str
    gt_dir: str | None
    ref_dir: str | None
    metrics: list[str]                      # metrics that ran
    y_channel: bool
    rows: list[dict] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    set_metrics: dict[str, float] = field(default_factory=dict)
    set_info: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it did not run
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_errors(self) -> int:
        return sum(1 for r in self.rows if r.get("status", "ok") != "ok")

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, np.integer):
        return int(x)
    return x


# ------------------------------------------------------------------ matching

_SUFFIX = re.compile(r"^(.+)_\d+$")


def match_files(restored: list[Path], gt: list[Path]) -> dict[Path, tuple[Path | None, str]]:
    """Map each restored path to (ground-truth path or None, rule); see the module docstring."""
    by_stem: dict[str, Path] = {}
    for g in sorted(gt):
        by_stem.setdefault(g.stem, g)
    stems_longest_first = sorted(by_stem, key=len, reverse=True)
    out: dict[Path, tuple[Path | None, str]] = {}
    for r in restored:
        s = r.stem
        if s in by_stem:
            out[r] = (by_stem[s], "exact")
            continue
        m = _SUFFIX.match(s)
        if m and m.group(1) in by_stem:
            out[r] = (by_stem[m.group(1)], "suffix")
            continue
        hit = next((g for g in stems_longest_first if s.startswith(g + "_")), None)
        out[r] = (by_stem[hit], "prefix") if hit else (None, "none")
    return out


def _resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BICUBIC), dtype=np.uint8)


def _same_aspect(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= 0.01 * (b[0] / b[1])


# ------------------------------------------------------------------ evaluation

def _normalise_metrics(metrics) -> list[str]:
    if metrics is None:
        return list(ALL_METRICS)
    if isinstance(metrics, str):
        metrics = [m for m in re.split(r"[,\s]+", metrics) if m]
    out = []
    for m in metrics:
        m = m.lower().strip()
        m = {"id_dlib": "id", "identity": "id", "lpips": "lpips", "dists": "dists", "arcface": "arcface"}.get(m, m)
        if m not in out:
            out.append(m)
    return out


def unknown_metrics(metrics) -> list[str]:
    """The names in `metrics` that are no metric at all (not even a known-unavailable one)."""
    return [m for m in (_normalise_metrics(metrics) if metrics else []) if m not in ALL_METRICS and m not in _UNAVAILABLE]


_UNAVAILABLE = {
    "lpips": "LPIPS unavailable: needs pretrained AlexNet/VGG + LPIPS linear weights, not shipped offline",
    "dists": "DISTS unavailable: needs pretrained VGG + DISTS weights, not shipped offline",
    "arcface": "ArcFace unavailable: no ArcFace weights offline; use 'id' (dlib 128-D) instead",
}


def evaluate(restored_dir, gt_dir=None, ref_dir=None, metrics=None, y_channel: bool = False,
             crop_border: int = 0, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
             batch_size: int = 8, progress: Callable[[int, int, str], None] | None = None) -> EvalResult:
    """Evaluate every image of `restored_dir` (see the module docstring for the rules).

    metrics: iterable or comma string out of ``ALL_METRICS`` (default: all; the ones that
    cannot run -- no ground truth, no reference set, missing package -- are listed in
    ``result.skipped``).  y_channel: PSNR/SSIM on BT.601 Y instead of RGB.  crop_border:
    pixels removed on each side before PSNR/SSIM/NIQE.  progress(i, n, name) is called per
    image.  Missing folders raise ImageError; a restored folder without images too.
    """
    t0 = time.time()
    requested = _normalise_metrics(metrics)
    restored_dir = Path(restored_dir)
    if not restored_dir.is_dir():
        raise ImageError(f"{restored_dir}: not a folder")
    restored = list_images([restored_dir])
    if not restored:
        raise ImageError(f"{restored_dir}: no images found")
    gt_paths: list[Path] = []
    if gt_dir is not None:
        if not Path(gt_dir).is_dir():
            raise ImageError(f"{gt_dir}: not a folder")
        gt_paths = list_images([gt_dir])
    if ref_dir is not None and not Path(ref_dir).is_dir():
        raise ImageError(f"{ref_dir}: not a folder")

    res = EvalResult(str(restored_dir), None if gt_dir is None else str(gt_dir),
                     None if ref_dir is None else str(ref_dir), [], bool(y_channel))
    stems: dict[str, list[str]] = {}
    for g in gt_paths:
        stems.setdefault(g.stem, []).append(g.name)
    for stem, names in sorted(stems.items()):
        if len(names) > 1:
            res.notes.append(f"ground truths {', '.join(sorted(names))} share the stem {stem!r}; "
                             f"{sorted(names)[0]} is used for it")

    # decide what runs
    run: list[str] = []
    for m in requested:
        if m in _UNAVAILABLE:
            res.skipped[m] = _UNAVAILABLE[m]
        elif m not in ALL_METRICS:
            res.skipped[m] = f"unknown metric (known: {', '.join(ALL_METRICS)})"
        elif m in FULL_REF_METRICS and gt_dir is None:
            res.skipped[m] = "needs ground truth (--gt)"
        elif m in SET_METRICS and gt_dir is None and ref_dir is None:
            res.skipped[m] = "needs a reference set (--gt or --ref)"
        else:
            run.append(m)
    if "id" in run or "lmd" in run:
        try:
            from dynface.metrics.identity import _models
            _models()
        except MetricUnavailable as e:
            for m in ("id", "lmd"):
                if m in run:
                    run.remove(m)
                    res.skipped[m] = str(e)
    if "brisque" in run:
        from dynface.metrics.noref import brisque_available
        ok, why = brisque_available()
        if not ok:
            run.remove("brisque")
            res.skipped["brisque"] = why
    if "niqe" in run:
        from dynface.metrics.noref import NIQE_PARAMS
        if not NIQE_PARAMS.is_file():
            run.remove("niqe")
            res.skipped["niqe"] = f"NIQE pristine model missing: {NIQE_PARAMS}"
    if "fid" in run or "kid" in run:
        try:
            from dynface.metrics.fid import load_inception
            load_inception()
        except MetricUnavailable as e:
            for m in SET_METRICS:
                if m in run:
                    run.remove(m)
                    res.skipped[m] = str(e)
    res.metrics = run

    import dynface.metrics.fidelity as fidelity
    import dynface.metrics.noref as noref
    from dynface.metrics.fid import inception_features
    from dynface.metrics.identity import identity as id_dlib, landmark_distance

    matches = match_files(restored, gt_paths) if gt_dir is not None else {r: (None, "none") for r in restored}
    want_set = any(m in run for m in SET_METRICS)
    gen_feats: list[np.ndarray] = []
    gen_gt: list[Path | None] = []
    fr = [m for m in FULL_REF_METRICS if m in run]

    for i, rpath in enumerate(restored):
        if progress is not None:
            progress(i, len(restored), rpath.name)
        gpath, rule = matches[rpath]
        row: dict = {"name": rpath.name, "gt": gpath.name if gpath else "", "match": rule, "status": "ok"}
        notes: list[str] = []
        try:
            img = read_rgb(rpath)
        except ImageError as e:
            row["status"] = f"error: {e}"
            res.rows.append(row)
            continue
        row["size"] = f"{img.shape[1]}x{img.shape[0]}"
        if crop_border and 2 * int(crop_border) >= min(img.shape[:2]) and {"psnr", "ssim", "niqe"} & set(run):
            row["status"] = (f"error: --crop-border {crop_border} leaves no pixels of a "
                             f"{img.shape[1]}x{img.shape[0]} image")
            res.rows.append(row)
            continue
        # full reference
        if fr:
            gt_img = None
            if gpath is None:
                notes.append("no ground-truth match")
            else:
                try:
                    gt_img = read_rgb(gpath)
                except ImageError as e:
                    notes.append(f"ground truth unreadable: {e}")
                if gt_img is not None and gt_img.shape != img.shape:
                    if _same_aspect(img.shape, gt_img.shape):
                        notes.append(f"gt resized {gt_img.shape[1]}x{gt_img.shape[0]}->{img.shape[1]}x{img.shape[0]}")
                        gt_img = _resize_to(gt_img, img.shape[:2])
                    else:
                        notes.append(f"size mismatch with gt ({gt_img.shape[1]}x{gt_img.shape[0]})")
                        gt_img = None
            if gt_img is None:
                row["status"] = "error: " + notes[-1]
            else:
                for m, fn in (("psnr", lambda: {"psnr": fidelity.psnr(img, gt_img, y_channel, crop_border)}),
                              ("ssim", lambda: {"ssim": fidelity.ssim(img, gt_img, y_channel, crop_border)}),
                              ("id", lambda: id_dlib(img, gt_img)),
                              ("lmd", lambda: landmark_distance(img, gt_img))):
                    if m in run:
                        try:
                            row.update(fn())
                        except Exception as e:  # one metric failing must not stop the row
                            notes.append(f"{m}: {type(e).__name__}: {e}")
        # no reference
        if "niqe" in run:
            try:
                row["niqe"] = noref.niqe(img, crop_border)
            except Exception as e:
                notes.append(f"niqe: {type(e).__name__}: {e}")
        if "brisque" in run:
            try:
                row["brisque"] = noref.brisque(img)
            except Exception as e:
                notes.append(f"brisque: {type(e).__name__}: {e}")
        if want_set:
            gen_feats.append(inception_features([img], batch_size=1)[0])
            gen_gt.append(gpath)
        if row.get("face_restored") == "whole-image":
            notes.append("no face detected in restored image: whole image used")
        if row.get("face_gt") == "whole-image":
            notes.append("no face detected in gt: whole image used")
        row["note"] = "; ".join(notes)
        nan = [k for k in ("psnr", "ssim", "niqe", "brisque") if isinstance(row.get(k), float) and math.isnan(row[k])]
        if nan and row["status"] == "ok":  # a metric that computed nothing is a failed row, not a number
            row["status"] = f"error: {', '.join(nan)} not a number" + (f" ({row['note']})" if row["note"] else "")
        res.rows.append(row)

    _summarise(res)
    if want_set:
        _set_metrics(res, run, gen_feats, gen_gt, gt_dir, ref_dir, batch_size, kid_subsets, kid_subset_size, seed)
    res.seconds = time.time() - t0
    return res


def _summarise(res: EvalResult) -> None:
    from dynface.metrics.fidelity import mean_psnr

    ok_rows = [r for r in res.rows if r.get("status") == "ok"]
    for k in _NUMERIC:
        vals = [r[k] for r in ok_rows if isinstance(r.get(k), (int, float))]
        if not vals:
            continue
        if k == "psnr":
            m, n_inf = mean_psnr(vals)
            res.means["psnr"] = m
            res.means["psnr_n_inf"] = n_inf
            res.counts["psnr"] = len(vals)
            continue
        finite = [float(v) for v in vals if math.isfinite(v)]
        res.means[k] = float(np.mean(finite)) if finite else math.nan
        res.counts[k] = len(finite)
    if "id" in res.metrics:
        dists = [r["id_dist"] for r in ok_rows if "id_dist" in r]
        if dists:
            res.means["id_same_person_rate"] = float(np.mean([d < 0.6 for d in dists]))


def _set_metrics(res, run, gen_feats, gen_gt, gt_dir, ref_dir, batch_size, kid_subsets, kid_subset_size, seed):
    from dynface.metrics.fid import fid_from_features, inception_features, kid_from_features

    ref_is_gt = ref_dir is None
    ref_root = Path(gt_dir if ref_is_gt else ref_dir)
    ref_paths = list_images([ref_root])
    ref_imgs, bad = [], []
    for p in ref_paths:
        try:
            ref_imgs.append((p, read_rgb(p)))
        except ImageError as e:
            bad.append(str(e))
    if bad:
        res.notes.append(f"{len(bad)} unreadable reference image(s) left out of FID/KID: " + "; ".join(bad[:3]))
    info = {"reference": "gt" if ref_is_gt else "ref", "reference_dir": str(ref_root),
            "n_restored": len(gen_feats), "n_reference": len(ref_imgs)}
    if len(gen_feats) < 2 or len(ref_imgs) < 2:
        for m in SET_METRICS:
            if m in run:
                res.skipped[m] = f"needs >= 2 images per set (restored {len(gen_feats)}, reference {len(ref_imgs)})"
        res.set_info = info
        return
    g = np.stack(gen_feats)
    r = inception_features((im for _, im in ref_imgs), batch_size=batch_size)
    ref_index = {p: i for i, (p, _) in enumerate(ref_imgs)}
    paired = (ref_is_gt and len(gen_gt) == len(ref_imgs) and all(p in ref_index for p in gen_gt)
              and len(set(gen_gt)) == len(gen_gt))
    if "fid" in run:
        res.set_metrics["fid"] = fid_from_features(g, r)
        if min(len(g), len(r)) < 2048:
            res.notes.append(f"FID on {len(g)} vs {len(r)} images (< 2048 features): biased upwards; "
                             "compare only between methods on the same sets")
    if "kid" in run:
        if paired:
            r_aligned = r[[ref_index[p] for p in gen_gt]]
            res.set_metrics["kid"] = kid_from_features(g, r_aligned, kid_subsets, kid_subset_size, seed, paired=True)
        else:
            res.set_metrics["kid"] = kid_from_features(g, r, kid_subsets, kid_subset_size, seed)
        info["kid_estimator"] = "paired U-statistic" if paired else "unbiased MMD^2 over subsets (Binkowski)"
    res.set_info = info


# ------------------------------------------------------------------ reports

_COLUMNS = ["name", "gt", "match", "size", "status", "psnr", "ssim", "id_cos", "id_dist", "face_restored",
            "face_gt", "lmd", "lmd_anchor", "lmd_offset", "niqe", "brisque", "note"]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return str(v)


def _columns(res: EvalResult) -> list[str]:
    present = {k for r in res.rows for k in r}
    cols = [c for c in _COLUMNS if c in present] + sorted(present - set(_COLUMNS) - {"note"})
    cols += [k for k in SET_METRICS if k in res.set_metrics]  # filled on the MEAN row only
    return cols + (["note"] if "note" in present else [])


def write_report(result: EvalResult, out_dir) -> dict[str, Path]:
    """Write ``metrics.csv`` (per-image rows, then a MEAN row and set metrics) and
    ``metrics.json`` (everything) atomically into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    cols = _columns(result)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in result.rows:
        w.writerow([_fmt(r.get(c)) for c in cols])
    mean_row = {"name": "MEAN", "status": f"{len(result.rows) - result.n_errors} ok / {len(result.rows)}"}
    mean_row.update({k: v for k, v in result.means.items() if k in cols})
    mean_row.update(result.set_metrics)
    w.writerow([_fmt(mean_row.get(c)) for c in cols])
    paths = {"csv": out_dir / "metrics.csv", "json": out_dir / "metrics.json"}
    write_bytes_atomic(paths["csv"], buf.getvalue().encode("utf-8", "backslashreplace"))  # odd bytes escaped: valid UTF-8
    doc = result.to_dict()
    doc["columns"] = cols
    doc["metric_names"] = {"psnr": "PSNR (Y, dB)" if result.y_channel else "PSNR (RGB, dB)",
                           "ssim": "SSIM (Y)" if result.y_channel else "SSIM (RGB)",
                           "id_cos": "ID (dlib) cosine", "id_dist": "ID (dlib) distance",
                           "lmd": "LMD (dlib 68, px)", "niqe": "NIQE", "brisque": "BRISQUE",
                           "fid": "FID (Inception, StyleGAN3/TF weights)", "kid": "KID"}
    write_bytes_atomic(paths["json"], (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return paths


_HEAD = {"psnr": "PSNR", "ssim": "SSIM", "id_cos": "ID cos", "id_dist": "ID dist", "lmd": "LMD",
         "niqe": "NIQE", "brisque": "BRISQUE"}


def format_table(result: EvalResult, per_image: bool = True, max_rows: int | None = None) -> str:
    """A plain-text table for the terminal: per-image rows, the means, FID/KID, skipped metrics."""
    num = [k for k in _NUMERIC if any(k in r for r in result.rows)]
    heads = ["image"] + [_HEAD[k] + ("(Y)" if result.y_channel and k in ("psnr", "ssim") else "") for k in num] + ["note"]

    def cell(k, v):
        if v is None or v == "":
            return "-"
        if isinstance(v, float):
            if math.isinf(v):
                return "inf"
            if math.isnan(v):
                return "nan"
            return f"{v:.4f}" if k in ("ssim", "id_cos", "id_dist") else f"{v:.2f}"
        return str(v)

    body = []
    rows = result.rows if max_rows is None else result.rows[:max_rows]
    if per_image:
        for r in rows:
            note = r.get("note", "") if r.get("status") == "ok" else r.get("status", "")
            body.append([r["name"]] + [cell(k, r.get(k)) for k in num] + [note])
        if max_rows is not None and len(result.rows) > max_rows:
            body.append([f"... {len(result.rows) - max_rows} more"] + [""] * (len(num) + 1))
    mean = ["MEAN"] + [cell(k, result.means.get(k)) for k in num]
    extra = []
    if result.means.get("psnr_n_inf"):
        extra.append(f"{result.means['psnr_n_inf']} identical pair(s) (PSNR=inf) not in the PSNR mean")
    mean.append("; ".join(extra))
    widths = [max(len(str(x)) for x in col) for col in zip(heads, mean, *body)]
    widths[-1] = max(len(heads[-1]), min(widths[-1], 60))

    def line(cells):
        out = [str(cells[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])] + [str(cells[-1])]
        return "  ".join(out).rstrip()

    lines = []
    if num:  # no per-image metric ran (e.g. only FID/KID): no table
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines += [line(heads), rule] + [line(b) for b in body] + ([rule] if body else []) + [line(mean)]
    else:
        lines += [f"{r['name']}: {r['status']}" for r in result.rows if r.get("status") != "ok"]
    if result.set_metrics:
        info = result.set_info
        sets = f"{info.get('n_restored')} restored vs {info.get('n_reference')} {info.get('reference')} images"
        lines.append("  ".join(f"{k.upper()} {v:.4f}" for k, v in result.set_metrics.items()) + f"   ({sets})")
    by_reason: dict[str, list[str]] = {}
    for m, why in result.skipped.items():
        by_reason.setdefault(why, []).append(m)
    for why, ms in by_reason.items():
        lines.append(f"skipped {', '.join(ms)}: {why}")
    for n in result.notes:
        lines.append(f"note: {n}")
    n_err = result.n_errors
    lines.append(f"{len(result.rows)} image(s), {n_err} with errors, {result.seconds:.1f} s")
    return "\n".join(lines)
