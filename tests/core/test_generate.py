import torch

from tui_gpt.core.config import model_config
from tui_gpt.core.generate import (
    decoding_kernels,
    filter_logits,
    generate,
    next_token_probs,
    pick_next,
    seeded_generator,
    stream,
    uses_aten_gemv,
)
from tui_gpt.core.model import GPT

# SPEC §3: the nine-word vocabulary and its next-token logits.
VOCAB = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
LOGITS = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])


def test_softmax_and_argmax():
    probs = next_token_probs(LOGITS, temperature=1.0)
    expected = [0.0609, 0.0016, 0.0001, 0.5721, 0.0034, 0.0001, 0.0001, 0.3576, 0.0040]
    assert torch.allclose(probs, torch.tensor(expected), atol=1e-4)
    assert VOCAB[int(pick_next(LOGITS[None], temperature=0.0))] == "forward"


def test_temperature_scaling():
    assert abs(next_token_probs(LOGITS, 0.1)[3].item() - 0.991) < 1e-3
    hot = next_token_probs(LOGITS, 5.0)
    assert abs(hot[3].item() - 0.242) < 1e-3
    assert abs(hot[2].item() - 0.043) < 1e-3


def test_top_k_masks_all_but_three():
    masked = filter_logits(LOGITS, top_k=3)
    kept = torch.isfinite(masked).nonzero().flatten().tolist()
    assert kept == [0, 3, 7]
    assert masked[[0, 3, 7]].tolist() == LOGITS[[0, 3, 7]].tolist()
    probs = next_token_probs(LOGITS, 1.0, top_k=3)
    assert torch.allclose(
        probs, torch.tensor([0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0]), atol=1e-4
    )


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = next_token_probs(LOGITS, 1.0, top_p=0.9)
    assert (probs > 0).nonzero().flatten().tolist() == [3, 7]  # 0.572 + 0.358 reaches 0.9
    assert abs(probs.sum().item() - 1) < 1e-6
    probs = next_token_probs(LOGITS, 1.0, top_p=0.95)
    assert (probs > 0).nonzero().flatten().tolist() == [0, 3, 7]  # 0.930 does not reach 0.95
    probs = next_token_probs(LOGITS, 1.0, top_p=0.5)
    assert (probs > 0).nonzero().flatten().tolist() == [3]


def test_thousand_draws_follow_the_distribution():
    g = seeded_generator(123)
    draws = [int(pick_next(LOGITS[None], 1.0, generator=g)) for _ in range(1000)]
    counts = {VOCAB[i]: draws.count(i) for i in set(draws)}
    assert 540 <= counts["forward"] <= 610
    assert 310 <= counts["toward"] <= 400
    assert 45 <= counts["closer"] <= 90


def test_sampling_never_touches_the_global_rng():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    pick_next(LOGITS[None], 1.0, generator=seeded_generator(1))
    assert torch.equal(before, torch.get_rng_state())


def _model(ctx=12):
    torch.manual_seed(0)
    return GPT(model_config("nano", 257, ctx)).eval()


def test_cached_greedy_equals_full_recompute_past_the_context():
    model = _model(ctx=12)
    idx = torch.randint(0, 257, (1, 4))
    cached = generate(model, idx, 30, use_cache=True)
    full = generate(model, idx, 30, use_cache=False)
    assert cached.shape == (1, 34)
    assert torch.equal(cached, full)


def test_seeded_sampling_is_repeatable():
    model = _model()
    idx = torch.randint(0, 257, (1, 3))
    a = generate(model, idx, 20, temperature=1.0, top_k=20, generator=seeded_generator(7))
    b = generate(model, idx, 20, temperature=1.0, top_k=20, generator=seeded_generator(7))
    c = generate(model, idx, 20, temperature=1.0, top_k=20, generator=seeded_generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stops_at_end_of_sequence():
    model = _model()
    idx = torch.randint(0, 257, (1, 3))
    greedy = generate(model, idx, 10)
    first = int(greedy[0, 3])
    assert generate(model, idx, 10, eos_id=first).shape == (1, 3)
    assert len(list(stream(model, idx, 10, eos_id=int(greedy[0, 5])))) == 2


def test_context_length_crops_like_the_reference():
    model = _model(ctx=12)
    idx = torch.randint(0, 257, (1, 10))
    cropped = generate(model, idx, 8, context_length=5)
    # Reference loop: each step sees only the last 5 tokens.
    seq = idx
    for _ in range(8):
        logits = model(seq[:, -5:])[:, -1]
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cropped, seq)


def test_bf16_decoding_kernels_agree_and_leave_onednn_as_found():
    torch.manual_seed(0)
    model = GPT(model_config("nano", 257, 32)).eval().to(torch.bfloat16)
    assert uses_aten_gemv(model)
    idx = torch.tensor([[1, 2, 3, 4]])
    before = torch._C._get_mkldnn_enabled()
    fast = generate(model, idx, 12, aten_gemv=True)
    onednn = generate(model, idx, 12, aten_gemv=False)
    assert torch._C._get_mkldnn_enabled() == before
    steps = stream(model, idx, 5)
    next(steps)
    steps.close()  # abandoned midway (a cancelled chat): nothing stays switched off
    assert torch._C._get_mkldnn_enabled() == before
    with torch.inference_mode():
        with decoding_kernels(True):
            a = model(fast).float()
        b = model(fast).float()
    assert fast.shape == onednn.shape == (1, 16)
    assert (a - b).abs().max() < 0.05  # the same model read by two kernels: rounding only
    assert not uses_aten_gemv(GPT(model_config("nano", 257, 32)))  # fp32 weights: oneDNN stays
