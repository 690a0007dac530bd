"""DynFaceRestore inference (docs/method.md §8, paper Algorithm 1) with every stage switchable.

    sigma_hat = SDE(TM(y));  r = RM(y);  y_i = k_sigma_i (x) r                 (DBLM, multi-guidance)
    t* = DSST(sigma_hat);  x = sqrt(abar_t*) y_1 + sqrt(1 - abar_t*) eps        (DSST)
    guided sampling with kernel refinement and DGSA      (sampling/chain.py + guidance.GuidedModel)

Switches (RestoreOptions) re-create the paper's Table 3 ablation: `dblm=False` is "DM only"
(the degraded input itself is the measurement, with a fixed sigma), `n_guidance`, `dsst=False`
(a fixed start step), `dgsa=False` (M = 1), `refine=False` (sigma stays fixed).
`fidelity` (w in [0, 1], core/fidelity_control.py) moves sigma_i, t*, zeta and N together;
`samples` = K draws K posterior samples as K copies in one batch, sample k with its own noise
stream seeded by `uncertainty.sample_seed(seed, k)` (sample 0 is the plain restoration's stream).

Device and precision: a ModelSet lives on one device (`ModelSet.load(root, device=...)` or
`.to(device)`); `restore()` moves its input there and returns images on the input's device.
Random numbers are always drawn on the CPU from the seeded generator and then moved, so a seed
gives the same noise on every device. `RestoreOptions.precision` ("auto" | "fp32" | "fp16" |
"bf16") is resolved once per restore by `hardware.resolve_precision` (auto: bf16 only where the
device runs it natively) and autocasts every network.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch

from dynface.core.dblm import GUIDANCE_WEIGHTS, estimate_sigma, guidance_images, guidance_sigmas
from dynface.core.fidelity_control import FIDELITY_DEFAULT, check_fidelity, fidelity_controls
from dynface.core.hardware import autocast, resolve_precision
from dynface.core.imageio import resize
from dynface.core.schedule import Schedule, space_timesteps
from dynface.core.uncertainty import check_samples, sample_seed
from dynface.modelset.folder import ModelError, ModelSet
from dynface.sampling.chain import randn, sample, start_from_guidance
from dynface.sampling.denoiser import Denoiser, SampleStats
from dynface.sampling.guidance import Guidance, GuidanceStep, GuidedModel


UPSAMPLE_DETAIL = ("rm", "result")  # RestoreOptions.upsample_detail (Restorer.enlarge)
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit value
T_MAX = 999          # the last timestep of the 1000-step schedule every model set uses
STEPS_MAX = T_MAX + 1


def _flag(help: str = "", lo=None, hi=None, names: tuple = (), choices: tuple | None = None,
          metavar: str | None = None) -> dict:
    """The command-line facts of a RestoreOptions field (`cli.flags.add_option_flag` makes the flag):
    help text, accepted range [lo, hi] (shown in --help), flag names (default --field-name),
    choices, metavar. The flag's default is the field's, None for MODEL_SET_DEFAULTS."""
    return {"cli": {"help": help, "lo": lo, "hi": hi, "names": names, "choices": choices, "metavar": metavar}}


@dataclass
class RestoreOptions:
    """Every switch of one restoration. Fields with `_flag` metadata are `dynface restore` flags."""

    method: str = field(default="dynface", metadata=_flag(
        "dynface: full DynFaceRestore; rm: restoration network only; idm: IDM conditional diffusion",
        choices=("dynface", "rm", "bicubic", "idm")))
    steps: int | None = field(default=None, metadata=_flag(  # network evaluations after the start step (respacing)
        "network evaluations from the start step (default: the model set's for the method)", 1, STEPS_MAX))
    n_guidance: int = field(default=3, metadata=_flag(  # Eq. 15: N guidance images
        "number of guidance images (Eq. 15)", choices=(1, 2, 3, 4)))
    guidance_spacing: float | None = None  # sigma_i = sigma_hat - (i-1) * spacing; default from the model set
    zeta: float | None = field(default=None, metadata=_flag(  # guidance scale; default from the model set
        "zeta of Eq. 5", 0.0, 100.0, names=("--guidance-scale", "--zeta")))
    sigma_lr: float | None = field(default=None, metadata=_flag(  # Eq. 7 step; default from the model set
        "eta of Eq. 7 (kernel refinement step)", 0.0, 100.0))
    eta: float = field(default=1.0, metadata=_flag("1 = ancestral DDPM steps (Eq. 6), 0 = DDIM", 0.0, 1.0))
    seed: int = field(default=0, metadata=_flag("", 0, SEED_MAX))
    dblm: bool = field(default=True, metadata=_flag(
        "Dynamic Blur-Level Mapping (off = DM only: guide with the raw input)"))
    dsst: bool = field(default=True, metadata=_flag("Dynamic start step (off = --fixed-start)"))
    fixed_start: int = field(default=T_MAX, metadata=_flag("start step when --no-dsst", 0, T_MAX))
    dgsa: bool = field(default=True, metadata=_flag("learned per-pixel guidance scale (off = M = 1)"))
    refine: bool = field(default=True, metadata=_flag("kernel refinement of Eq. 7"))
    guide_every: int = field(default=1, metadata=_flag("guide every k-th step only", 1, STEPS_MAX))
    guide_last: int = 0
    precision: str = "auto"       # auto | fp32 | fp16 | bf16 autocast (auto: bf16 only if native); --precision
    channels_last: bool = field(default=False, metadata=_flag(  # NHWC weights and activations
        "channels_last (NHWC) memory layout for every network"))
    fidelity: float | None = field(default=None, metadata=_flag(  # None = default (core/fidelity_control.py)
        "1 = closest to the restoration network's output, 0 = most freedom for the prior "
        f"(default: the model set's, else the method's own setting, {FIDELITY_DEFAULT:g}; docs/fidelity.md)",
        0.0, 1.0, metavar="W"))
    samples: int = field(default=1, metadata=_flag(  # K posterior samples in one batch; 1 = the plain restoration
        "draw K posterior samples in one batch and write their mean and per-pixel std heat map "
        "to uncertainty/ (default 1: no map)", 1, 64, metavar="K"))
    flip_average: bool = field(default=False, metadata=_flag(  # self-ensemble over the face's mirror image
        "average the restoration network's output with its output for the mirrored face, mirrored back: "
        "higher PSNR, a little less fine detail, twice the network's cost (docs/quality.md)"))
    upsample: bool = field(default=True, metadata=_flag(  # networks/upsampler.py, applied by restore_crops
        "enlarge restored faces with the model set's learned face upsampler (where it has one) "
        "instead of bicubically; off: faces come out at the working size"))
    upsample_detail: str = field(default="rm", metadata=_flag(  # Restorer.enlarge
        "what the face upsampler enlarges: rm (default), the restoration network's output (what the upsampler "
        "learned from), its added detail put on the result enlarged bicubically; result, the final restoration "
        "itself (smoother: docs/quality.md)", choices=UPSAMPLE_DETAIL))

    @classmethod
    def for_models(cls, models: ModelSet, **given) -> "RestoreOptions":
        """Options whose `n_guidance`, where `given` leaves it None or out, is the model set's default
        (manifest `defaults`), else the default above (the one place it is written). `steps` stays
        None until `Restorer.resolve`, because its default depends on the method (`method_steps`)."""
        for key in MODEL_SET_DEFAULTS:
            if given.get(key) is None:
                given[key] = int(models.default(key, getattr(cls, key)))
        return cls(**given)


MODEL_SET_DEFAULTS = ("n_guidance",)  # RestoreOptions fields a model set's manifest presets in for_models
STEPS_DEFAULT = 25  # network evaluations when the manifest names none (docs/speed/README.md)


def method_steps(models: ModelSet, method: str) -> int:
    """Default network evaluations of `method`: the manifest's `idm_steps` for IDM (it samples from pure
    noise over the whole schedule, and gains from more steps than the guided chain, which starts at
    t*), its `steps` otherwise, else STEPS_DEFAULT."""
    steps = models.default("steps", STEPS_DEFAULT)
    return int(models.default("idm_steps", steps) if method == "idm" else steps)


@dataclass
class RestoreResult:
    images: torch.Tensor                   # (B, 3, S, S) in [-1, 1] at the model's size
    sigma_hat: torch.Tensor | None = None
    t_start: torch.Tensor | None = None
    sigmas_refined: torch.Tensor | None = None
    seconds: dict = field(default_factory=dict)
    nfe: int = 0
    samples: torch.Tensor | None = None    # (K, B, 3, S, S) when K = opt.samples > 1; images = samples[0]
    rm: torch.Tensor | None = None         # (B, 3, S, S): the restoration network's output the result came from (DBLM's RM(y))


class Restorer:
    """Restores aligned face crops (B, 3, S, S) in [-1, 1] at the model set's size."""

    def __init__(self, models: ModelSet):
        self.models = models
        self.schedule = Schedule.linear()

    def resolve(self, opt: RestoreOptions) -> RestoreOptions:
        ms = self.models
        lo, hi = ms.sigma_range
        fidelity = ms.default("fidelity", None) if opt.fidelity is None else opt.fidelity  # the set's, else the method's
        opt = replace(opt, samples=check_samples(opt.samples),
                      fidelity=None if fidelity is None else check_fidelity(fidelity),
                      upsample_detail=check_upsample_detail(opt.upsample_detail))
        return replace(opt, precision=resolve_precision(opt.precision, ms.device),
                       steps=method_steps(ms, opt.method) if opt.steps is None else opt.steps,
                       zeta=ms.default("zeta", 0.3) if opt.zeta is None else opt.zeta,
                       sigma_lr=ms.default("sigma_lr", 0.0) if opt.sigma_lr is None else opt.sigma_lr,
                       guidance_spacing=ms.default("guidance_spacing", (hi - lo) / 15.0)
                       if opt.guidance_spacing is None else opt.guidance_spacing)

    def amp(self, opt: RestoreOptions):
        """Autocast of a resolved `opt.precision` on the set's device (fp32: none)."""
        dev = self.models.device
        return autocast(dev.type, resolve_precision(opt.precision, dev))

    def upsamples(self, opt: RestoreOptions) -> bool:
        """Whether `restore_crops` enlarges this restoration with the set's face upsampler."""
        return opt.upsample and opt.method != "bicubic" and "up" in self.models.nets

    @torch.no_grad()
    def upsample(self, x: torch.Tensor, opt: RestoreOptions) -> torch.Tensor:
        """Restored faces (B, 3, S, S) enlarged by the face upsampler to (B, 3, kS, kS), on x's device."""
        net = self.models.nets["up"]
        with self.amp(opt):
            out = net(x.to(self.models.device)).float()
        check_finite(out, "upsampler")
        return out.clamp(-1, 1).to(x.device)

    @torch.no_grad()
    def enlarge(self, res: RestoreResult, opt: RestoreOptions) -> torch.Tensor:
        """The restored faces of `res` enlarged by the face upsampler (`upsamples(opt)` must hold).

        upsample_detail "rm", where the result came from the restoration network's output r:
        bicubic(x) + up(r) - bicubic(r), the result enlarged bicubically plus the detail the upsampler
        adds to r. The upsampler learned to enlarge RM outputs; the guided chain's result is smoother
        than those, and enlarged itself it comes out with less fine detail (docs/quality.md)."""
        x = res.images
        if check_upsample_detail(opt.upsample_detail) == "result" or res.rm is None or torch.equal(res.rm, x):
            return self.upsample(x, opt)
        up_r = self.upsample(res.rm, opt)
        residual = torch.nn.functional.interpolate(x.float() - res.rm.float(), size=up_r.shape[-2:], mode="bicubic",
                                                   align_corners=False)
        return (up_r + residual).clamp(-1, 1)

    @torch.no_grad()
    def rm(self, y: torch.Tensor, opt: RestoreOptions | None = None) -> torch.Tensor:
        self.models.need("rm", why="the restoration network stage")
        net = self.models.nets["rm"]
        with self.amp(opt) if opt is not None else nullcontext():
            out = net(y).float()
            if opt is not None and opt.flip_average:  # a face and its mirror: the same face, other errors
                out = 0.5 * (out + net(y.flip(-1)).float().flip(-1))
        check_finite(out, "rm")
        return out.clamp(-1, 1)

    def restore(self, y: torch.Tensor, opt: RestoreOptions, progress=None) -> RestoreResult:
        """Restore a batch of crops; NonFiniteOutput when any output value is NaN or infinite (bad
        weights or an overflow), never a black or garbage image."""
        res = self._restore(y, opt, progress)
        check_finite(res.images, opt.method)
        if res.samples is not None:
            check_finite(res.samples, opt.method)
        return res

    def _restore(self, y: torch.Tensor, opt: RestoreOptions, progress=None) -> RestoreResult:
        opt = self.resolve(opt)
        ms, s = self.models, self.models.size
        if y.shape[-2:] != (s, s):
            raise ValueError(f"restore() takes {s}x{s} crops; resize first")
        t0 = time.perf_counter()
        if opt.method == "bicubic":
            return _with_samples(RestoreResult(y.clone(), seconds={"total": 0.0}), opt.samples)
        y_in, dev = y, ms.device
        ms.set_channels_last(opt.channels_last)
        y = y.to(dev, memory_format=torch.channels_last if opt.channels_last else torch.contiguous_format)
        if opt.method == "rm":
            x = self.rm(y, opt).to(y_in.device)
            return _with_samples(RestoreResult(x, seconds={"rm": time.perf_counter() - t0,
                                                           "total": time.perf_counter() - t0}), opt.samples)
        if opt.method == "idm":
            return self._restore_idm(y, opt, progress, out_device=y_in.device)
        if opt.method != "dynface":
            raise ValueError(f"unknown method {opt.method!r}")
        ms.need("prior", why="diffusion sampling")
        secs = {}
        lo, hi = ms.sigma_range
        if opt.dblm:
            ms.need("rm", "tm", "sde", why="DBLM (--dblm)")
            r = self.rm(y, opt)
            secs["rm"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            with self.amp(opt):
                sigma_hat = estimate_sigma(ms.nets["tm"], ms.nets["sde"], y).cpu().clamp(lo, hi)
            secs["se"] = time.perf_counter() - t1
        else:  # "DM only": the degraded input is the measurement, sigma fixed
            r = y.float()
            sigma_hat = torch.full((y.shape[0],), float(ms.default("dm_sigma", (lo + hi) / 2)))
        t1 = time.perf_counter()
        fc = fidelity_controls(opt.fidelity)
        n = fc.n_guidance(opt.n_guidance) if opt.dblm else 1
        # fidelity: trust RM(y) at a finer (w > 0.5) or coarser level
        sig = guidance_sigmas(sigma_hat, n, opt.guidance_spacing, lo, fc.sigma_scale, hi)
        targets = guidance_images(r, sig)
        weights = torch.tensor(GUIDANCE_WEIGHTS[n])
        if opt.dsst:
            ms.need("dsst", why="DSST (--dsst)")
            t_start = ms.nets["dsst"].lookup(sig[0])
        else:
            t_start = torch.full((y.shape[0],), int(opt.fixed_start), dtype=torch.long)
        secs["dsst"] = time.perf_counter() - t1
        dgsa = None
        if opt.dgsa:
            ms.need("dgsa", why="DGSA (--dgsa)")
            dgsa = ms.nets["dgsa"]
        step = GuidanceStep(zeta=float(opt.zeta) * fc.zeta_scale, sigma_lr=float(opt.sigma_lr) if opt.refine else 0.0)
        b, k = y.shape[0], opt.samples
        gen = sample_generators(opt.seed, k)
        if k > 1:  # K copies of the batch, sample-major: rows k*B .. k*B + B - 1 are sample k
            targets, sig, t_start = targets.repeat(1, k, 1, 1, 1), sig.repeat(1, k), t_start.repeat(k)
        chains, stats = [], SampleStats()  # (rows, x0, refined sigmas) per chain
        prior = Denoiser(ms.nets["prior"], opt.precision, stats=stats)
        t_chains = time.perf_counter()
        # faces with different start steps run their own chains (one chain per distinct t*)
        for ts in torch.unique(t_start).tolist():
            idx = (t_start == ts).nonzero().flatten()
            g = Guidance(targets[:, idx.to(dev)], sig[:, idx], weights, (lo, hi))
            x = start_from_guidance(targets[0, idx], ts, self.schedule, gen)
            steps = space_timesteps(self.schedule.num_steps, opt.steps, start=ts)
            model = GuidedModel(prior, self.schedule, steps, g, step, dgsa, opt.guide_every, opt.guide_last, stats)
            xo = sample(model, x, steps, self.schedule, eta=opt.eta, generator=gen, callback=_step_callback(progress))
            chains.append((idx, xo, model.sigmas))
        stats.finish(time.perf_counter() - t_chains)
        x = torch.empty((k * b, *y.shape[1:]), dtype=torch.float32, device=dev)
        sig_out = torch.empty_like(sig)
        for idx, xo, so in chains:
            x[idx.to(dev)] = xo
            sig_out[:, idx] = so.cpu()
        secs.update({f"sample_{name}": v for name, v in stats.seconds.items()})
        secs["total"] = time.perf_counter() - t0
        x = x.clamp(-1, 1).to(y_in.device)
        return RestoreResult(x[:b], sigma_hat, t_start[:b], sig_out[:, :b], secs, stats.nfe,
                             samples=x.reshape(k, b, *x.shape[1:]) if k > 1 else None,
                             rm=r.float().to(y_in.device) if opt.dblm else None)

    def _restore_idm(self, y, opt: RestoreOptions, progress=None, out_device=None) -> RestoreResult:
        self.models.need("idm", why="IDM (--method idm)")
        t0 = time.perf_counter()
        b, k = y.shape[0], opt.samples
        gen = sample_generators(opt.seed, k)
        y = y.repeat(k, 1, 1, 1) if k > 1 else y
        x = randn(y.shape, gen).to(y.device)
        steps = space_timesteps(self.schedule.num_steps, opt.steps)
        stats = SampleStats()
        idm = Denoiser(self.models.nets["idm"], opt.precision, cond=y, stats=stats)
        t_chain = time.perf_counter()
        x = sample(idm, x, steps, self.schedule, eta=opt.eta, generator=gen, callback=_step_callback(progress))
        stats.finish(time.perf_counter() - t_chain)
        secs = {f"sample_{name}": v for name, v in stats.seconds.items()}
        secs["total"] = time.perf_counter() - t0
        x = x.clamp(-1, 1).to(out_device or x.device)
        return RestoreResult(x[:b], seconds=secs, nfe=stats.nfe,
                             samples=x.reshape(k, b, *x.shape[1:]) if k > 1 else None)


def check_upsample_detail(v) -> str:
    """v if it is one of UPSAMPLE_DETAIL, else ValueError with one line."""
    if v not in UPSAMPLE_DETAIL:
        raise ValueError(f"upsample_detail {v!r}: choose from {', '.join(UPSAMPLE_DETAIL)}")
    return v


class NonFiniteOutput(ModelError, ValueError):
    """A restoration whose output holds NaN or infinite values (reported per file, never written)."""


def check_finite(x: torch.Tensor, method: str) -> None:
    if not torch.isfinite(x).all():
        n = int((~torch.isfinite(x)).sum())
        raise NonFiniteOutput(f"the {method} restoration gave {n} NaN or infinite value(s) (broken weights or an "
                              "overflow at this precision; try --precision fp32); nothing written")


def sample_generators(seed: int, k: int):
    """One CPU generator for K = 1 (the plain restoration), else K generators seeded by (seed, k)."""
    if k == 1:
        return torch.Generator().manual_seed(int(seed))
    return [torch.Generator().manual_seed(sample_seed(seed, i)) for i in range(k)]


def _step_callback(progress):
    """The chain's callback for a progress object with `update(n)` (tqdm, web.jobs.StepHook)."""
    return None if progress is None else (lambda info: progress.update(1))


def _with_samples(res: RestoreResult, k: int) -> RestoreResult:
    """A deterministic method's K samples are K copies of its output (zero spread)."""
    if k > 1:
        res.samples = res.images[None].expand(k, *res.images.shape).clone()
    return res


def restore_crops(restorer: Restorer, crops: list[torch.Tensor], opt: RestoreOptions, progress=None):
    """Restore crops of any size: resize to the model size, restore as one batch, resize back. With
    the model set's face upsampler (`Restorer.upsamples`) the restored faces are enlarged by it first,
    and a crop smaller than the enlarged face comes back at the enlarged face's size (its aspect
    kept): a 128 px crop restored at 128 px comes back at 512 px, for `paste_faces` to place."""
    s = restorer.models.size
    batch = torch.cat([resize(c.float(), s) for c in crops])
    res = restorer.restore(batch, opt, progress)
    images = restorer.enlarge(res, opt) if restorer.upsamples(opt) else res.images
    outs = [resize(images[i:i + 1], _out_size(tuple(c.shape[-2:]), images.shape[-1])).clamp(-1, 1)
            for i, c in enumerate(crops)]
    return outs, res


def _out_size(crop_hw: tuple[int, int], side: int) -> tuple[int, int]:
    """The crop's size, or, when its longer side is below `side` (an upsampled face), scaled up to it."""
    k = max(1.0, side / max(crop_hw))
    return round(crop_hw[0] * k), round(crop_hw[1] * k)
