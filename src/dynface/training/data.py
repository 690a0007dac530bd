"""Training data: image folders, a fixed train/val split by file name, an in-memory cache, and
batches drawn from a mix of sources.

The split is a pure function of the file name (sha1 mod 50 == 0 -> val, about 2%), so it is the
same on every machine and is written beside each run (`split.json`).

A config's `data:` is one folder, or a list of sources `{path: FOLDER, weight: W}` (a plain path
weighs 1): each batch image comes from source j with probability W_j / sum(W), whatever the folder
sizes. `synth: {weight: W, truncation: PSI, seed: S}` adds faces drawn on the fly from the face
generator (synth/generator.py) with probability W / (W + sum(W_j)): a face index drawn from the
batch generator names the face, so resuming a run draws the same faces. The generator renders
about 1-2 faces a second on a 2-core CPU: on-the-fly faces suit small shares or fast machines; a
folder made by `dynface synth` suits the rest. Validation faces come from the first source.

A source framed otherwise than the run (`{path, weight, template: utkface}` in a run with
`template: ffhq`) is a windowed source: each of its faces is shrunk to the square where its whole
crop lands in the run's frame (face/templates.crop_window) and stored there on a blank canvas, and
the prior's patches of it are cut inside that window with the window's coordinate channels (Patch
Diffusion), so tight crops of real faces teach the inner face at its place in a wider frame.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynface.core.atomic import write_atomic, write_bytes
from dynface.core.files import expand
from dynface.core.imageio import ImageError, list_images, read_rgb, resize, to_tensor

VAL_MODULUS = 50


def split_of(name: str) -> str:
    h = int(hashlib.sha1(os.fsencode(name)).hexdigest(), 16)
    return "val" if h % VAL_MODULUS == 0 else "train"


def split_files(folder, split: str = "train") -> list[Path]:
    files = list_images([folder])
    if split == "all":
        return files
    return [f for f in files if split_of(f.name) == split]


def _decode(f: Path, size: int) -> np.ndarray | None:
    try:
        x = resize(to_tensor(read_rgb(f)), size)
    except ImageError:
        return None
    return x.clamp(-1, 1).add(1).mul(127.5).round().byte()[0].numpy()


def _none_readable(folder, split, files) -> ImageError:
    return ImageError(f"{folder}: no readable {split} image ({len(files)} file(s) listed, none could be read)")


def load_cache(folder, size: int, split: str = "train", cache_dir=None, limit: int | None = None,
               shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """All images of a split resized to size^2 as a uint8 tensor (N, 3, size, size), in file-name
    order, unreadable files left out. `shard=(rank, world)`: only every world-th file from the
    rank-th (one torchrun rank's share).

    With `cache_dir`, decoded images are kept per folder and size (`FOLDER-SIZE-HASH.json`, the
    file names, naming the `.npy` array it was written with): a later call decodes only the files
    not cached yet, so a folder that grows (`dynface synth` still running) costs only its new files.
    Each update writes a new array under a new name, then the index (both by atomic rename), so
    ranks sharing a cache folder (each caching its own shard at the same time) never read half a
    file, nor one writer's array with another's names."""
    folder = Path(folder)
    files = split_files(folder, split)
    if limit:
        files = files[:limit]
    rank, world = shard
    if world > 1:
        files = files[rank::world]
        if not files:
            raise ValueError(f"{folder}: too few {split} images for {world} ranks")
    if not files and split == "train":
        raise ImageError(f"{folder}: no {split} images found")
    if cache_dir is None:
        out, n = np.empty((len(files), 3, size, size), dtype=np.uint8), 0
        for f in tqdm(files, desc=f"reading {folder.name}/{split} at {size}px", unit="img"):
            r = _decode(f, size)
            if r is not None:
                out[n], n = r, n + 1
        if files and not n:
            raise _none_readable(folder, split, files)
        return torch.from_numpy(out[:n])
    key = hashlib.sha1(str(folder.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    base = Path(cache_dir) / f"{folder.name}-{size}-{key}"
    index_file = base.with_suffix(".json")
    index: dict = {"names": [], "unreadable": []}
    images = np.empty((0, 3, size, size), dtype=np.uint8)
    old_array = None
    if index_file.exists():
        try:
            index = json.loads(index_file.read_text())
            old_array = base.parent / index.get("array", base.with_suffix(".npy").name)  # no "array": an older cache
            images = np.load(old_array, mmap_mode="r")
            if len(images) != len(index["names"]):
                raise ValueError("cache and its index disagree")
        except (OSError, ValueError, KeyError):
            index, images = {"names": [], "unreadable": []}, np.empty((0, 3, size, size), dtype=np.uint8)
    row_of = {n: i for i, n in enumerate(index["names"])}
    bad = set(index["unreadable"])
    new = [f for f in files if f.name not in row_of and f.name not in bad]
    if new:
        array = base.parent / f"{base.name}.{os.getpid()}-{os.urandom(4).hex()}.npy"
        array.parent.mkdir(parents=True, exist_ok=True)
        done: dict = {}
        write_atomic(array, lambda tmp: done.update(names=_extend_array(
            tmp, images, new, size, bad, f"caching {folder.name}/{split} at {size}px")))
        for n in done["names"]:
            row_of[n] = len(row_of)
        index = {"names": sorted(row_of, key=row_of.get), "unreadable": sorted(bad), "array": array.name}
        write_bytes(index_file, json.dumps(index).encode())
        if old_array is not None and old_array != array:
            old_array.unlink(missing_ok=True)  # a reader holding it mapped keeps reading it
        images = np.load(array, mmap_mode="r")
    keep = [row_of[f.name] for f in files if f.name in row_of]
    if files and not keep:  # nothing to train on: one line, not a sampler error later
        raise _none_readable(folder, split, files)
    if not keep:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    if keep == list(range(len(images))) and isinstance(images, np.memmap):
        # the whole cache, in order: a copy-on-write map of the file, read through the page cache
        # (a 512 px cache of thousands of faces is gigabytes: never held twice in memory)
        return torch.from_numpy(np.load(images.filename, mmap_mode="c"))
    return torch.from_numpy(np.ascontiguousarray(images[keep]))


def _extend_array(path: Path, old: np.ndarray, files: list[Path], size: int, bad: set, desc: str) -> list[str]:
    """Write `old`'s rows and then those of the readable `files` (decoded at `size`) as one .npy at
    `path`, streaming through a memory map (peak memory: one image); unreadable files go to `bad`.
    Returns the readable files' names, in row order."""
    names = []
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(old) + len(files), 3, size, size))
    for i in range(0, len(old), 256):
        mm[i:min(len(old), i + 256)] = old[i:i + 256]
    row = len(old)
    for f in tqdm(files, desc=desc, unit="img"):
        r = _decode(f, size)
        if r is None:
            bad.add(f.name)
            continue
        mm[row] = r
        row += 1
        names.append(f.name)
    mm.flush()
    del mm
    if row < len(old) + len(files):  # some files unreadable: rewrite with exactly the rows filled
        full = np.load(path, mmap_mode="r")
        tmp = path.with_name(path.name + ".trim")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(row, 3, size, size))
        for i in range(0, row, 256):
            out[i:i + 256] = full[i:min(row, i + 256)]
        out.flush()
        del out, full
        os.replace(tmp, path)
    return names


