"""Learning curves: every training run scores its EMA network on a fixed validation set.

The validation set is the first `val_faces` faces of the first data source's name-hash val split
(data.py), or of the `val_data` folder (real faces kept apart from training), degraded once with a
fixed seed, so every evaluation of every run sees the same pixels. What is
measured per kind:

- rm:    PSNR / SSIM of RM(y) to the clean face, and the detail ratio (mean |Laplacian| of the
         grey output / that of the ground truth; 1 = as much fine detail as the real face).
- prior: x0_hat PSNR (Tweedie, Eq. 3) from x_t at t = 100, 300, 600 with fixed noise; with
         `restore_val_faces` > 0 also the whole default restoration with the candidate prior (as
         dgsa below; columns restored_psnr, restored_detail_ratio, restored_niqe): x0_hat PSNR
         rewards the posterior mean, which is smoother, not the detail the prior should add.
         `restore_val_data` restores faces of another folder instead (e.g. real val/clean faces
         for a prior trained on generated ones), `restore_fidelity` at a fidelity other than the
         set's default (the paper's 0.5 leaves the prior more to do than the embedded set's 1), and
         with `restore_default_too` at the default as well (columns restored_default_*: what users get).
         With `sample_kid: {samples, steps, eta, references: [FOLDER, ...]}` also KID x 1000 of
         that many unconditional samples (seed fixed) against the faces of each reference folder
         (column kid_<folder name>), the shares of samples with a face found and with FFHQ framing
         (faces_found, framed), the samples' mean detail energy over that of the first reference
         folder's faces (sample_detail_ratio; 1 = as sharp as the faces the prior learns from), and
         `last_samples` holds the first 64 for a sample grid.
- idm:   the same x0_hat PSNRs with the condition, and PSNR / detail ratio of a 10-step sample.
- se:    mean |sigma_hat - sigma*| against sigma* labels (Eq. 19) from the run's frozen RM.
- up:    the face upsampler on the faces shrunk by its scale (and blurred, with `input_blur`; or, with
         a frozen `rm`, degraded and restored by it, as the full method hands them over): PSNR /
         SSIM / detail ratio at the output size, beside bicubic enlargement's.
- dgsa:  the whole default restoration (DBLM, DSST, guided sampling with the candidate M_t of
         Eq. 12) of the first `dgsa_val_faces` faces, seed 0: PSNR, detail ratio and NIQE (from 96 px).

Rows go to `curve.csv` in the run folder, and `plot_curve` draws them (one panel per metric).
The networks run on their own device; the validation faces and every score stay on the CPU.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from dynface.core.atomic import write_bytes
from dynface.core.degradation import DegradationConfig, degrade_random
from dynface.core.imagemetrics import detail_energy, detail_ratio, psnr, ssim_pm1
from dynface.core.imageio import resize, to_tensor
from dynface.core.schedule import Schedule, space_timesteps, tweedie_x0
from dynface.training import data as data_mod
from dynface.training.config import TrainConfig

VAL_SEED = 20_251_123
X0_STEPS = (100, 300, 600)


def sample_faces(imgs: list) -> dict:
    """Shares of samples (uint8 RGB) in which the face detector finds a face (`faces_found`) and
    that pass the FFHQ framing check of generated training faces (`framed`: one face, eyes and
    landmarks near the template; face/framing.py); {} where the detector cannot load."""
    from dynface.face.detect import DetectorUnavailable
    from dynface.face.framing import check_framing

    try:
        checks = [check_framing(im) for im in imgs]
    except DetectorUnavailable:
        return {}
    return {"faces_found": sum(c.faces > 0 for c in checks) / len(checks),
            "framed": sum(c.ok for c in checks) / len(checks)}


def mean_detail(imgs: list) -> float:
    """Mean detail energy (core/imagemetrics.py) of uint8 RGB images."""
    return float(detail_energy(torch.cat([to_tensor(im) for im in imgs])).mean())


def degrade_val(x: torch.Tensor, degradation: dict | None) -> torch.Tensor:
    """The validation faces degraded once with `degradation` ranges (None: the paper's), face i
    with its own stream of the fixed VAL_SEED, so every evaluation sees the same pixels."""
    dcfg = DegradationConfig.from_dict(degradation)
    return torch.cat([degrade_random(x[i:i + 1], dcfg, VAL_SEED, i)[0] for i in range(len(x))])


def read_faces(folder, split: str, cfg: TrainConfig, n: int, empty: str) -> torch.Tensor:
    """The first n faces of `folder`'s `split` at the run's size, in [-1, 1] (ImageError `empty` if none)."""
    x = data_mod.load_cache(folder, cfg.size, split, cache_dir=cfg.cache_dir, limit=n)
    if len(x) == 0:
        raise data_mod.ImageError(empty)
    return x.float().div(127.5).sub(1)


class Validator:
    """Scores a network of one kind on the fixed validation faces (see the module docstring)."""

    def __init__(self, kind: str, cfg: TrainConfig | dict, frozen: dict | None = None):
        cfg = TrainConfig.of(cfg)
        self.kind, self.cfg, self.frozen = kind, cfg, frozen or {}
        n = cfg.val_faces
        # all of a `val_data` folder kept apart from training (real faces judging a run on generated
        # ones), else the val split of the first source
        folder, split = (data_mod.expand(cfg.val_data), "all") if cfg.val_data else (data_mod.first_folder(cfg.data), "val")
        # a small folder whose name-hash split (about 2 %) may hold no file
        self.x = read_faces(folder, split, cfg, n, f"{folder}: no validation faces (its {split} split is empty); "
                            "name a folder kept apart from training with `val_data:`, or set eval_every: 0")
        # the ranges restorations are scored on (the config's, else the model set's where it restores)
        self.degradation = cfg.degradation or self._modelset_degradation(kind, cfg)
        self.y_soft = None  # up with `input_blur`: the shrunk faces blurred by the middle of its range
        if kind == "up":  # the faces shrunk by the upsampler's scale: enlarging a sharp small face
            from dynface.networks.upsampler import UpsamplerConfig
            from dynface.training.losses import upsampler_input

            scale = UpsamplerConfig(**cfg.arch).scale
            self.y = upsampler_input(self.x, scale, None, None)
            if "rm" in self.frozen:  # what the full method hands it: the shrunk face degraded and restored by the RM
                rm = self.frozen["rm"]
                self.y = self._forward(rm, degrade_val(self.y, cfg.degradation), next(rm.parameters()).device)
            if cfg.input_blur:
                mid = sum(map(float, cfg.input_blur)) / 2
                self.y_soft = upsampler_input(self.x, scale, [mid, mid], lambda: 0.0)
            bicubic = resize(self.y, tuple(self.x.shape[-2:])).clamp(-1, 1)  # what the untrained network gives
            self._bicubic = {"input_psnr": psnr(bicubic, self.x), "input_detail_ratio": detail_ratio(bicubic, self.x)}
        else:
            self.y = degrade_val(self.x, self.degradation)
        self.schedule = Schedule.linear()
        self._sigma_star = None
        self._models = None  # dgsa: the model set the candidate map is scored in (loaded once)
        self._restore_xy = None  # restore_val_data: its clean faces and their degraded inputs
        self._ref_feats = None  # prior with sample_kid: Inception features of the reference folders
        self._ref_detail = None  # and the first reference folder's mean detail energy (sample_detail_ratio)
        self.last_samples = None  # prior with sample_kid: the first 64 samples of the last evaluation
        self.device = torch.device("cpu")  # the scored network's (set per call)

    @staticmethod
    def _modelset_degradation(kind: str, cfg: TrainConfig) -> dict | None:
        """A config without `degradation:` (the prior's: its loss degrades nothing) scores restorations
        (DGSA's always, the prior's with `restore_val_faces`) on faces degraded as the model set it
        restores with was trained for (its manifest), as the bench does, not with the paper's
        512-pixel ranges, which at 128 px leave faces without detail."""
        if not (kind == "dgsa" or cfg.restore_val_faces):
            return None
        import json

        from dynface.modelset.manifest import EMBEDDED_DIR

        root = Path(cfg.modelset) if cfg.modelset else EMBEDDED_DIR
        return json.loads((root / "manifest.json").read_text()).get("degradation")

    @torch.no_grad()
    def __call__(self, net) -> dict:
        was = net.training
        self.device = next(net.parameters()).device
        net.eval()
        # scoring draws nothing from the training run's random streams (loading the model set the
        # first time builds networks with the global RNG), so a resumed run follows the straight one
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda):
                return getattr(self, f"_{self.kind}")(net)
        finally:
            net.train(was)

    @torch.no_grad()
    def _forward(self, net, y: torch.Tensor, device=None) -> torch.Tensor:
        """`net` on the inputs `y`, four at a time on its device (default: the scored network's), back
        on the CPU in [-1, 1]."""
        device = device or self.device
        return torch.cat([net(y[i:i + 4].to(device)).float().cpu() for i in range(0, len(y), 4)]).clamp(-1, 1)

    def _rm(self, net) -> dict:
        out = self._forward(net, self.y)
        return {"psnr": psnr(out, self.x), "ssim": ssim_pm1(out, self.x), "detail_ratio": detail_ratio(out, self.x),
                "input_psnr": psnr(self.y, self.x)}

    def _up(self, net) -> dict:
        """The upsampler on the shrunk faces, and (with `input_blur`) on the same faces blurred by the
        middle of its range (as soft as a restored face): PSNR / SSIM / detail ratio at the output
        size; input_psnr / input_detail_ratio are bicubic enlargement's (the untrained network's)."""
        out = self._forward(net, self.y)
        res = {"psnr": psnr(out, self.x), "ssim": ssim_pm1(out, self.x), "detail_ratio": detail_ratio(out, self.x),
               **self._bicubic}
        if self.y_soft is not None:
            soft = self._forward(net, self.y_soft)
            res.update(soft_psnr=psnr(soft, self.x), soft_detail_ratio=detail_ratio(soft, self.x))
        return res

    def _x0_psnrs(self, net, cond=None) -> dict:
        gen = torch.Generator().manual_seed(VAL_SEED)
        noise = torch.randn(self.x.shape, generator=gen)
        res = {}
        for t in X0_STEPS:
            tt = torch.full((len(self.x),), t, dtype=torch.long)
            xt = self.schedule.q_sample(self.x, tt, noise)
            xt_d, tt_d = xt.to(self.device), tt.to(self.device)
            eps, _ = net(xt_d, tt_d, cond=cond.to(self.device)) if cond is not None else net(xt_d, tt_d)
            res[f"x0_psnr_t{t}"] = psnr(tweedie_x0(xt, eps.float().cpu(), self.schedule.abar(t)), self.x)
        return res

    def _prior(self, net) -> dict:
        res = self._x0_psnrs(net)
        n = self.cfg.restore_val_faces
        if n:
            res.update({f"restored_{k}": v for k, v in self._restored("prior", net, n).items()})
            if self.cfg.restore_default_too and self.cfg.restore_fidelity is not None:  # what users get
                res.update({f"restored_default_{k}": v for k, v in self._restored("prior", net, n, default=True).items()})
        if self.cfg.sample_kid:
            res.update(self._sample_kid(net, self.cfg.sample_kid))
        return res

    def _sample_kid(self, net, sk: dict) -> dict:
        """KID x 1000 of unconditional samples against each reference folder (features cached)."""
        from dynface.core.hardware import resolve_precision
        from dynface.core.imageio import to_uint8
        from dynface.metrics.fid import inception_features, kid_from_features
        from dynface.sampling.unconditional import SAMPLE_STEPS, sample_prior

        unknown = set(sk) - {"samples", "steps", "eta", "batch", "references", "reference_faces"}
        if unknown:
            raise ValueError(f"sample_kid: unknown key(s) {sorted(unknown)}")
        n, size = int(sk.get("samples", 256)), int(self.cfg.size)
        precision = resolve_precision(self.cfg.precision, self.device)
        batch, imgs = int(sk.get("batch", 32)), []
        for i in range(0, n, batch):
            x = sample_prior(net, size, range(i, min(n, i + batch)), int(sk.get("steps", SAMPLE_STEPS)), seed=VAL_SEED,
                             eta=float(sk.get("eta", 1.0)), precision=precision, schedule=self.schedule,
                             device=self.device)
            imgs += [to_uint8(x[k:k + 1]) for k in range(len(x))]
        self.last_samples = imgs[:64]
        res = sample_faces(imgs)
        feats = inception_features(imgs)
        if self._ref_feats is None:
            self._ref_feats = {}
            for folder in map(data_mod.expand, sk.get("references", [])):
                ref = data_mod.load_cache(folder, size, "all", cache_dir=self.cfg.cache_dir,
                                          limit=int(sk.get("reference_faces", 512)))
                self._ref_feats[Path(folder).name] = inception_features(
                    [r.permute(1, 2, 0).numpy() for r in ref])
                if self._ref_detail is None:
                    self._ref_detail = float(detail_energy(ref.float() / 127.5 - 1).mean())
        res.update({f"kid_{name}": 1000 * kid_from_features(feats, ref) for name, ref in self._ref_feats.items()})
        if self._ref_detail:
            res["sample_detail_ratio"] = mean_detail(imgs) / self._ref_detail
        return res

    def _idm(self, net) -> dict:
        from dynface.sampling.chain import sample
        from dynface.sampling.denoiser import Denoiser

        res = self._x0_psnrs(net, cond=self.y)
        gen = torch.Generator().manual_seed(VAL_SEED)
        x = torch.randn(self.y.shape, generator=gen)
        steps = space_timesteps(self.schedule.num_steps, 10)
        out = sample(Denoiser(net, cond=self.y.to(self.device)), x.to(self.device), steps, self.schedule,
                     generator=gen).cpu()
        res.update(sample10_psnr=psnr(out, self.x), sample10_detail_ratio=detail_ratio(out, self.x))
        return res

    def _dgsa(self, net) -> dict:
        return self._restored("dgsa", net, self.cfg.dgsa_val_faces)

    def _restored(self, stage: str, net, n: int, default: bool = False) -> dict:
        """The default restoration of the first n val faces (seed 0) by the model set (`modelset`,
        default the embedded one; `frozen` nets in place) with `net` as its `stage`, at
        `restore_fidelity` (`default`: at the set's default fidelity)."""
        from dynface.core.imageio import to_uint8
        from dynface.metrics.noref import niqe
        from dynface.modelset.folder import ModelSet
        from dynface.pipeline import RestoreOptions, Restorer

        if self._models is None:  # manifest + defaults of the set the candidate is scored in
            self._models = ModelSet.load(self.cfg.modelset)
            self._models.nets.update(self.frozen)
        self._models.nets[stage] = net
        self._models.to(self.device)
        x, y = self._restore_faces(n)
        opt = RestoreOptions(seed=0, fidelity=None if default else self.cfg.restore_fidelity)
        out = Restorer(self._models).restore(y, opt).images.float().clamp(-1, 1)
        res = {"psnr": psnr(out, x), "detail_ratio": detail_ratio(out, x)}
        if out.shape[-1] >= 96:  # NIQE's 96-pixel blocks
            res["niqe"] = sum(niqe(to_uint8(out[i])) for i in range(n)) / n
        return res

    def _restore_faces(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n clean faces and their degraded inputs for `_restored`: the curve's own, or those
        of `restore_val_data` (degraded the same way), read once."""
        if not self.cfg.restore_val_data:
            return self.x[:n], self.y[:n]
        if self._restore_xy is None:
            folder = self.cfg.restore_val_data
            x = read_faces(data_mod.expand(folder), "all", self.cfg, n, f"{folder}: no faces to restore (restore_val_data)")
            self._restore_xy = x, degrade_val(x, self.degradation)
        return self._restore_xy

    def _se(self, net) -> dict:
        from dynface.core.dblm import estimate_sigma
        from dynface.core.sigma_label import sigma_grid, sigma_star

        smin, smax, n = self.cfg.sigma_grid
        if self._sigma_star is None:
            r = self.frozen["rm"](self.y.to(self.device)).float()
            self._sigma_star = sigma_star(self.x.to(self.device), r, sigma_grid(smin, smax, n), self.cfg.eps).cpu()
        s_hat = estimate_sigma(net["tm"], net["sde"], self.y.to(self.device)).float().cpu().clamp(smin, smax)
        err = (s_hat - self._sigma_star).abs()
        return {"sigma_abs_err": float(err.mean()), "sigma_bias": float((s_hat - self._sigma_star).mean())}


def append_row(path: Path, row: dict) -> None:
    """Append one row to a curve CSV (header written for a new file). A row with a column the file
    lacks (a metric added to a running campaign) first rewrites the file with that column, empty in
    the older rows."""
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as f:
            fields = next(csv.reader(f))
        added = [k for k in row if k not in fields]
        if added:
            with open(path, newline="") as f:
                old = list(csv.DictReader(f))
            fields += added
            write_rows(path, fields, old)
    else:
        fields = list(row)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in row.items()})


def write_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Write a curve CSV whole, atomically (a column a row lacks stays empty)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    write_bytes(path, buf.getvalue().encode())


def read_curve(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def plot_curve(csv_path, png_path, title: str = "", sessions=()) -> Path:
    """One panel per metric of a curve CSV against cumulative iterations (PSNR with the input's
    level); `sessions`: the iterations at which working sessions began, drawn as dotted lines."""
    return plot_compare({"": csv_path}, png_path, title, sessions)


def plot_compare(curves: dict, png_path, title: str = "", sessions=()) -> Path:
    """Several runs' curves (name -> curve CSV) on shared panels, one per metric at least two of them
    have (a metric added mid-run too, from its first row); the input's PSNR (the same for every run: the
    fixed validation set) is drawn as a dashed line, and each of `sessions` as a dotted one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {name: read_curve(path) for name, path in curves.items()}
    seen = {name: dict.fromkeys(k for r in rows for k in r) for name, rows in data.items()}
    union = dict.fromkeys(k for have in seen.values() for k in have)
    keys = [k for k in union if k not in ("step", "images", "wall_h", "input_psnr")
            and sum(k in have for have in seen.values()) >= min(2, len(seen))]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.6 * max(1, len(keys)), 2.9), squeeze=False)
    for ax, k in zip(axes[0], keys):
        for name, rows in data.items():
            rows = [r for r in rows if k in r]
            ax.plot([r["step"] for r in rows], [r[k] for r in rows], marker=".", lw=1, label=name or None)
        first = next(iter(data.values()))[0]
        if k == "psnr" and "input_psnr" in first:
            ax.axhline(first["input_psnr"], color="grey", ls="--", lw=0.8, label="input")
        for i, step in enumerate(sessions):
            ax.axvline(step, color="tab:red", ls=":", lw=0.8, label="session start" if i == 0 else None)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
