"""Training in several processes with PyTorch's own distributed stack, launched by torchrun.

torchrun starts one process per rank with RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE
and a rendezvous in the environment. Each rank builds the same model from the same seed and
reads its own shard of every epoch (`BatchLoader(rank=, world=)`). Rank 0 alone writes
the run folder: events, status, checkpoints, samples.

Two strategies (`--strategy`): `ddp` keeps a whole copy of the weights, gradients and
optimizer state on every rank (DistributedDataParallel averages the gradients during
backward); `fsdp` shards all three across the ranks (FSDP2's `fully_shard`, each block and
then the rest): a rank holds 1/W of them and gathers one block's weights at a time for its
forward and backward. Every forward of a sharded model is a collective, so under `fsdp`
every rank evaluates, samples and saves together; a checkpoint is gathered tensor by tensor
into one whole file on rank 0 (`gathered`) and read back by every rank into its own shard
(`placed_like`): the same portable file as an unsharded run's.

With a per-rank batch B on W ranks each update sees the same W*B windows a single process
with batch W*B would see in that step, and the averaged gradient is the same: the losses
match within float tolerance (tested with two CPU processes over gloo).

Pause and stop must be agreed, or one rank would wait forever in a collective the others
never reach: before each step the ranks exchange their stop / pause flags (max over ranks).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
    sharded: bool = False  # `--strategy fsdp` (or `auto` chose it): weights sharded across ranks

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def shards(self) -> int:
        """The ranks a model's weights, gradients and optimizer state are split across."""
        return self.world if self.sharded else 1

    @property
    def strategy(self) -> str:
        """What the run's events call it: "fsdp", "ddp", or "single" (one process)."""
        return "fsdp" if self.sharded else "ddp" if self.enabled else "single"

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

    def wrap(self, model: nn.Module, bf16: bool = False) -> nn.Module:
        """The module to train through: DDP across ranks, the model itself alone, or under
        `sharded` the model, sharded in place (before its optimizer is made: the optimizer
        must hold the shards). `bf16`: the run computes in bf16; on CUDA the sharded
        weights are then gathered in bf16 and gradients reduced in fp32 (FSDP2's mixed
        precision), where a CPU keeps fp32 weights under autocast."""
        if not self.enabled:
            return model
        cuda = self.device is not None and self.device.type == "cuda"
        if self.sharded:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            mesh = init_device_mesh("cuda" if cuda else "cpu", (self.world,))
            policy = MixedPrecisionPolicy()
            if cuda and bf16:
                policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            for part in _shard_units(model):  # each gathered when used, freed after
                fully_shard(part, mesh=mesh, mp_policy=policy)
            # The rest (the final norm, a tied table): the root, gathered for the whole step.
            fully_shard(model, mesh=mesh, mp_policy=policy)
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if cuda and self.device is not None else None
        # The gradients live in DDP's all-reduce buckets rather than beside a copy of them
        # there: one set of gradients less (benchmarks/sharding.py, docs/gpus.md).
        return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)

    def no_sync(self, module: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """Around one micro-batch's backward: DDP's gradient all-reduce only on the `last`
        one of an update (its hooks would otherwise average after every micro-batch).
        Sharded, every micro-batch's gradients are reduce-scattered: FSDP's way of skipping
        that keeps whole gradients on every rank until the last one."""
        if last or not self.enabled or self.sharded:
            return contextlib.nullcontext()
        if not hasattr(module, "no_sync"):
            return contextlib.nullcontext()
        return module.no_sync()  # type: ignore[operator]

    def gathered(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """`tensors` whole, for a save: on rank 0 every sharded one gathered (one at a time,
        so no rank holds more than one whole copy), on the other ranks nothing. A
        collective under `sharded`: every rank calls it, with the same keys (in any order)."""
        if not self.sharded:
            return tensors
        out: dict[str, Any] = {}
        for key in sorted(tensors):  # the same order on every rank (dicts filled apart)
            whole_value = whole(tensors[key])
            if self.is_main:
                out[key] = whole_value.cpu()
            del whole_value  # the other ranks drop it at once
        return out

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


def _shard_units(model: nn.Module) -> list[nn.Module]:
    """What is sharded, gathered and freed as one: each block, and the token embedding and
    the head on their own where they are two tables (GPT-2 124M's are half its weights: kept
    whole through a step, they would be most of a rank's memory). A tied table stays with
    the root, which holds it whole from the forward to the end of the backward."""
    units = list(getattr(model, "blocks", []))
    tied = getattr(getattr(model, "cfg", None), "tie_weights", False)
    names = ("pos_emb",) if tied else ("tok_emb", "pos_emb", "out_head")
    return units + [getattr(model, n) for n in names if getattr(model, n, None) is not None]


def is_shard(t: object) -> bool:
    """Whether `t` is one rank's shard of a tensor (a DTensor). Shards exist only once
    torch.distributed.tensor is imported, which costs 0.6 s: it is not imported to ask."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def whole(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (gathered from every rank: a collective), or `t`."""
    return t.full_tensor() if is_shard(t) else t  # type: ignore[attr-defined]


def placed_like(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A whole tensor (the same on every rank) as `target` holds it: this rank's shard where
    `target` is sharded, `value` itself otherwise. Local: nothing is sent."""
    if not is_shard(target):
        return value
    from torch.distributed.tensor import distribute_tensor

    mesh, placements = target.device_mesh, target.placements  # type: ignore[attr-defined]
    return distribute_tensor(value.detach().to(target.dtype), mesh, placements, src_data_rank=None)


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
