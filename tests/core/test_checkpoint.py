import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT
from tui_gpt.core import checkpoint
from tui_gpt.core.checkpoint import Checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.model import GPT
from tui_gpt.core.shape import GPTConfig


def tiny(**kw):
    torch.manual_seed(0)
    return GPT(model_config("nano", 257, 16, **kw))


def test_weights_round_trip_exactly(tmp_path):
    model = tiny()
    path = checkpoint.save(tmp_path / "w.safetensors", model)
    again = Checkpoint(path).build_model()
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert not Checkpoint(path).has_optimizer


def test_tied_weights_round_trip(tmp_path):
    model = tiny(tie_weights=True, qkv_bias=True)
    path = checkpoint.save(tmp_path / "t.safetensors", model)
    again = Checkpoint(path).build_model()
    assert again.out_head.weight.data_ptr() == again.tok_emb.weight.data_ptr()
    assert torch.equal(again.tok_emb.weight, model.tok_emb.weight)


def test_optimizer_and_rng_round_trip(tmp_path):
    model = tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 257, (2, 8))).sum().backward()
    opt.step()
    torch.manual_seed(42)
    path = checkpoint.save(tmp_path / "full.safetensors", model, opt, train_state={"steps_done": 1})
    expected_draw = torch.rand(3)
    other = tiny()
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-3)
    ck = Checkpoint(path)
    ck.load_model(other)
    ck.load_optimizer(other_opt)
    ck.restore_rng()
    assert torch.equal(torch.rand(3), expected_draw)
    a, b = opt.state_dict(), other_opt.state_dict()
    for i in a["state"]:
        for field in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a["state"][i][field], b["state"][i][field])
    assert ck.train_state == {"steps_done": 1}


def test_mismatched_shapes_are_clear_errors(tmp_path):
    path = checkpoint.save(tmp_path / "w.safetensors", tiny())
    wider = GPT(GPTConfig(vocab_size=257, context_length=16, emb_dim=128, n_layers=2, n_heads=2))
    with pytest.raises(TuiGptError, match="has shape"):
        Checkpoint(path).load_model(wider)
    tied = tiny(tie_weights=True)
    with pytest.raises(TuiGptError, match="do not fit"):
        Checkpoint(path).load_model(tied)
    with pytest.raises(TuiGptError, match="weights only"):
        Checkpoint(path).load_optimizer(torch.optim.AdamW(tied.parameters()))


def test_pickles_and_damaged_files_are_refused(tmp_path):
    evil = tmp_path / "model.pth"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(TuiGptError, match="not a readable checkpoint"):
        Checkpoint(evil)
    path = checkpoint.save(tmp_path / "w.safetensors", tiny())
    data = path.read_bytes()
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TuiGptError):
        Checkpoint(truncated).build_model()
    with pytest.raises(TuiGptError, match="no such checkpoint"):
        Checkpoint(tmp_path / "missing.safetensors")


_SAVER = """
import sys, torch
from tui_gpt.core import checkpoint
from tui_gpt.core.config import model_config
from tui_gpt.core.model import GPT
model = GPT(model_config("micro", 50257, 128))
path = sys.argv[1]
print("ready", flush=True)
i = 0
while True:
    with torch.no_grad():
        model.tok_emb.weight.fill_(float(i))
    checkpoint.save(path, model, train_state={"i": i})
    i += 1
"""


@pytest.mark.slow
def test_kill_during_save_leaves_the_previous_checkpoint_usable(tmp_path):
    path = tmp_path / "latest.safetensors"
    model = GPT(model_config("micro", 50257, 128))
    checkpoint.save(path, model, train_state={"i": -1})
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == b"ready"
    # Let it save a few times, then kill it; a ~27 MB write is likely under way.
    deadline = time.time() + 60
    while Checkpoint(path).train_state["i"] < 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ck = Checkpoint(path)
    i = ck.train_state["i"]
    assert i >= 3
    restored = ck.build_model()
    assert torch.all(restored.tok_emb.weight == float(i))