@dataclass(frozen=True)
class Source:
    """One image folder of a training mix, its share of the batches (relative weight) and, where it
    differs from the run's, the face template its images are framed by (a windowed source)."""

    path: str
    weight: float = 1.0
    template: str | None = None
    sharpest: float | None = None  # keep this fraction of its images, the sharpest (None: the config's `sharpest`)


def sources(data) -> list[Source]:
    """A config's `data:` (a folder, or a list of folders / {path, weight}) as Sources."""
    items = data if isinstance(data, (list, tuple)) else [data]
    out = []
    for it in items:
        if isinstance(it, dict):
            unknown = set(it) - {"path", "weight", "template", "sharpest"}
            if unknown or "path" not in it:
                raise ValueError(f"a data source is {{path: FOLDER, weight: W, template: NAME, sharpest: F}}, got {it!r}")
            sharp = it.get("sharpest")
            src = Source(expand(it["path"]), float(it.get("weight", 1.0)), it.get("template"),
                         None if sharp is None else float(sharp))
            if src.sharpest is not None and not 0 < src.sharpest <= 1:
                raise ValueError(f"{src.path}: a source's sharpest is a fraction in (0, 1], got {sharp!r}")
        elif isinstance(it, (str, os.PathLike)):
            src = Source(expand(it))
        else:
            raise ValueError(f"a data source is a folder or {{path: FOLDER, weight: W}}, got {it!r}")
        if not (src.weight > 0 and src.weight < float("inf")):
            raise ValueError(f"{src.path}: a source's weight must be a positive number, got {src.weight}")
        out.append(src)
    if not out:
        raise ValueError("data: no source given")
    return out


def first_folder(data) -> str:
    """The folder validation faces come from: the first source."""
    return sources(data)[0].path


