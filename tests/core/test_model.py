import math

import pytest
import torch

from tests.conftest import VERDICT, needs_gpt2, needs_verdict
from tui_gpt.core.config import PRESETS, count_params, model_config
from tui_gpt.core.data import make_loaders, prepare
from tui_gpt.core.loss import loader_loss, perplexity
from tui_gpt.core.model import GPT
from tui_gpt.core.shape import GPTConfig
from tui_gpt.core.tokenizer import get_tokenizer


@pytest.mark.parametrize(
    ("preset", "ctx", "expected"),
    [
        ("gpt2-small", 1024, 163_009_536),
        ("gpt2-small", 256, 162_419_712),
        ("gpt2-medium", 1024, 406_212_608),
        ("gpt2-large", 1024, 838_220_800),
        ("gpt2-xl", 1024, 1_637_792_000),
    ],
)
def test_parameter_counts_match_the_reference(preset, ctx, expected):
    assert count_params(model_config(preset, 50257, ctx)) == expected


def test_built_model_counts_and_head_free_count():
    model = GPT(model_config("gpt2-small", 50257, 1024))
    assert model.num_params() == 163_009_536
    assert model.num_params(include_head=False) == 124_412_160


def test_tied_head_is_counted_once_and_shares_storage():
    cfg = model_config("nano", 300, 32, tie_weights=True, qkv_bias=True)
    model = GPT(cfg)
    assert model.out_head.weight.data_ptr() == model.tok_emb.weight.data_ptr()
    assert model.num_params() == count_params(cfg)


@pytest.mark.parametrize("preset", PRESETS)
def test_count_params_agrees_with_the_module(preset):
    cfg = model_config(preset, 257, 16)
    if cfg.emb_dim > 800:
        pytest.skip("large presets are covered by the formula test")
    assert count_params(cfg) == GPT(cfg).num_params()


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(emb_dim=100, n_heads=3)


def test_forward_shapes_and_context_limit():
    model = GPT(model_config("nano", 257, 16)).eval()
    idx = torch.randint(0, 257, (3, 16))
    assert model(idx).shape == (3, 16, 257)
    assert model(idx, last_only=True).shape == (3, 1, 257)
    with pytest.raises(ValueError, match="exceeds the context length"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_attention_is_causal():
    torch.manual_seed(0)
    model = GPT(model_config("nano", 257, 16)).eval()
    a = torch.randint(0, 257, (1, 16))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 257  # change only the future of position 9
    assert torch.allclose(model(a)[0, :10], model(b)[0, :10], atol=1e-6)


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(model_config("nano", 257, 32)).eval()
    idx = torch.randint(0, 257, (2, 20))
    full = model(idx)
    cache = model.new_cache(2)
    parts = [model(idx[:, :7], cache), model(idx[:, 7:8], cache), model(idx[:, 8:20], cache)]
    assert cache.length == 20
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


@pytest.mark.slow
@needs_verdict
@needs_gpt2
def test_untrained_124m_scores_near_ln_vocab_on_the_verdict(tmp_path):
    tok = get_tokenizer("gpt2")
    data = prepare(VERDICT, tok, 0.9, cache_root=tmp_path)
    train, val = make_loaders(data, 256, 2)
    torch.manual_seed(123)
    model = GPT(model_config("gpt2-small", 50257, 256)).eval()
    with torch.no_grad():
        val_loss = loader_loss(model, val, "cpu")
        train_loss = loader_loss(model, train, "cpu", num_batches=1)
    assert abs(val_loss - math.log(50257)) < 0.5
    assert abs(train_loss - math.log(50257)) < 0.5
    assert 10_000 < perplexity(val_loss) < 200_000


def test_loader_loss_respects_num_batches_and_rejects_empty():
    model = GPT(model_config("nano", 257, 8)).eval()
    batches = [(torch.randint(0, 257, (2, 8)), torch.randint(0, 257, (2, 8))) for _ in range(4)]
    from tui_gpt.core.loss import batch_loss

    with torch.no_grad():
        first_two = sum(batch_loss(model, x, y, "cpu").item() for x, y in batches[:2]) / 2
    assert loader_loss(model, batches, "cpu", num_batches=2) == pytest.approx(first_two)
    with pytest.raises(ValueError, match="empty"):
        loader_loss(model, [], "cpu")


def test_perplexity_of_diverged_loss_is_infinite():
    assert perplexity(2.0) == pytest.approx(math.e**2)
    assert perplexity(1e6) == math.inf


def test_padded_vocabulary_keeps_logits_vocab_wide():
    from tui_gpt.core.config import padded

    assert padded(50257) == 50304 and padded(257) == 320 and padded(64) == 64
    cfg = model_config("nano", 257, 16, padded_vocab_size=padded(257))
    model = GPT(cfg).eval()
    assert model.tok_emb.weight.shape[0] == model.out_head.weight.shape[0] == 320
    assert model(torch.randint(0, 257, (2, 5))).shape == (2, 5, 257)
    assert count_params(cfg) == model.num_params()
    with pytest.raises(ValueError, match="at least vocab_size"):
        GPTConfig(vocab_size=300, padded_vocab_size=256)


def test_dropout_zeroes_its_share_and_keeps_the_mean():
    from tui_gpt.core.model import dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.1, True)
    assert abs((y == 0).float().mean().item() - 0.1) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.01
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    assert dropout(x, 1.0, True).abs().sum() == 0


