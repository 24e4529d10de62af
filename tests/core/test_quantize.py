"""Int8 weights for decoding: close to the bf16 model on a really trained model."""

import torch

from tests.trainings import config, start
from tui_gpt.core.config import model_config
from tui_gpt.core.loss import loader_loss
from tui_gpt.core.model import GPT
from tui_gpt.core.quantize import Int8Linear, quantize_int8
from tui_gpt.core.sampling import load_for_sampling


def test_every_linear_becomes_int8_and_one_layer_is_close():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    q = Int8Linear(lin)
    assert q.weight_q.dtype == torch.int8 and q.weight_q.shape == (48, 64)
    x = torch.randn(3, 5, 64)
    expected = lin(x)
    got = q(x).float()
    assert got.shape == expected.shape
    # int8 rows with per-row scales: error well under 1% of the output's spread
    assert (got - expected).abs().max() < 0.01 * expected.abs().max() + 0.02
    model = quantize_int8(GPT(model_config("nano", 257, 32, tie_weights=True)))
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert not linears and isinstance(model.out_head, Int8Linear)
    assert model.tok_emb.weight.dtype == torch.bfloat16  # embeddings stay bf16


def test_trained_model_int8_matches_bf16_loss_and_greedy_text(runs_dir):
    job = start(runs_dir, config(epochs=4, sample_tokens=0))
    assert job.run_training() == "finished"
    bf16 = load_for_sampling(job.run.id, runs_dir=runs_dir, precision="bf16")
    int8 = load_for_sampling(job.run.id, runs_dir=runs_dir, precision="int8")
    assert int8.precision == "int8"
    val = job.trainer.val_loader
    with torch.inference_mode():
        loss_bf16 = loader_loss(bf16.model, val, "cpu")
        loss_int8 = loader_loss(int8.model, val, "cpu")
        assert abs(loss_int8 - loss_bf16) < 0.01 * loss_bf16
        # The likeliest next token at every position of the validation text.
        x, _ = next(iter(val))
        top_bf16 = bf16.model(x).argmax(-1)
        top_int8 = int8.model(x).argmax(-1)
    agreement = (top_bf16 == top_int8).float().mean().item()
    assert agreement > 0.95, agreement
    assert len(set(top_bf16.flatten().tolist())) > 1  # a model that predicts more than one token
