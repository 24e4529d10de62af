"""How much memory a training will need, how much there is, and what would fit.

The estimate adds up what a training step holds at its peak, from the model's shape and the
run's settings (benchmarks/memory_estimate.py compares it with measured peaks):

- fp32 weights, their gradients and AdamW's two moments: 16 bytes per parameter;
- under bf16 autocast, the bf16 copy of every weight kept for the backward pass;
- the activations autograd saves for one micro-batch (all layers, or with activation
  checkpointing only each block's input plus one block recomputed), in the autocast type;
- the logits (B, T, V) and their gradient;
- with gradient accumulation, a second copy of the largest gradients while they are added;
- sharded across W processes (`--strategy fsdp`): 1/W of the weights, gradients and
  optimizer state per process, plus the whole weights and gradients of what is gathered at
  once: two blocks (the one computing and the next, prefetched) and a vocabulary table.

It is checked before anything is allocated, so a training too big for the machine ends in
one line that says what would fit instead of an allocation failure minutes later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_gpt import environment
from tui_gpt.core.config import count_params
from tui_gpt.core.events import size

if TYPE_CHECKING:  # these import torch; the estimate does not need it
    from tui_gpt.core.config import TrainConfig
    from tui_gpt.core.device import Runtime
    from tui_gpt.core.shape import GPTConfig

MIB = 2**20


@dataclass(frozen=True)
class Shape:
    """What the memory of a training step depends on besides the model."""

    batch_size: int  # windows per micro-batch
    context_length: int
    precision: str = "fp32"  # "fp32" | "bf16"
    checkpointing: bool = False
    dropout: bool = True  # dropout > 0 keeps masks and the attention matrix
    cpu: bool = True  # the fused cross-entropy (CPU) keeps no fp32 copy of the logits
    accumulating: bool = False  # gradient accumulation: later micro-batches add to grads
    shards: int = 1  # processes the weights, gradients and optimizer state are split across


@dataclass(frozen=True)
class Estimate:
    weights: int
    grads: int
    optimizer: int
    weight_copies: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.grads
            + self.optimizer
            + self.weight_copies
            + self.activations
            + self.logits
        )

    def to_dict(self) -> dict[str, int]:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "total": self.total}


def shape(
    train: TrainConfig, context_length: int, runtime: Runtime, model: GPTConfig, shards: int = 1
) -> Shape:
    """The shape of a training with these settings on this runtime, per process."""
    return Shape(
        batch_size=train.batch_size,
        context_length=context_length,
        precision=runtime.precision,
        checkpointing=train.activation_checkpointing,
        dropout=model.dropout > 0,
        cpu=runtime.device.type == "cpu",
        accumulating=train.grad_accum > 1,
        shards=shards,
    )


def _block_activation_bytes(model: GPTConfig, s: Shape) -> int:
    """Bytes autograd keeps for one block's backward, per micro-batch."""
    a = 2 if s.precision == "bf16" else 4  # the autocast type of matmul inputs and outputs
    btc = s.batch_size * s.context_length * model.emb_dim
    per_token: float
    if model.arch == "gpt2":
        # Residual stream into both norms (fp32), both norms' outputs, q/k/v, the attention
        # output, the MLP's 4C input to GELU and its output: 2x4 + (1 + 3 + 1 + 1 + 4 + 4) x a.
        per_token = 8 + 14 * a
    else:
        # The same for llama's shapes, per C: both norms' outputs (2), q/k/v ((H + 2 KV) / H),
        # the rotated (and, with QK-norm, normed) queries and keys ((H + KV) / H each), the
        # attention output (1), SwiGLU's gate and up (2F / C), silu(gate) and the product.
        heads = (model.n_heads + 2 * model.kv_heads) / model.n_heads
        rotated = (model.n_heads + model.kv_heads) / model.n_heads * (2 if model.qk_norm else 1)
        per_token = 8 + a * (3 + heads + rotated + 4 * model.ff_width / model.emb_dim)
    total = int(btc * per_token)
    if s.dropout:
        total += btc * 2  # the two residual dropout masks (1 byte each)
        if s.cpu:
            # On a CPU attention with dropout is written out (core/model.py): it keeps the
            # probabilities (B, H, T, T), the dropout mask and the dropped probabilities.
            # Elsewhere a fused kernel keeps only per-row statistics.
            bhtt = s.batch_size * model.n_heads * s.context_length**2
            total += bhtt * (2 * a + 1)
    return total


