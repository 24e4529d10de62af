"""The optimizers a training can use, and the learning-rate schedules they follow.

`adamw` is the reference's: AdamW over every parameter. `muon` orthogonalizes the update
of each hidden weight matrix (the attention and MLP matrices inside the blocks) and leaves
AdamW the rest (embeddings, position table, output head, norms, biases), which Muon is not
meant for. Both halves present themselves as one optimizer (`Paired`) whose state dict
numbers the parameters as the model lists them, so checkpoints and resume treat it as any
other.

Muon is written here rather than taken from torch.optim.Muon, which runs its
Newton-Schulz iteration in bfloat16 everywhere: on CPUs without bf16 units that alone
cost more than the rest of a small model's step (benchmarks/LEVERS.md). Here it runs in
bf16 where the run computes in bf16 on hardware with bf16 units (CUDA, and CPUs with
AVX512-BF16 or AMX: there its matmuls are the larger part of a small-batch step), in fp32
elsewhere; the method and its constants are the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from tui_gpt.core.config import TrainConfig
from tui_gpt.core.device import Runtime
from tui_gpt.core.distributed import placed_like, whole
from tui_gpt.core.errors import TuiGptError

# The quintic Newton-Schulz iteration's coefficients and steps (Muon's published ones): it
# pushes every singular value of the normalized update towards 1, roughly, in 5 steps.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalized(update: torch.Tensor, bf16: bool) -> torch.Tensor:
    """An approximation of U V^T for update = U S V^T (rows, cols): the update with its
    singular values flattened, by Newton-Schulz iterations on the smaller Gram matrix,
    computed in bf16 or fp32."""
    a, b, c = NS_COEFFICIENTS
    x = update.to(torch.bfloat16 if bf16 else torch.float32)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T  # (small, large): the Gram matrix below is small x small
    x = x / x.norm().clamp(min=1e-7)  # spectral norm <= Frobenius norm <= 1
    for _ in range(NS_STEPS):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(update.dtype)


class Muon(torch.optim.Optimizer):
    """Momentum (Nesterov by default), then the orthogonalized update, for 2-D parameters.
    A tall matrix's rate is scaled by sqrt(rows / cols), as in Muon's own recipe, so every
    shape moves alike in RMS terms. `bf16`: the iteration's precision (not saved: it follows
    the run's runtime, which `auto` may choose after the optimizer is made)."""

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: float,
        momentum: float = 0.95,
        nesterov: bool = True,
        bf16: bool = False,
    ) -> None:
        if any(p.ndim != 2 for p in params):
            raise ValueError("Muon updates 2-D weight matrices only")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov})
        self.bf16 = bf16

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - mu)  # mu * buf + (1 - mu) * grad
                update = p.grad.lerp(buf, mu) if group["nesterov"] else buf
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                # A sharded weight (--strategy fsdp) holds some of the matrix's rows; the
                # iteration needs the whole matrix: every rank gathers it, orthogonalizes
                # it and keeps its own rows of the result.
                step = placed_like(orthogonalized(whole(update), self.bf16), p)
                p.add_(step, alpha=-group["lr"] * scale)


def hidden_matrix(name: str, param: torch.Tensor) -> bool:
    """A weight matrix inside a block (`blocks.N....weight`, 2-D): what Muon updates."""
    return param.ndim == 2 and name.startswith("blocks.")


