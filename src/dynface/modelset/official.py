"""Model sets built from the public checkpoints (DifFace 512², DPS 256²) plus the user's own stages.

``load_official_modelset(name, weights_dir, device)`` (name: an official model set, ``--preset``) returns a
:class:`dynface.modelset.folder.ModelSet`, so ``Restorer`` and ``dynface restore`` work unchanged.

What the official checkpoints and model sets are (files, URLs, architectures, sizes, sigma grids):
`dynface.modelset.catalogue`. This module builds them.

The remaining stages have no public weights anywhere (the authors' code is not released):
SE (``tm.safetensors`` + ``sde.safetensors``, ``dynface train se``), DGSA (``dgsa.safetensors``,
``dynface train dgsa``) and the DSST table (``dsst.json``, ``dynface build-dsst``). They are read
in dynface's own format from ``<weights_dir>/<name>/`` if that folder exists, else from
``<weights_dir>/`` itself. A stage whose file is absent is simply missing from the ModelSet; the
pipeline then raises ``ModelError`` naming the stage, the file to provide and the switch that
turns the stage off (``--no-dblm``, ``--no-dsst``, ``--no-dgsa``).

Sampler defaults written into the manifest (all overridable on the command line):

* ``steps = 1000``: every step from the DSST start step t* down to 0, as in the paper
  (full-length DDPM, ~92 s per face on the authors' GPU). On a CPU use ``--steps 25`` or less.
* ``zeta = 0.3``: docs/method.md §2's default (DPS, un-squared norm). Not tuned at these sizes.
* ``sigma_lr = 0.0``: kernel refinement (Eq. 7) off until its step is tuned (``--sigma-lr``).
* ``n_guidance = 3`` with spacing 1.0 at 512² (sigma_hat, sigma_hat - 1, sigma_hat - 2; docs/method.md §7),
  0.5 at 256² (the same blur seen at half the resolution).
* ``dm_sigma``: the fixed sigma of the DM-only ablation, the middle of the sigma grid.

SE and DSST files trained for another sigma grid are refused with a message saying how to rebuild them.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

import torch

from dynface.modelset.catalogue import CHECKPOINTS, MODEL_SETS, OfficialCheckpoint, OfficialModelSet
from dynface.modelset.folder import ModelError, ModelSet, resolve_device
from dynface.modelset.manifest import DSST_FILE, STAGE_FILES, manifest_entry
from dynface.networks.eps_model import EpsModel
from dynface.networks.swinir import SwinIR
from dynface.modelset.weights import WeightsError, compare_state, load_checkpoint_state, load_into, sha256_file

__all__ = ["OWN_FILES", "official_manifest", "load_official_modelset", "build_official_prior", "build_official_rm",
           "own_stage_files", "export_for_training"]

DOCS = "docs/official-weights.md"
#: stage -> file name of the stages trained by the user (dynface's own safetensors/json format)
OWN_FILES = {**{s: STAGE_FILES[s] for s in ("rm", "tm", "sde", "dgsa")}, "dsst": DSST_FILE}


_TRAIN_HINTS = {
    "tm": "train it with `dynface train se` (see " + DOCS + ")",
    "sde": "train it with `dynface train se` (see " + DOCS + ")",
    "dgsa": "train it with `dynface train dgsa` (see " + DOCS + ")",
    "dsst": "build it with `dynface build-dsst --size {size} --sigma-grid {lo:g} {hi:g} {n}`",
}


ENV_WEIGHTS_DIR = "DYNFACE_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("~/.cache/dynface/weights")


# ------------------------------------------------------------------------------------ where the files go, and checks
def weights_dir(directory: str | os.PathLike | None = None) -> Path:
    """Folder of the official files: the argument, else $DYNFACE_WEIGHTS_DIR, else ~/.cache/dynface/weights."""
    if directory is not None and str(directory) != "":
        return Path(directory).expanduser()
    env = os.environ.get(ENV_WEIGHTS_DIR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_WEIGHTS_DIR.expanduser()


_resolve_weights_dir = weights_dir  # for functions whose `weights_dir` argument hides the function


def official_checkpoint(name: str) -> OfficialCheckpoint:
    """The catalogue entry of an official checkpoint (WeightsError naming the known ones)."""
    if name not in CHECKPOINTS:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[name]


def official_file(name: str, directory: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Path of an official checkpoint's file; with ``must_exist`` a missing file raises a how-to-get-it error."""
    e = official_checkpoint(name)
    path = weights_dir(directory) / e.filename
    if must_exist and not path.is_file():
        raise WeightsError(f"{name}: {path} not found; download {e.filename} from {e.url} and place it there "
                           f"(or set {ENV_WEIGHTS_DIR})")
    return path