def estimate(model: GPTConfig, s: Shape) -> Estimate:
    """The peak memory of training this model at this shape, in bytes, by part."""
    params = count_params(model)
    bt = s.batch_size * s.context_length
    block = _block_activation_bytes(model, s)
    # The backward pass of a block makes gradients of its activations: about one block's
    # worth more at a time. With checkpointing, only each block's fp32 input is kept, and
    # one block is recomputed at a time.
    if s.checkpointing:
        activations = model.n_layers * bt * model.emb_dim * 4 + 2 * block
    else:
        activations = (model.n_layers + 1) * block
    activations += bt * model.emb_dim * (4 + 4)  # embeddings' sum and the final norm
    a = 2 if s.precision == "bf16" else 4
    logits = bt * model.vocab_rows * a * 2  # the logits and their gradient
    if not s.cpu:
        logits += bt * model.vocab_size * 4 * 2  # F.cross_entropy's fp32 copy, log-probs
    elif s.precision == "bf16":
        # CPU autocast runs the loss in fp32: its log-probs (the copy's lifetime is shorter
        # there: measured peaks sit between one fp32 tensor more and two).
        logits += bt * model.vocab_size * 4
    if s.accumulating:
        # A gradient computed while one is held is added to it: the largest ones (the
        # embedding's and the head's, V x C) exist twice for a moment, with a bf16 copy.
        activations += model.vocab_rows * model.emb_dim * (4 + 4 + 2)
    held = params  # the weights (and gradients) a process holds whole
    if s.shards > 1:
        # Its shard, two blocks and the larger table (the embedding or the head; a tied
        # one from the forward to the end of the backward): core/distributed.py.
        outside = count_params(replace(model, n_layers=0))
        block = (params - outside) // model.n_layers
        held = min(params, -(-params // s.shards) + 2 * block + model.vocab_rows * model.emb_dim)
    return Estimate(
        weights=held * 4,
        grads=held * 4,
        optimizer=-(-params // s.shards) * 8,
        weight_copies=held * 2 if s.precision == "bf16" else 0,
        activations=activations,
        logits=logits,
    )


# ------------------------------------------------------------------------ what there is


def available_ram() -> int | None:
    """Bytes this process could still take: MemAvailable, capped by a cgroup limit. None
    where neither can be read (not Linux)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def available(device_type: str) -> int | None:
    """Free bytes where the training will allocate: GPU memory, or RAM."""
    if device_type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    if device_type == "mps":
        return None  # shared with the system; MPS reports no budget to check against
    stated = environment.number("TUI_GPT_MEMORY_MIB")  # a smaller budget (a shared server)
    if stated is not None:
        return int(stated * MIB)
    return available_ram()


def largest(fits: Callable[[int], bool], start: int) -> int:
    """The largest n >= 1 with fits(n), fits monotone decreasing; 0 when even 1 does not."""
    if not fits(1):
        return 0
    lo, hi = 1, max(1, start)
    while fits(hi):  # grow until it does not fit
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def check(model: GPTConfig, s: Shape, room: int | None) -> str | None:
    """None when the training fits in `room` bytes (or nothing is known of the room);
    otherwise one line: how much it needs, how much there is, and what would fit."""
    if room is None:
        return None
    need = estimate(model, s).total
    if need <= room:
        return None
    what = f"training needs about {size(need)} and {size(room)} is free"
    if estimate(model, replace(s, batch_size=1, context_length=1)).total > room:
        return f"{what}: the model alone does not fit; choose a smaller preset"

    def fits(**change: Any) -> bool:
        return estimate(model, replace(s, **change)).total <= room

    options = []
    b = largest(lambda n: fits(batch_size=n), s.batch_size)
    if b:
        options.append(f"batch size {b} at context {s.context_length}")
    t = largest(lambda n: fits(context_length=n), s.context_length)
    if t:
        options.append(f"context {t} at batch size {s.batch_size}")
    if not s.checkpointing and fits(checkpointing=True):
        options.append("--activation-checkpointing")
    hint = " or ".join(options) if options else "a smaller preset"
    extra = "; gradient accumulation keeps the update's batch" if b else ""
    return f"{what}; would fit: {hint}{extra}"
