"""torchrun support for `training.train` (DistributedDataParallel); a no-op in a single process.

Under `torchrun --nproc_per_node=N` (env WORLD_SIZE > 1) `setup()` joins the process group (gloo
on CPU, nccl on CUDA). Each rank then reads its own shard of the training files and draws its
batches, noise and degradations from its own seed (`rank_seed`; rank 0 keeps the config's seed,
so a 1-process run is the plain run). The loss is computed inside DDP's forward (`loss_step`), so
every loss function, whatever methods of the model it calls, gets its gradients averaged over
the ranks before the optimiser step. Only rank 0 writes checkpoints, logs and curves; a checkpoint
holds every rank's RNG state, so `--resume` continues the same run with the same world size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn

RANK_SEED_STRIDE = 1_000_003  # rank r draws from seed + r * stride


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank, world size, local world size (processes on this machine)."""

    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> Dist:
    """Where torchrun's environment puts this process (RANK, WORLD_SIZE, LOCAL_WORLD_SIZE); Dist()
    when it was not started by torchrun. Readable before joining and after leaving the group."""
    env = os.environ
    return Dist(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_WORLD_SIZE", "1")))


def setup(device: str = "cpu") -> Dist:
    """Join torchrun's process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA); else Dist()."""
    env = launched()
    if env.world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), env.local_world)


def teardown(d: Dist) -> None:
    """Wait for every rank (rank 0 may still be exporting), then leave the process group."""
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def leave_process() -> None:
    """Under torchrun, end this rank's process at once (streams flushed, exit status 0) once its
    run has ended. Python's shutdown is skipped on purpose: the gloo group that DDP keeps alive
    past `destroy_process_group` would be freed while the interpreter finalises, and its worker
    threads, releasing the last collectives' tensors, then need the GIL and abort the rank
    (SIGABRT) although the run finished. A no-op in a single process."""
    if launched().world <= 1:
        return
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def rank_seed(seed: int, rank: int) -> int:
    return int(seed) + int(rank) * RANK_SEED_STRIDE


def default_threads(d: Dist) -> int:
    """This machine's physical cores shared among the ranks on it."""
    from dynface.core.hardware import default_threads as cores

    return max(1, cores() // d.local_world)


class LossModule(nn.Module):
    """The model plus its loss function as one forward(), so DDP hooks whatever the loss calls."""

    def __init__(self, model: nn.Module, loss_fn, ctx):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn
        self.__dict__["ctx"] = ctx  # not a submodule: frozen helpers stay out of DDP

    def forward(self) -> torch.Tensor:
        return self.loss_fn(self.model, self.ctx)


def loss_step(d: Dist, model: nn.Module, loss_fn, ctx, find_unused: bool = False):
    """A callable returning this step's loss; under DDP its backward averages the gradients.
    `find_unused`: some steps leave parameters without gradient (the SE's stage 1 trains the SDE alone)."""
    if d.world == 1:
        return lambda: loss_fn(model, ctx)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(LossModule(model, loss_fn, ctx), find_unused_parameters=find_unused)


def any_rank(d: Dist, flag: bool) -> bool:
    """True on every rank when it is true on one (a SIGTERM seen by one rank stops them all together)."""
    if d.world == 1:
        return bool(flag)
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def step_stats(d: Dist, loss: torch.Tensor, drawn: int) -> tuple[float, int]:
    """(loss averaged over the ranks, images drawn so far by all ranks)."""
    if d.world == 1:
        return float(loss.detach()), int(drawn)
    import torch.distributed as dist

    t = torch.tensor([float(loss.detach()), float(drawn)], dtype=torch.float64)
    dist.all_reduce(t)
    return t[0].item() / d.world, int(round(t[1].item()))


def rank_states(d: Dist, batcher, loss_state: dict | None = None) -> list[dict] | None:
    """Every rank's RNG states, draw count and loss state (Ctx.state), gathered for rank 0's
    checkpoint (None in one process)."""
    if d.world == 1:
        return None
    import torch.distributed as dist

    mine = {"batcher_rng": batcher.state(), "torch_rng": torch.get_rng_state(), "drawn": batcher.drawn,
            "loss_state": loss_state or {}}
    states = [None] * d.world
    dist.all_gather_object(states, mine)
    return states


def restore_rng(d: Dist, ck: dict, batcher, seed: int) -> None:
    """Put back this rank's RNG states from a checkpoint. A checkpoint from another world size
    gives rank 0 the saved single stream and the other ranks fresh streams seeded by the step."""
    ranks = ck.get("ranks")
    if ranks is not None and len(ranks) == d.world:
        mine = ranks[d.rank]
        batcher.set_state(mine["batcher_rng"])
        torch.set_rng_state(mine["torch_rng"])
        batcher.drawn = int(mine["drawn"])
    elif d.rank == 0:
        batcher.set_state(ck["batcher_rng"])
        torch.set_rng_state(ck["torch_rng"])
        batcher.drawn = int(ck.get("images", 0))
    else:
        fresh = rank_seed(seed, d.rank) + int(ck["step"])
        batcher.gen.manual_seed(fresh)
        torch.manual_seed(fresh)
        batcher.drawn = 0


def restore_loss_state(d: Dist, ck: dict) -> dict:
    """This rank's loss state (Ctx.state) from a checkpoint: its own where the world size is the
    same, rank 0's single one otherwise, and a fresh (empty) one for the other ranks."""
    ranks = ck.get("ranks")
    if ranks is not None and len(ranks) == d.world:
        return dict(ranks[d.rank].get("loss_state") or {})
    return dict(ck.get("loss_state") or {}) if d.rank == 0 else {}


def load_checkpoint(d: Dist, path, loader) -> dict | None:
    """Rank 0 reads the checkpoint (if any) and sends it to the others: no shared run folder needed."""
    ck = loader(path) if d.main and os.path.exists(path) else None
    if d.world == 1:
        return ck
    import torch.distributed as dist

    box = [ck]
    dist.broadcast_object_list(box, src=0)
    return box[0]