def weights_list(directory: str | os.PathLike | None = None) -> list[dict]:
    """One dict per official checkpoint: its catalogue fields (the architecture by name) plus ``path``
    and ``present``."""
    out = []
    for e in CHECKPOINTS.values():
        path = official_file(e.name, directory, must_exist=False)
        d = dict(e.__dict__, architecture=e.architecture.__name__)
        d.update(path=str(path), present=path.is_file())
        out.append(d)
    return out


@dataclass
class VerifyResult:
    name: str
    path: Path
    exists: bool
    size: int | None = None
    size_ok: bool | None = None  # None: no public size to compare with
    sha256: str | None = None
    sha256_ok: bool | None = None  # None: no public hash to compare with
    keys_ok: bool | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.exists and self.size_ok is not False and self.sha256_ok is not False and bool(self.keys_ok)

    def summary(self) -> str:
        if not self.exists:
            return f"{self.name}: MISSING  {self.message}"
        parts = [f"{self.name}: {'OK' if self.ok else 'FAILED'}  {self.path}",
                 f"size {self.size:,} B" + ("" if self.size_ok is None else (" (matches)" if self.size_ok else " (WRONG)")),
                 f"sha256 {self.sha256}" + (" (not published)" if self.sha256_ok is None
                                            else (" (matches)" if self.sha256_ok else " (WRONG)")),
                 "keys match the architecture" if self.keys_ok else "keys do NOT match the architecture"]
        text = "\n  ".join(parts)
        return text + (f"\n  {self.message}" if self.message else "")


def weights_verify(directory: str | os.PathLike | None = None, names: Iterable[str] | None = None,
                   hash_files: bool = True) -> list[VerifyResult]:
    """Check each official file: present, size/sha256 (where published), keys+shapes vs. its architecture."""
    from dynface.networks.architectures import build_architecture

    results = []
    for name in (list(names) if names is not None else list(CHECKPOINTS)):
        e = official_checkpoint(name)
        path = official_file(name, directory, must_exist=False)
        r = VerifyResult(name, path, path.is_file())
        if not r.exists:
            r.message = f"download {e.filename} from {e.url} into {path.parent}"
            results.append(r)
            continue
        r.size = path.stat().st_size
        if e.size is not None:
            r.size_ok = r.size == e.size
        if hash_files:
            r.sha256 = sha256_file(path)
            if e.sha256 is not None:
                r.sha256_ok = r.sha256.lower() == e.sha256.lower()
        try:
            state = load_checkpoint_state(path)
            arch = e.architecture.__name__
            rep = compare_state(build_architecture(e.architecture(), device="meta"), state, target=f"architecture {arch}")
            r.keys_ok = rep.ok
            if not rep.ok:
                r.message = rep.format()
        except WeightsError as err:
            r.keys_ok, r.message = False, str(err)
        results.append(r)
    return results



# ------------------------------------------------------------------------------------ official model sets
def _model_set(name: str) -> OfficialModelSet:
    if name not in MODEL_SETS:
        raise ModelError(f"unknown preset {name!r}; official model sets: {', '.join(MODEL_SETS)}")
    return MODEL_SETS[name]


def own_stage_files(name: str, directory=None) -> dict[str, Path]:
    """Where each user-trained stage file of an official model set is looked for (existing or not)."""
    p = _model_set(name)
    root = weights_dir(directory)
    sub = root / p.name
    base = sub if sub.is_dir() else root
    stages = [s for s in OWN_FILES if not (s == "rm" and p.rm is not None)]
    return {s: base / OWN_FILES[s] for s in stages}


