"""Evaluate a folder of restored faces: per-image rows, means, FID/KID (reports: `metrics/report.py`;
matching: `metrics/matching.py`; metric names and availability: `metrics/names.py`).

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

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dynface.core.imageio import ImageError, list_images, read_rgb
from dynface.metrics.identity import MetricUnavailable
from dynface.metrics.matching import match_files, resize_to, same_aspect
from dynface.metrics.names import (ALL_METRICS, FULL_REF_METRICS, NUMERIC_COLUMNS, SET_METRICS, UNAVAILABLE,
                                   normalise_metrics)

__all__ = ["EvalResult", "evaluate"]


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


# ------------------------------------------------------------------ evaluation

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
    requested = normalise_metrics(metrics)
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
        if m in UNAVAILABLE:
            res.skipped[m] = UNAVAILABLE[m]
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
                    if same_aspect(img.shape, gt_img.shape):
                        notes.append(f"gt resized {gt_img.shape[1]}x{gt_img.shape[0]}->{img.shape[1]}x{img.shape[0]}")
                        gt_img = resize_to(gt_img, img.shape[:2])
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
    for k in NUMERIC_COLUMNS:
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
