"""`TrainConfig`: every key a training config may hold, its type and its default, in one place.

A config (YAML, `src/dynface/configs/*.yaml`, `campaign/*.yaml`) is read into a `TrainConfig`;
a key it does not know is an error that lists the valid ones, a value of the wrong type is an
error that names the key. Nested mappings (`degradation`, `patch`, `anneal`, `gan`, `init_from`,
`arch`) stay dicts: their own modules own their keys (`core.degradation.DegradationConfig`,
`training.adversarial.GAN_DEFAULTS`, `training.lr_schedule`, `networks.factory`).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynface.core.fidelity_control import check_fidelity
from dynface.errors import DynfaceError

KINDS = ("prior", "rm", "se", "dgsa", "idm", "up")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PERCEPTUAL = ("ssim", "inception")  # DGSA's L_perc (a stand-in for DISTS); the first is the default
SWT_WEIGHTS = (0.0, 0.01, 0.01, 0.05)  # DGSA's Eq. 24 weights of the SWT bands (LL, LH, HL, HH): the paper's
DGSA_STATES = ("forward", "chain")  # where DGSA's training states x_t come from (training/dgsa_loss.py); the first is the default
YAML_NAMES = {"lambda_": "lambda"}  # a field whose YAML key is a Python keyword


MAX_CONFIG_BYTES = 1 << 20


def read_config_text(path) -> str:
    """A config file's text: a regular file of at most MAX_CONFIG_BYTES."""
    from dynface.core.files import read_regular

    return read_regular(path, MAX_CONFIG_BYTES, "a training config").decode("utf-8")


class ConfigError(DynfaceError, ValueError):
    """A training config with an unknown key, a value of the wrong type or a missing required key."""