def write_split(data, path) -> None:
    """The split of every source folder (one folder: its split; several: {folder: split})."""
    def one(folder):
        files = split_files(folder, "all")
        return {"rule": f"sha1(file name) % {VAL_MODULUS} == 0 -> val",
                "train": sum(split_of(f.name) == "train" for f in files),
                "val": [f.name for f in files if split_of(f.name) == "val"]}

    srcs = sources(data)
    d = one(srcs[0].path) if len(srcs) == 1 else {s.path: {"weight": s.weight, **one(s.path)} for s in srcs}
    write_bytes(path, json.dumps(d, indent=1).encode())


def detail_energies(images: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """core.imagemetrics.detail_energy (mean |Laplacian| of the grey image) of each face of a uint8
    cache (N, 3, H, W), `chunk` faces at a time."""
    from dynface.core.imagemetrics import detail_energy

    return torch.cat([detail_energy(images[i:i + chunk].float().div(127.5).sub(1))
                      for i in range(0, len(images), chunk)])


def keep_sharpest(images: torch.Tensor, fraction: float, chunk: int = 512) -> torch.Tensor:
    """The `fraction` of a uint8 image cache (N, 3, H, W) with the most fine detail (detail_energies),
    in their original order. UTKFace's softest faces are already blurred photographs; as targets
    they teach a restorer to output blur (docs/history/training-log.md)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"sharpest must be in (0, 1], got {fraction}")
    energy = detail_energies(images, chunk)
    k = max(1, round(len(images) * fraction))
    keep = torch.sort(torch.argsort(energy, descending=True, stable=True)[:k]).values
    return images[keep]


class SynthDraw:
    """Faces drawn on the fly from the face generator, at the training size, as uint8 (3, S, S)."""

    def __init__(self, cfg: dict, size: int):
        from dynface.synth.generator import DEFAULT_TRUNCATION, FaceGenerator

        unknown = set(cfg) - {"weight", "truncation", "seed", "threads"}
        if unknown:
            raise ValueError(f"synth: unknown key(s) {sorted(unknown)}; valid: weight, truncation, seed, threads")
        self.weight = float(cfg.get("weight", 1.0))
        if not (self.weight > 0 and self.weight < float("inf")):
            raise ValueError(f"synth: weight must be a positive number, got {self.weight}")
        self.psi = float(cfg.get("truncation", DEFAULT_TRUNCATION))
        self.seed = int(cfg.get("seed", 0))
        self.size = size
        self.generator = FaceGenerator(threads=cfg.get("threads"))

    def __call__(self, index: int) -> torch.Tensor:
        rgb = self.generator.face(self.seed, index, self.psi, 1024)
        x = resize(to_tensor(rgb), self.size)
        return x.clamp(-1, 1).add(1).mul(127.5).round().byte()[0]


def source_window(src: Source, frame: str | None, size: int) -> tuple[int, int, int] | None:
    """(top, left, side) of a windowed source in the run's `frame` at `size`, None for a source
    framed like the run (or naming no template)."""
    from dynface.face.templates import crop_window

    if src.template is None:
        return None
    if frame is None:
        raise ValueError(f"{src.path}: its faces are framed by template {src.template!r}; "
                         "name the run's own framing with the config key `template`")
    win = crop_window(src.template, frame, size)
    return None if win == (0, 0, size) else win


def load_sources(data, size: int, split: str = "train", cache_dir=None, limit: int | None = None,
                 shard: tuple[int, int] = (0, 1), sharpest: float | None = None, frame: str | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The uint8 cache of every source, concatenated; each image's draw probability (None for one
    source: uniform); and each image's window (N, 3) of (top, left, side), None when no source is
    windowed (`frame`: the run's template, see the module doc). `sharpest` keeps that fraction of
    each source (keep_sharpest) whose own `sharpest` does not say otherwise."""
    srcs = sources(data)
    source_wins = [source_window(s, frame, size) for s in srcs]
    parts, wins = [], []
    for s, win in zip(srcs, source_wins):
        x = load_cache(s.path, win[2] if win else size, split, cache_dir=cache_dir, limit=limit, shard=shard)
        if len(x) == 0:
            raise ValueError(f"{s.path}: no readable {split} image")
        keep = s.sharpest if s.sharpest is not None else sharpest
        x = keep_sharpest(x, keep) if keep else x
        if win:
            top, left, side = win
            canvas = torch.zeros((len(x), x.shape[1], size, size), dtype=x.dtype)
            canvas[..., top:top + side, left:left + side] = x
            x = canvas
        parts.append(x)
        wins.append(torch.tensor(win or (0, 0, size), dtype=torch.long).expand(len(x), 3))
    windows = torch.cat(wins) if any(source_wins) else None
    if len(parts) == 1:
        return parts[0], None, windows
    total = sum(s.weight for s in srcs)
    probs = torch.cat([torch.full((len(x),), s.weight / total / len(x), dtype=torch.float64)
                       for s, x in zip(srcs, parts)])
    return torch.cat(parts), probs, windows


def training_images(cfg, shard: tuple[int, int] = (0, 1)
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The images of a training config (a `TrainConfig`), their draw probabilities and windows (load_sources)."""
    return load_sources(cfg.data, cfg.size, cfg.split, cache_dir=cfg.cache_dir, limit=cfg.limit, shard=shard,
                        sharpest=cfg.sharpest, frame=cfg.template)


def training_batcher(cfg, seed: int, shard: tuple[int, int] = (0, 1)) -> "Batcher":
    """The Batcher of a training config (a `TrainConfig`): `data` (a folder or a mix), `sharpest`, `synth`,
    and windowed sources (`template`; a prior's only, its first source framed like the run)."""
    images, probs, windows = training_images(cfg, shard)
    if windows is not None:
        if cfg.kind != "prior":
            raise ValueError(f"a data source framed by another template than the run's is for the prior only, not {cfg.kind}")
        if windows[0, 2] < cfg.size:  # the first source's images come first
            raise ValueError("the first data source gives the validation faces: it must be framed like the run")
    synth = SynthDraw(cfg.synth, cfg.size) if cfg.synth else None
    synth_share = 0.0
    if synth is not None:
        folders = sum(s.weight for s in sources(cfg.data))
        synth_share = synth.weight / (synth.weight + folders)
    return Batcher(images, seed, probs=probs, synth=synth, synth_share=synth_share, windows=windows)


class Batcher:
    """Random batches (with horizontal flips) from a uint8 cache, as float in [-1, 1]: uniform over
    the cache, or by per-image `probs` (a mix of sources); with `synth`, each image is instead drawn
    on the fly from the generator with probability `synth_share`. With `windows` (load_sources) a
    call draws only images whose window is at least `min_side` wide and leaves the drawn images'
    windows, flips included, in `last_windows` (None without windows)."""

    SYNTH_INDICES = 2**31  # face indices of the on-the-fly generator

    def __init__(self, images: torch.Tensor, seed: int = 0, probs: torch.Tensor | None = None,
                 synth: SynthDraw | None = None, synth_share: float = 0.0, windows: torch.Tensor | None = None):
        self.images = images
        self.gen = torch.Generator().manual_seed(seed)
        self.drawn = 0  # images handed out so far (checkpointed by the training loop)
        self.probs = probs
        self.synth, self.synth_share = synth, synth_share
        self.windows = windows
        self.last_windows: torch.Tensor | None = None

    def state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, s: torch.Tensor) -> None:
        self.gen.set_state(s)

    def indices(self, batch: int, min_side: int | None = None) -> torch.Tensor:
        if self.windows is not None and min_side:
            probs = (self.probs if self.probs is not None else torch.ones(len(self.images), dtype=torch.float64))
            probs = probs * (self.windows[:, 2] >= min_side)
            if not probs.sum() > 0:
                raise ValueError(f"no training image has a window of {min_side} pixels")
            return torch.multinomial(probs, batch, replacement=True, generator=self.gen)
        if self.probs is None:
            return torch.randint(0, len(self.images), (batch,), generator=self.gen)
        return torch.multinomial(self.probs, batch, replacement=True, generator=self.gen)

    def __call__(self, batch: int, min_side: int | None = None) -> torch.Tensor:
        idx = self.indices(batch, min_side)
        self.drawn += batch
        x8 = self.images[idx]
        wins = self.windows[idx].clone() if self.windows is not None else None
        if self.synth is not None:
            on_the_fly = torch.rand(batch, generator=self.gen) < self.synth_share
            faces = torch.randint(0, self.SYNTH_INDICES, (batch,), generator=self.gen)
            if on_the_fly.any():
                x8 = x8.clone()
                for k in torch.nonzero(on_the_fly).flatten().tolist():
                    x8[k] = self.synth(int(faces[k]))
                    if wins is not None:
                        wins[k] = torch.tensor([0, 0, x8.shape[-1]])
        x = x8.float().div(127.5).sub(1)
        flip = torch.rand(batch, generator=self.gen) < 0.5
        x[flip] = x[flip].flip(-1)
        if wins is not None:  # a mirrored canvas mirrors its window
            wins[flip, 1] = x.shape[-1] - wins[flip, 1] - wins[flip, 2]
        self.last_windows = wins
        return x

    def randint(self, lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=self.gen))

    def rand(self) -> float:
        return float(torch.rand(1, generator=self.gen))