def official_manifest(name: str) -> dict:
    """The manifest dict of an official model set (size, template, sigma grid, sampler defaults, file sources)."""
    p = _model_set(name)
    lo, hi, n = p.sigma_grid
    files = {"prior": _checkpoint_record(p.prior, iters=p.prior_iters)}
    if p.rm is not None:
        files["rm"] = _checkpoint_record(p.rm)
    hints = {s: h.format(size=p.size, lo=lo, hi=hi, n=n) for s, h in _TRAIN_HINTS.items()}
    if p.rm is not None:
        e = CHECKPOINTS[p.rm]
        hints["rm"] = f"put {e.filename} there, from {e.url}"
    else:
        hints["rm"] = (f"no public {p.size}x{p.size} restorer exists: train one (`dynface train rm`, size {p.size}) "
                       f"and put it there as rm.safetensors")
    return {
        "format": "dynface-modelset/1", "preset": p.name, "size": p.size, "template": "ffhq",
        "sigma_grid": [float(lo), float(hi), int(n)], "degradation": dict(p.degradation),
        "defaults": {"steps": 1000, "zeta": 0.3, "sigma_lr": 0.0, "n_guidance": 3,
                     "guidance_spacing": p.guidance_spacing, "dm_sigma": round((lo + hi) / 2, 4)},
        "files": files, "hints": hints, "note": p.note, "status": "official weights",
    }


def _checkpoint_record(name: str, iters=None) -> dict:
    e = CHECKPOINTS[name]
    rec = {"file": e.filename, "source": e.url, "architecture": e.architecture.__name__, "params": e.params}
    if iters is not None:
        rec["iters"] = iters
    return rec


# ------------------------------------------------------------------------------------ building
def _build_empty(factory, computed: dict | None = None) -> torch.nn.Module:
    """Build a network without spending time on random initialisation (every tensor is then loaded).

    Built on the meta device and materialised empty. Non-persistent buffers are not in checkpoints:
    their values must be given in `computed` (name -> tensor), else the network is built normally."""
    with torch.device("meta"):
        net = factory()
    persistent = set(net.state_dict())
    extra = [k for k, _ in net.named_buffers() if k not in persistent]
    if set(extra) - set(computed or {}):
        return factory()
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for k in extra:
            net.get_buffer(k).copy_(computed[k])
    return net


def _load_state(name: str, directory) -> dict:
    try:
        path = official_file(name, directory)
        return load_checkpoint_state(path), path
    except WeightsError as e:
        raise ModelError(str(e).splitlines()[0]) from None


def _load_strict(net: torch.nn.Module, state, path: Path, checkpoint: str) -> None:
    try:
        load_into(net, state, strict=True)
    except WeightsError as e:
        lines = str(e).splitlines()
        raise ModelError(f"{path}: {lines[0]} (not the {checkpoint} checkpoint?); "
                         f"`dynface weights verify` lists the keys\n" + "\n".join(lines[1:])) from None


def build_official_prior(name: str, directory=None) -> EpsModel:
    """The official diffusion UNet of checkpoint `name` as an EpsModel, weights loaded strictly (fp32, CPU)."""
    cfg = CHECKPOINTS[name].architecture()
    state, path = _load_state(name, directory)
    net = _build_empty(lambda: EpsModel(cfg))
    _load_strict(net.unet, state, path, name)
    del state
    return net.eval()


def build_official_rm(name: str, directory=None) -> SwinIR:
    """The official restorer of checkpoint `name`, built to take and return [-1, 1] images."""
    cfg = replace(CHECKPOINTS[name].architecture(), io_range="-1,1", drop_path_rate=0.0)
    state, path = _load_state(name, directory)
    mean = torch.tensor(cfg.rgb_mean if cfg.in_chans == 3 else (0.0,) * cfg.in_chans).view(1, -1, 1, 1)
    net = _build_empty(lambda: SwinIR(cfg), {"mean": mean})
    _load_strict(net, state, path, name)
    return net.eval()


