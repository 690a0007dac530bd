"""The reports of an evaluation: CSV and JSON files (`write_report`) and the terminal table
(`format_table`)."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from dynface.core.imageio import write_bytes_atomic
from dynface.metrics.names import NUMERIC_COLUMNS, SET_METRICS

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


def _columns(res) -> list[str]:
    present = {k for r in res.rows for k in r}
    cols = [c for c in _COLUMNS if c in present] + sorted(present - set(_COLUMNS) - {"note"})
    cols += [k for k in SET_METRICS if k in res.set_metrics]  # filled on the MEAN row only
    return cols + (["note"] if "note" in present else [])


def write_report(result, out_dir) -> dict[str, Path]:
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


def format_table(result, per_image: bool = True, max_rows: int | None = None) -> str:
    """A plain-text table for the terminal: per-image rows, the means, FID/KID, skipped metrics."""
    num = [k for k in NUMERIC_COLUMNS if any(k in r for r in result.rows)]
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