@dataclass
class TrainConfig:
    """One training run's settings (the YAML keys; `lambda_` is the YAML `lambda`)."""

    kind: str | None = None             # prior | rm | se | dgsa | idm (the command names it too)
    # data
    data: str | list[dict] | None = None  # a folder, or [{path: P, weight: W}, ...] (training/data.py)
    synth: dict | None = None            # synthetic faces mixed in: {weight, truncation, seed} (training/data.py)
    size: int = 128                      # face size in pixels
    template: str | None = None          # the faces' framing (face/templates.py); a data source framed by another
                                         # template is windowed into it (prior only, training/data.py)
    split: str = "train"                 # train | val (sha1(name) % 50 == 0 is val)
    limit: int | None = None             # use only the first N faces
    sharpest: float | None = None        # keep the sharpest fraction of the faces
    cache_dir: str = "runs/cache"
    refresh_data_every: int = 0          # re-read the data folders every N iterations (a folder `dynface synth` still grows
                                         # feeds the run its new faces); 0: read once, at the start
    degradation: dict | None = None      # ranges of core.degradation.DegradationConfig (None: the paper's)
    patch: dict | None = None            # {sizes: [...], probs: [...]}: Patch Diffusion (prior, IDM)
    min_snr_gamma: float | None = None   # prior: min-SNR-gamma loss weighting (training/losses.py)
    crop: int | None = None              # RM, up: train on random crops of this size (up: of the output)
    input_blur: list | None = None       # up: [min, max] Gaussian sigma (input px) after the downsampling
    # optimisation
    seed: int = 0
    iters: int = 0
    batch: int = 1
    lr: float = 0.0
    warmup: int = 200                    # linear ramp over the first steps of a run directory
    cosine: bool = False                 # cosine decay to 0 over `iters`
    anneal: dict | None = None           # {start, steps, final}: training/lr_schedule.py
    weight_decay: float = 0.0
    grad_clip: float | None = None
    ema: float | None = None             # EMA decay (None: no EMA, the model is exported)
    precision: str = "fp32"              # auto | fp32 | fp16 | bf16 (auto: bf16 where the CPU runs it natively)
    channels_last: bool = False          # NHWC batches (oneDNN's fast convolutions)
    threads: int | None = None           # None: the physical cores (per rank under torchrun)
    # networks
    arch: dict = dataclasses.field(default_factory=dict)
    init_from: dict | None = None        # {path, skip, zero}: training.loop.init_from
    init_tm: str | None = None           # SE: the TM's start
    init_sde: str | None = None          # SE: the SDE's start
    frozen: dict | None = None           # helper networks {name: path}, no gradients (se: rm; up: rm restores its inputs)
    dsst: str | None = None              # DGSA: the DSST table
    # losses
    fft_weight: float = 0.0              # RM: focal-frequency term
    feature_weight: float = 0.0          # RM: Inception feature distance
    gan: dict | bool | None = None       # RM: PatchGAN critic (true: GAN_DEFAULTS)
    sigma_grid: list | None = None       # SE, DGSA: [min, max, n] of the σ* search
    eps: float | None = None             # SE, DGSA: the σ* tolerance ε (Eq. 19)
    lambda_: float = 1.0                 # SE: weight of the σ-regression term (Eq. 22)
    stage1_iters: int = 0                # SE, DGSA: iterations of stage 1
    sampler_steps: int | None = None     # DGSA: respaced chain length
    zeta: float | None = None            # DGSA: guidance step ζ
    perceptual: str = PERCEPTUAL[0]      # DGSA: ssim | inception
    swt_weights: list = dataclasses.field(default_factory=lambda: list(SWT_WEIGHTS))  # DGSA: Eq. 24's band weights
    dgsa_states: str = DGSA_STATES[0]    # DGSA: forward (x_t = q(y_g), Eq. 24) | chain (states of running guided chains)
    n_guidance: int = 1                  # DGSA: guidance images of its guided steps (Eq. 15; 1: Eq. 24's single y_g)
    guidance_spacing: float = 0.0        # DGSA: sigma_i = sigma_hat - (i-1) spacing, as a model set's `defaults`
    chain_fidelity: float | None = None  # DGSA: the fidelity w whose controls its guided steps take (core/fidelity_control.py; None: as given)
    # bookkeeping
    run_dir: str | None = None
    log_every: int = 25
    ckpt_every: int = 200
    eval_every: int = 0                  # learning-curve rows (0: none)
    val_faces: int = 16
    val_data: str | None = None          # the folder whose first val_faces faces score the curves (None: the first source's val split)
    restore_val_faces: int = 0           # prior: faces restored with the model set per curve row
    restore_val_data: str | None = None  # prior, dgsa: the folder restored faces come from (None: the curve's val faces)
    restore_fidelity: float | None = None  # prior, dgsa: the fidelity they are restored at (None: the set's default)
    restore_default_too: bool = False    # prior: with restore_fidelity, also at the set's default (columns restored_default_*)
    sample_kid: dict | None = None       # prior: KID of unconditional samples {samples, steps, eta, batch, references} (training/curves.py)
    dgsa_val_faces: int = 8
    modelset: str | None = None          # the model set the curves restore with (None: embedded)

    REQUIRED: typing.ClassVar[tuple[str, ...]] = ("data", "iters", "lr", "arch")

    # ------------------------------------------------------------ reading and writing

    @classmethod
    def keys(cls) -> list[str]:
        """The YAML keys a config may hold."""
        return [YAML_NAMES.get(f.name, f.name) for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict | None) -> TrainConfig:
        d = dict(d or {})
        if "bf16" in d:  # the key before `precision`
            from dynface.core.deprecation import deprecate

            deprecate("config key `bf16`", "1.0", "use `precision: auto` (or fp32)")
            bf16 = d.pop("bf16")
            d.setdefault("precision", "auto" if bf16 else "fp32")
        fields = {YAML_NAMES.get(f.name, f.name): f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown training config key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}")
        hints = typing.get_type_hints(cls)
        values = {fields[k].name: _coerce(k, v, hints[fields[k].name]) for k, v in d.items()}
        cfg = cls(**values)
        cfg._check_values()
        return cfg

    @classmethod
    def of(cls, cfg: TrainConfig | dict | None) -> TrainConfig:
        """A TrainConfig as is, a dict validated into one."""
        return cfg if isinstance(cfg, TrainConfig) else cls.from_dict(cfg)

    @classmethod
    def load(cls, path) -> TrainConfig:
        """A YAML config file (a regular file of at most 1 MB: a FIFO is refused, never waited on)."""
        return cls.from_dict(yaml.safe_load(read_config_text(path)))

    def to_dict(self) -> dict:
        """The keys whose values differ from the defaults (what a run's `config.yaml` records)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if v != default or f.name == "kind" and v is not None:
                out[YAML_NAMES.get(f.name, f.name)] = v
        return out

    def replace(self, **changes) -> TrainConfig:
        new = dataclasses.replace(self, **changes)
        new._check_values()
        return new

    def check_complete(self) -> None:
        """The keys a run cannot start without."""
        missing = [k for k in self.REQUIRED if not getattr(self, k)]
        if missing:
            raise ConfigError(f"training config lacks {', '.join(missing)}")

    def _check_values(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ConfigError(f"kind {self.kind!r}: choose from {', '.join(KINDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}")
        if self.perceptual not in PERCEPTUAL:
            raise ConfigError(f"dgsa `perceptual: {self.perceptual}`: choose from {', '.join(PERCEPTUAL)}")
        if len(self.swt_weights) != 4 or min(self.swt_weights) < 0:
            raise ConfigError(f"dgsa `swt_weights: {self.swt_weights}`: four weights >= 0 for LL, LH, HL, HH")
        if self.dgsa_states not in DGSA_STATES:
            raise ConfigError(f"dgsa `dgsa_states: {self.dgsa_states}`: choose from {', '.join(DGSA_STATES)}")
        if self.n_guidance not in range(1, 5) or self.guidance_spacing < 0:
            raise ConfigError(f"dgsa `n_guidance: {self.n_guidance}`, `guidance_spacing: {self.guidance_spacing}`: "
                              "1 to 4 guidances, a spacing >= 0")
        if self.chain_fidelity is not None:
            try:
                check_fidelity(self.chain_fidelity)
            except ValueError as e:
                raise ConfigError(f"dgsa `chain_fidelity`: {e}") from None
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema {self.ema}: a decay in [0, 1)")

    def default_run_dir(self, kind: str) -> Path:
        return Path(self.run_dir or f"runs/{kind}")


def _coerce(key: str, value: Any, hint) -> Any:
    """`value` as type `hint` (numbers written as YAML strings like `1e-3` become numbers), else a
    ConfigError naming the key."""
    arms = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in arms:
        return None
    for arm in arms:
        base = typing.get_origin(arm) or arm
        if base is type(None):
            continue
        if base is bool and isinstance(value, bool):
            return value
        if base is int and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                try:
                    f = float(value)
                except ValueError:
                    continue
                if f.is_integer():
                    return int(f)
        if base is float and not isinstance(value, bool):
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    continue
        if base in (str, dict, list) and isinstance(value, base):
            return value
        if base is list and isinstance(value, tuple):
            return list(value)
    names = " | ".join(getattr(typing.get_origin(a) or a, "__name__", str(a)) for a in arms)
    raise ConfigError(f"training config `{key}: {value!r}`: expected {names}")