class Paired:
    """AdamW and Muon stepped together, as one optimizer.

    `param_groups`: AdamW's group, then Muon's. The state dict's parameter indices are the model's own
    order (`model.parameters()`), whichever half holds the parameter."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, fused: bool, bf16: bool) -> None:
        named = list(model.named_parameters())
        muon_idx = [i for i, (n, p) in enumerate(named) if hidden_matrix(n, p)]
        adam_idx = [i for i in range(len(named)) if i not in set(muon_idx)]
        if not muon_idx:
            raise TuiGptError("--optimizer muon: this model has no hidden weight matrices")
        self.adamw = torch.optim.AdamW(
            [named[i][1] for i in adam_idx], lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
        )
        # No weight decay on Muon's side: the orthogonal update keeps the matrices' scale.
        self.muon = Muon([named[i][1] for i in muon_idx], lr=cfg.muon_lr, bf16=bf16)
        self._order = adam_idx + muon_idx  # position in the pair -> index in the model

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.adamw.param_groups, *self.muon.param_groups]

    def _halves(self) -> Iterator[torch.optim.Optimizer]:
        yield self.adamw
        yield self.muon

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self._halves():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self._halves():
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        state: dict[int, Any] = {}
        groups: list[dict[str, Any]] = []
        offset = 0
        for opt in self._halves():
            sd = opt.state_dict()
            for local, fields in sd["state"].items():
                state[self._order[offset + local]] = fields
            for group in sd["param_groups"]:
                groups.append(
                    {**group, "params": [self._order[offset + i] for i in group["params"]]}
                )
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        groups = sd["param_groups"]
        if len(groups) != 2:
            raise ValueError(f"{len(groups)} parameter groups, a Muon pair has 2")
        local = {model_index: i for i, model_index in enumerate(self._order)}
        offset = 0
        for opt, group in zip(self._halves(), groups, strict=True):
            mine = [local[i] - offset for i in group["params"]]
            opt.load_state_dict(
                {
                    "state": {
                        local[i] - offset: f for i, f in sd["state"].items() if i in group["params"]
                    },
                    "param_groups": [{**group, "params": mine}],
                }
            )
            offset += len(mine)


Optimizer = torch.optim.AdamW | Paired


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, runtime: Runtime) -> Optimizer:
    """The optimizer `cfg.optimizer` names; fused AdamW kernels where they exist."""
    fused = runtime.device.type in ("cpu", "cuda")
    if cfg.optimizer == "muon":
        return Paired(model, cfg, fused, runtime.bf16_matmuls())
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused
    )


def follow_runtime(optimizer: Optimizer, runtime: Runtime) -> None:
    """After `--precision auto` chose the runtime: Muon's iteration in its precision."""
    if isinstance(optimizer, Paired):
        optimizer.muon.bf16 = runtime.bf16_matmuls()


def lr_scale(steps_done: int, cfg: TrainConfig, total_steps: int) -> float:
    """The schedule: the share of its peak rate each group uses for the next update.

    Linear warmup from 0 over `warmup_steps`; then `constant` (the reference), `cosine`
    down to `min_lr` at the last step, or `wsd` (warmup-stable-decay): flat at the peak,
    then a linear decay to `min_lr` over the last `decay_fraction` of the steps. The end is
    `total_steps`, which a time budget (`minutes`) re-estimates as the run goes."""
    if cfg.warmup_steps and steps_done < cfg.warmup_steps:
        return (steps_done + 1) / cfg.warmup_steps
    floor = cfg.min_lr / cfg.lr
    if cfg.schedule == "cosine":
        span = max(1, total_steps - cfg.warmup_steps - 1)  # the last update is at min_lr
        progress = min(1.0, (steps_done - cfg.warmup_steps) / span)
        return floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "wsd":
        decay = max(1, round(cfg.decay_fraction * total_steps))
        left = total_steps - steps_done  # updates still to make, this one included
        if left > decay:
            return 1.0
        return floor + (1 - floor) * max(0, left - 1) / decay  # the last update at min_lr
    return 1.0


def set_lr(optimizer: Optimizer, cfg: TrainConfig, scale: float) -> None:
    """Each group at `scale` times its peak rate: `lr` for AdamW's, `muon_lr` for Muon's,
    and AdamW's weight decay: from the settings, not the optimizer's saved state, so a
    resume may change them."""
    peaks = (cfg.lr, cfg.muon_lr)
    for group, peak in zip(optimizer.param_groups, peaks, strict=False):
        group["lr"] = peak * scale
    optimizer.param_groups[0]["weight_decay"] = cfg.weight_decay  # AdamW's (may change on resume)
