"""GPT-2 weights in the Hugging Face layout, cross-checked against `transformers` itself."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import NIGHT_KITCHEN, needs_gpt2, run_cli
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.generate import generate
from tui_gpt.core.gpt2_weights import load_gpt2_safetensors

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """A randomly initialised tiny GPT-2 built from a config (no download), saved as Hugging
    Face saves it: model.safetensors + config.json."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50257, n_positions=64, n_embd=48, n_layer=2, n_head=4)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("hf-gpt2")
    model.save_pretrained(folder)
    return model, folder


def test_logits_and_greedy_tokens_match_transformers(hf_model):
    hf, folder = hf_model
    ours = load_gpt2_safetensors(folder / "model.safetensors")
    assert ours.cfg.tie_weights and ours.cfg.qkv_bias and ours.cfg.n_heads == 4
    assert ours.cfg.context_length == 64
    idx = torch.randint(0, 50257, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()

    prompt = idx[:1, :5]
    seq = prompt
    with torch.no_grad():
        for _ in range(20):
            nxt = hf(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(generate(ours, prompt, 20), seq)


def _resave(folder, out, change):
    tensors = load_file(str(folder / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(out))
    (out.parent / "config.json").write_text((folder / "config.json").read_text())
    return out


def test_bad_files_are_clear_errors(hf_model, tmp_path):
    _, folder = hf_model
    data = (folder / "model.safetensors").read_bytes()
    cut = tmp_path / "cut" / "model.safetensors"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(TuiGptError, match="not a readable safetensors"):
        load_gpt2_safetensors(cut)

    other = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(TuiGptError, match="not a GPT-2 checkpoint"):
        load_gpt2_safetensors(other)

    (tmp_path / "m").mkdir()
    missing = _resave(
        folder,
        tmp_path / "m" / "model.safetensors",
        lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"),
    )
    with pytest.raises(TuiGptError, match=r"1 missing, e.g. \['h.1.mlp.c_fc.bias'\]"):
        load_gpt2_safetensors(missing)

    (tmp_path / "x").mkdir()
    extra = _resave(
        folder,
        tmp_path / "x" / "model.safetensors",
        lambda t: t.update({"transformer.h.0.adapter": torch.zeros(3)}),
    )
    with pytest.raises(TuiGptError, match="1 unexpected"):
        load_gpt2_safetensors(extra)

    (tmp_path / "s").mkdir()
    wrong = _resave(
        folder,
        tmp_path / "s" / "model.safetensors",
        lambda t: t.update({"transformer.h.0.attn.c_proj.bias": torch.zeros(7)}),
    )
    with pytest.raises(TuiGptError, match=r"c_proj.bias has shape \(7,\)"):
        load_gpt2_safetensors(wrong)

    with pytest.raises(TuiGptError, match="GPT-2 124M has 768"):
        load_gpt2_safetensors(folder / "model.safetensors", expect="124M")
    with pytest.raises(TuiGptError, match="no such file"):
        load_gpt2_safetensors(tmp_path / "nope.safetensors")


@pytest.mark.slow
@needs_gpt2
def test_import_generate_and_continue_pretraining(hf_model, tmp_path):
    _, folder = hf_model
    runs = str(tmp_path / "runs")
    result = run_cli("import-gpt2", str(folder), "--run-dir", runs, "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run"]
    gen = run_cli(
        "generate",
        "--run",
        run_id,
        "--prompt",
        "Hello, I am",
        "--temperature",
        "0",
        "--max-new-tokens",
        "5",
        "--precision",
        "fp32",
        "--run-dir",
        runs,
        "--json",
    )
    assert gen.returncode == 0, gen.stderr
    assert len(json.loads(gen.stdout)["tokens"]) == 5

    train = run_cli(
        "train",
        str(NIGHT_KITCHEN),
        "--init-from",
        run_id,
        "--context-length",
        "32",
        "--batch-size",
        "4",
        "--max-steps",
        "3",
        "--precision",
        "fp32",
        "--run-dir",
        runs,
    )
    assert train.returncode == 0, train.stderr
    assert "48" not in train.stderr and "finished" in train.stdout
    listing = {r["id"]: r for r in json.loads(run_cli("runs", "--json", "--run-dir", runs).stdout)}
    assert listing[run_id]["status"] == "imported"
    assert any(r["status"] == "finished" and r["steps"] == 3 for r in listing.values())


def test_offline_size_without_cache_names_the_manual_path(tmp_path):
    result = run_cli(
        "import-gpt2",
        "124M",
        "--run-dir",
        str(tmp_path),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == 2
    assert (
        "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors"
        in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1
