"""Training in several processes with PyTorch's own distributed stack, launched by torchrun.

torchrun starts one process per rank with RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE
and a rendezvous in the environment. Each rank builds the same model from the same seed,
wraps it in DistributedDataParallel (gradients averaged across ranks during backward), and
reads its own shard of every epoch (`BatchLoader(rank=, world=)`). Rank 0 alone writes
the run folder: events, status, checkpoints, samples.

With a per-rank batch B on W ranks each update sees the same W*B windows a single process
with batch W*B would see in that step, and the averaged gradient is the same: the losses
match within float tolerance (tested with two CPU processes over gloo).

Pause and stop must be agreed, or one rank would wait forever in a collective the others
never reach: before each step the ranks exchange their stop / pause flags (max over ranks).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from tui_gpt.core.errors import TuiGptError


@dataclass
class Distributed:
    """This process's place among the ranks; a single process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device | None = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ collectives

    def mean(self, *values: float) -> list[float]:
        """The mean over ranks of each value (one all-reduce for all of them)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / self.world).tolist()

    def agree(self, *flags: bool) -> list[bool]:
        """Each flag raised on any rank is raised on all of them."""
        if not self.enabled:
            return list(flags)
        t = torch.tensor(
            [1 if f else 0 for f in flags], dtype=torch.int32, device=self._comm_device()
        )
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 does the work first (e.g. tokenizing into the shared cache); the others
        then find it done."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train through: DDP across ranks, the model itself alone."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = (
            [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        )
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, module: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """Around one micro-batch's backward: DDP's gradient all-reduce only on the `last`
        one of an update (its hooks would otherwise average after every micro-batch)."""
        if last or not self.enabled or not hasattr(module, "no_sync"):
            return contextlib.nullcontext()
        return module.no_sync()  # type: ignore[operator]

    def threads(self, allowance: int) -> int:
        """CPU threads per rank: the CPUs shared among the ranks on this machine."""
        return max(1, allowance // self.local_world)

    def _comm_device(self) -> torch.device:
        if self.device is not None and self.device.type == "cuda":
            return self.device
        return torch.device("cpu")

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


SINGLE = Distributed()


def from_environment(device: str = "auto") -> Distributed:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); a single process
    when not launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE
    if not dist.is_available():
        raise TuiGptError("this PyTorch build has no distributed support")
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    backend = "nccl" if use_cuda else "gloo"
    # A pause is agreed through a collective every half second, so no long waits arise
    # from it; a generous timeout still covers a slow first tokenization on rank 0.
    dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    return Distributed(rank, world, local_rank, local_world, dev)
