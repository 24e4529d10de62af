"""Int8 weights for decoding: a quarter of the bytes of fp32, half of bf16.

Decoding one token multiplies a single vector by every weight matrix, so its speed is how
fast the weights stream through the cores. Each output row of a Linear is stored as int8
with one bf16 scale (symmetric, per output channel: w ~= q * scale, q in [-127, 127]) and
multiplied by PyTorch's int8-weight kernel (`_weight_int8pack_mm`), which reads the int8
bytes directly. Activations, norms, attention and the KV cache stay bf16.

An opt-in for sampling (`--precision int8`), never for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tui_gpt.core.model import GPT

_KERNEL = getattr(torch.ops.aten, "_weight_int8pack_mm", None)


class Int8Linear(nn.Module):
    """A Linear whose weight (out, in) is int8 rows times bf16 per-row scales."""

    weight_q: torch.Tensor  # (out, in) int8
    scale: torch.Tensor  # (out,) bf16
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)  # (out,)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_q", q.contiguous())
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (N, in)
        if _KERNEL is not None and x2.device.type == "cpu":
            y = _KERNEL(x2, self.weight_q, self.scale)  # (N, out)
        else:  # other devices / older PyTorch: dequantize on the fly (correct, not faster)
            y = F.linear(x2, self.weight_q.to(torch.bfloat16) * self.scale[:, None])
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape, self.out_features)


def quantize_int8(model: GPT) -> GPT:
    """The model in bf16 with every Linear (attention, MLP, output head) as `Int8Linear`;
    in place, returned for convenience. Embeddings stay bf16 (one row is read per token)."""
    model = model.to(torch.bfloat16).eval()
    if model.cfg.tie_weights:
        # The head shares the embedding's matrix; it gets an int8 copy of its own.
        model.out_head = nn.Linear(model.cfg.emb_dim, model.cfg.vocab_rows, bias=False)
        model.out_head.weight = nn.Parameter(model.tok_emb.weight.detach().clone())
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child))
    return model