def test_written_out_attention_is_sdpas_causal_attention():
    from tui_gpt.core.config import model_config
    from tui_gpt.core.model import CausalSelfAttention

    attn = CausalSelfAttention(model_config("nano", 257, 16))
    q, k, v = (torch.randn(2, 2, 16, 32) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(attn._attention_with_dropout(q, k, v, 0.0), expected)


@pytest.mark.parametrize("arch,drop", [("gpt2", 0.0), ("llama", 0.0), ("gpt2", 0.2)])
def test_fp32_attention_under_bf16_autocast_computes_attention_in_fp32(arch, drop, monkeypatch):
    """`fp32_attention` takes attention (fused, or written out for dropout) out of bf16
    autocast: the attention kernels see fp32 inputs, the rest of the model stays bf16, and
    the loss and gradients are bf16 autocast's own, within bf16's rounding. Outside
    autocast it changes nothing."""
    from tui_gpt.core.config import model_config

    torch.manual_seed(0)
    model = GPT(model_config("nano", 300, 32, arch=arch, dropout=drop)).train()
    idx = torch.randint(0, 300, (2, 32))
    seen: list[torch.dtype] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    matmul_dtypes: list[torch.dtype] = []

    def spy(q, *args, **kwargs):
        seen.append(q.dtype)
        return sdpa(q, *args, **kwargs)

    def loss_and_grads(fp32: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.fp32_attention = fp32
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(idx)
        matmul_dtypes.append(logits.dtype)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), idx.flatten())
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    plain, plain_grads = loss_and_grads(False)
    exact, exact_grads = loss_and_grads(True)
    assert matmul_dtypes == [torch.bfloat16, torch.bfloat16]  # the head stays bf16
    if not drop:
        layers = model.cfg.n_layers
        assert seen == [torch.bfloat16] * layers + [torch.float32] * layers
    assert model.fp32_attention is True
    torch.testing.assert_close(exact, plain, atol=2e-2, rtol=0)
    for a, b in zip(exact_grads, plain_grads, strict=True):
        assert (a - b).norm() <= 0.05 * b.norm() + 1e-6
    model.fp32_attention = False
    with torch.no_grad():
        outside = model.eval()(idx)
        model.fp32_attention = True
        torch.testing.assert_close(model(idx), outside, atol=0, rtol=0)


# ----------------------------------------------------------------------------- llama


def llama(**changes) -> GPTConfig:
    base = dict(arch="llama", vocab_size=300, context_length=32, emb_dim=64, n_heads=4,
                n_layers=2, dropout=0.0)  # fmt: skip
    return GPTConfig(**{**base, **changes})


def perturbed(cfg: GPTConfig) -> GPT:
    """A llama model with its weights moved off their initial values (as after training)."""
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("changes", [{}, {"n_kv_heads": 2}, {"n_kv_heads": 1, "qk_norm": True}])
def test_llama_shape_counts_and_cache(changes):
    cfg = llama(**changes)
    model = perturbed(cfg)
    assert model.num_params() == count_params(cfg) and model.pos_emb is None
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert cfg.ff_width % 64 == 0 and abs(cfg.ff_width - 8 * 64 / 3) < 64
    ids = torch.randint(0, 300, (2, 20))
    full = model(ids)
    cache = model.new_cache(2)
    assert cache.layers[0].k.shape[1] == cfg.kv_heads  # only the key/value heads are kept
    first = model(ids[:, :12], cache)
    rest = torch.cat([model(ids[:, i : i + 1], cache) for i in range(12, 20)], dim=1)
    assert torch.allclose(torch.cat([first, rest], dim=1), full, atol=1e-5)


def test_rotary_scores_depend_on_distance_only():
    from tui_gpt.core.model import Rotary

    rotary = Rotary(llama())
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    scores = [(rotary(q, a) * rotary(k, b)).sum().item() for a, b in ((5, 2), (9, 6), (20, 17))]
    assert scores == pytest.approx([scores[0]] * 3, abs=1e-5)
    assert torch.allclose(rotary(q, 0), q)  # position 0 is not rotated


def test_llama_keeps_pytorchs_default_initialisation():
    """As gpt2 (measured better than zero writers and head: docs/recipes.md): no matrix starts at
    zero, every Linear has the default spread, and an untrained model scores near ln(V)."""
    torch.manual_seed(0)
    model = GPT(llama(emb_dim=128)).eval()
    for name, p in model.named_parameters():
        if p.dim() == 2 and "emb" not in name:
            fan_in = p.shape[1]
            assert p.std().item() == pytest.approx((3 * fan_in) ** -0.5, rel=0.1), name
    assert model.tok_emb.weight.std().item() == pytest.approx(1.0, rel=0.1)
    logits = model(torch.randint(0, 300, (2, 10)))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.zeros(20, dtype=torch.long))
    assert abs(loss.item() - math.log(300)) < 1.0


def test_llama_settings_that_cannot_be_are_one_error():
    from tui_gpt.core.config import ModelChoice
    from tui_gpt.core.errors import TuiGptError

    with pytest.raises(TuiGptError, match="not divisible by n_kv_heads"):
        ModelChoice("micro", arch="llama", kv_heads=3).config(300)
    assert ModelChoice("micro", arch="llama", kv_heads=2).config(300).kv_heads == 2