def _load_own(stage: str, path: Path, p: OfficialModelSet):
    from dynface.core.dsst import DSST
    from dynface.modelset.checkpoint import load_network

    lo, hi, n = p.sigma_grid
    rebuild = _TRAIN_HINTS[stage if stage in _TRAIN_HINTS else "tm"].format(size=p.size, lo=lo, hi=hi, n=n)
    try:
        if stage == "dsst":
            obj = DSST.load(path)
            g_hi = float(obj.grid.max())
        else:
            obj = load_network(path, kind=stage)
            g_hi = float(obj.sigma_range[1]) if stage == "sde" else hi
    except Exception as e:  # noqa: BLE001 - one line per broken file
        from dynface.modelset.netcheck import NetworkCheckError

        if isinstance(e, NetworkCheckError):  # names the file; may list mismatched keys and shapes
            raise ModelError(str(e)) from None
        raise ModelError(f"{path}: cannot load ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if abs(g_hi - hi) > 1e-3 * hi:
        raise ModelError(f"{path}: made for sigmas up to {g_hi:g}, the {p.name} model set uses up to {hi:g} "
                         f"(another model size?); {rebuild}")
    return obj


def load_official_modelset(name: str, weights_dir=None, device="cpu", prior: bool = True) -> ModelSet:
    """A ModelSet from the official model set `name` ("difface512" | "dps256", `--preset`) in `weights_dir`
    (default $DYNFACE_WEIGHTS_DIR, else ~/.cache/dynface/weights), plus whichever user-trained
    stages (rm for dps256, tm, sde, dgsa, dsst.json) are present.

    The official prior is required (ModelError with the download address when absent); the official
    restorer and the user stages are optional (the ModelSet then lacks them). `device`: cpu | cuda |
    cuda:N | mps | auto. Precision is a restore option (`RestoreOptions.precision`), not a property
    of the set. Weights are always held in float32; fp16 checkpoints are upcast. `prior=False`
    leaves the (large) official prior out, for settings that never sample (`--method rm`).
    """
    p = _model_set(name)
    dev = resolve_device(device)
    root = _resolve_weights_dir(weights_dir)
    manifest = official_manifest(name)
    nets = {}
    for stage, path in own_stage_files(name, root).items():  # the small files first: fail fast
        if path.is_file():
            nets[stage] = _load_own(stage, path, p)
            if stage != "dsst":
                manifest["files"][stage] = manifest_entry(path)
            else:
                manifest["files"]["dsst"] = {"file": path.name, "bytes": path.stat().st_size}
    if prior:
        nets["prior"] = build_official_prior(p.prior, root)
    if p.rm is not None and official_file(p.rm, root, must_exist=False).is_file():
        nets["rm"] = build_official_rm(p.rm, root)
    return ModelSet(root, manifest, nets).to(dev)


def export_for_training(name: str, out_dir, weights_dir=None, dtype=torch.float32) -> dict[str, Path]:
    """Write the official networks of the official model set `name` as dynface safetensors (with their architecture), for
    the `frozen:` / `init_tm:` entries of `dynface train se|dgsa` configs. Returns stage -> path."""
    from dynface.modelset.checkpoint import export_safetensors

    p = _model_set(name)
    root = _resolve_weights_dir(weights_dir)
    out = Path(out_dir)
    written = {}
    prior = build_official_prior(p.prior, root)
    arch = {"unet": CHECKPOINTS[p.prior].architecture().to_dict()}
    written["prior"] = export_safetensors(prior, out / STAGE_FILES["prior"], "prior", arch,
                                          {"source": CHECKPOINTS[p.prior].url, "iters": p.prior_iters}, dtype=dtype)
    del prior
    if p.rm is not None:
        rm = build_official_rm(p.rm, root)
        arch = asdict(rm.config)
        arch["rgb_mean"] = list(arch["rgb_mean"])
        written["rm"] = export_safetensors(rm, out / STAGE_FILES["rm"], "rm", arch,
                                           {"source": CHECKPOINTS[p.rm].url}, dtype=dtype)
    return written

