"""Losses over a loader and bits per byte, checked by hand."""

import math

import pytest
import torch

from tui_gpt.core.loss import batch_loss, evaluate, token_byte_lengths
from tui_gpt.core.tokenizer import ByteTokenizer


class Uniform(torch.nn.Module):
    """Logits that make every one of V tokens equally likely: loss ln(V) exactly."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab)


def test_bits_per_byte_is_nats_over_bytes_times_ln2():
    # Byte tokens: one byte each, except end-of-text, which stands for "<|endoftext|>".
    lengths = token_byte_lengths(ByteTokenizer())
    assert lengths.shape == (257,) and lengths[65] == 1 and lengths[256] == 13
    x = torch.tensor([[1, 2, 3, 4]])
    y = torch.tensor([[2, 3, 4, 256]])  # 1 + 1 + 1 + 13 = 16 bytes
    loss, bpb = evaluate(Uniform(257), [(x, y)], "cpu", byte_lengths=lengths)
    assert loss == pytest.approx(math.log(257))
    # 4 tokens x ln(257) nats over 16 bytes, in bits.
    assert bpb == pytest.approx(4 * math.log(257) / (16 * math.log(2)))
    assert bpb == pytest.approx(loss * 4 / 16 / math.log(2))


def test_bits_per_byte_weighs_batches_by_their_bytes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(257, 8), torch.nn.Linear(8, 257))
    lengths = token_byte_lengths(ByteTokenizer())
    batches = [(torch.randint(0, 256, (2, 5)), torch.randint(0, 256, (2, 5))) for _ in range(3)]
    loss, bpb = evaluate(model, batches, "cpu", byte_lengths=lengths)
    with torch.no_grad():
        losses = [batch_loss(model, x, y, "cpu").item() for x, y in batches]
    assert loss == pytest.approx(sum(losses) / 3)
    assert bpb == pytest.approx(sum(v * 10 for v in losses) / (30 * math.log(2)))
    assert math.isnan(evaluate(model, batches, "cpu")[1])  # no byte lengths: not known


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows,vocab", [(300, 50257), (1000, 257), (3, 7)])
def test_chunked_cross_entropy_equals_torchs_on_fp32_logits(dtype, rows, vocab):
    from tui_gpt.core.loss import cross_entropy

    torch.manual_seed(0)
    logits = (torch.randn(rows, vocab) * 4).to(dtype).requires_grad_()
    targets = torch.randint(0, vocab, (rows,))
    expected = torch.nn.functional.cross_entropy(logits.float(), targets)
    (want,) = torch.autograd.grad(expected, logits)
    got = cross_entropy(logits, targets)
    (grad,) = torch.autograd.grad(got, logits)
    assert got.dtype == torch.float32 and grad.dtype == dtype
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(grad, want, rtol=1e-3 if dtype == torch.float32 else 1e-2, atol=1e-7)
