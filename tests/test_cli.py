"""The real `tui-gpt` command in subprocesses: output, exit codes, signals, resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    NIGHT_KITCHEN,
    ROOT,
    VERDICT,
    as_flags,
    needs_gpt2,
    needs_verdict,
    other_value,
    run_cli,
    wait_until,
)
from tui_gpt.core.events import Eval
from tui_gpt.core.records import RunRecord
from tui_gpt.core.runs import Run, list_runs

# The project's own text in bytes: 11 batches of 8 x 64 per epoch, no vocabulary needed.
TEXT = str(NIGHT_KITCHEN)
TINY = ["--preset", "nano", "--context-length", "64", "--batch-size", "8", "--precision", "fp32",
        "--tokenizer", "byte"]  # fmt: skip


@needs_verdict
@needs_gpt2
def test_prepare_json_prints_the_verdict_facts():
    result = run_cli("prepare", str(VERDICT), "--context-length", "256", "--json")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert {
        k: facts[k]
        for k in ("chars", "tokens", "train_tokens", "val_tokens", "train_batches", "val_batches")
    } == {
        "chars": 20479,
        "tokens": 5145,
        "train_tokens": 4612,
        "val_tokens": 534,
        "train_batches": 9,
        "val_batches": 1,
    }


@needs_verdict
@needs_gpt2
def test_prepare_reports_a_split_too_short(tmp_path):
    result = run_cli("prepare", str(VERDICT), "--context-length", "1024", "--json")
    assert result.returncode == 2
    assert "validation split has 534 tokens" in json.loads(result.stdout)["problems"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", TEXT, "--batch-size", "0"], "--batch-size: must be at least 1"),
        (["train", TEXT, "--lr", "abc"], "--lr: expected a number"),
        (["train", TEXT, "--preset", "huge"], "invalid choice"),
        (["train", "/no/such/file.txt"], "no such file or folder"),
        (["train"], "DATA is required"),
        (["prepare", TEXT, "--train-ratio", "1.5"], "between 0 and 1"),
        (["generate", "--run", "nope", "--prompt", "x"], "no run 'nope'"),
        (["generate", "--prompt", "x"], "give one of RUN, --run RUN or --checkpoint FILE"),
        (["generate", "a", "--run", "b", "--prompt", "x"], "not more than one"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args, message, tmp_path):
    result = (
        run_cli(*args, "--run-dir", str(tmp_path)) if args[0] != "frobnicate" else run_cli(*args)
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_bad_data_leaves_no_run_folder(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01binary")
    result = run_cli("train", str(bad), "--run-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "binary content" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_every_verb_has_help():
    for verb in ("prepare", "train", "generate", "runs", "plot", "watch", "bench", "import-gpt2"):
        result = run_cli(verb, "--help")
        assert result.returncode == 0 and "usage: tui-gpt" in result.stdout


@pytest.mark.slow
def test_train_generate_runs_plot(tmp_path):
    runs = str(tmp_path / "runs")
    result = run_cli("train", TEXT, *TINY, "--epochs", "2", "--run-dir", runs)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Ep 1 (Step 000000): Train loss" in out and "Ep 2 (Step 000015)" in out
    assert out.count("Every effort moves you") >= 2
    run_id = out.split("finished: run ")[1].split()[0]

    listing = json.loads(run_cli("runs", "--json", "--run-dir", runs).stdout)
    assert [(r["id"], r["status"], r["steps"]) for r in listing] == [(run_id, "finished", 22)]

    gen = [
        "generate",
        "--run",
        run_id,
        "--prompt",
        "Every effort",
        "--max-new-tokens",
        "15",
        "--run-dir",
        runs,
    ]
    a = run_cli(*gen, "--seed", "3", "--temperature", "1.0")
    b = run_cli(*gen, "--seed", "3", "--temperature", "1.0")
    c = run_cli(*gen, "--seed", "4", "--temperature", "1.0")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout != c.stdout
    assert a.stdout.startswith("Every effort")
    js = json.loads(run_cli(*gen, "--seed", "3", "--temperature", "1.0", "--json").stdout)
    assert "Every effort" + js["text"] == a.stdout.rstrip("\n") and len(js["tokens"]) == 15

    int8 = run_cli(*gen, "--precision", "int8")
    assert int8.returncode == 0 and int8.stdout.startswith("Every effort"), int8.stderr
    # RUN as the other verbs take it, and by its label.
    assert run_cli("runs", "label", run_id, "my first", "--run-dir", runs).returncode == 0
    by_label = run_cli("generate", "my first", "--prompt", "Every effort", "--max-new-tokens", "15",
                       "--seed", "3", "--temperature", "1.0", "--run-dir", runs)  # fmt: skip
    assert by_label.returncode == 0 and by_label.stdout == a.stdout, by_label.stderr

    plot = run_cli("plot", run_id, "--run-dir", runs, "--width", "70")
    assert plot.returncode == 0 and "train loss" in plot.stdout and "perplexity" in plot.stdout


@pytest.mark.slow
def test_compile_opt_in_says_what_it_did_and_trains_alike(tmp_path):
    """--compile with the real torch.compile: either it compiles (a notice with the time)
    and the losses match eager within float tolerance, or it says why not and trains eager."""
    losses = {}
    for mode in ("eager", "compile"):
        runs = tmp_path / mode
        extra = ["--compile"] if mode == "compile" else []
        result = run_cli(
            "train",
            TEXT,
            *TINY,
            "--max-steps",
            "3",
            "--dropout",
            "0",
            "--run-dir",
            str(runs),
            *extra,
        )
        assert result.returncode == 0, result.stderr
        [events] = runs.glob("*/events.jsonl")
        lines = [json.loads(line) for line in events.read_text().splitlines()]
        losses[mode] = [e["loss"] for e in lines if e["event"] == "step"]
        notices = [e["message"] for e in lines if e["event"] == "notice"]
        assert notices[0].startswith("plan: ") and notices[0] in result.stdout
        notices = notices[1:]  # after the plan, what compiling did
    assert notices[0] == "compiling the model (torch.compile): the first step is slow"
    assert notices[0] in result.stdout
    if notices[1].startswith("compiled in"):
        assert losses["compile"] == pytest.approx(losses["eager"], rel=1e-3)
    else:
        assert notices[1].endswith("training eager") and losses["compile"] == losses["eager"]


def _start_training(runs: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui_gpt",
            "train",
            TEXT,
            *TINY,
            "--epochs",
            "100",
            "--run-dir",
            str(runs),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
    )


def _wait_for_steps(runs: Path, n: int, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for events in runs.glob("*/events.jsonl"):
            if events.read_text().count('"event": "step"') >= n:
                return events.parent
        time.sleep(0.1)
    raise AssertionError("training did not start")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_save_a_checkpoint_and_stop(tmp_path, sig):
    runs = tmp_path / "runs"
    proc = _start_training(runs)
    run_dir = _wait_for_steps(runs, 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err  # saved and stopped; the status a shell expects
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "stopped"
    assert (run_dir / "checkpoints" / "latest.safetensors").is_file()
    last = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()][-1]
    assert last["event"] == "stopped" and signal.Signals(sig).name in last["reason"]
    if sig != signal.SIGHUP:
        assert "continue tui-gpt train --resume" in out

    resumed = run_cli(
        "train",
        "--resume",
        run_dir.name,
        "--max-steps",
        str(status["step"] + 4),
        "--run-dir",
        str(runs),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "finished" in resumed.stdout
    # It says where it continues: the step after the last one saved.
    assert f"resuming run {run_dir.name} at step {status['step'] + 1:,}:" in resumed.stdout
    assert json.loads((run_dir / "status.json").read_text())["step"] == status["step"] + 3


_DOUBLE_INTERRUPT = """
import os, signal, sys
from tui_gpt.commands.train import install_stop_signals
from tui_gpt.core.trainer import TrainerControl
control = TrainerControl()
install_stop_signals(control, lambda text: print(text, flush=True))
os.kill(os.getpid(), signal.SIGINT)
assert control.stopping and "SIGINT" in control.stop_reason
print("first handled", flush=True)
os.kill(os.getpid(), signal.SIGINT)
print("still alive", flush=True)
"""


def test_second_ctrl_c_exits_at_once():
    result = subprocess.run(
        [sys.executable, "-c", _DOUBLE_INTERRUPT], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == -signal.SIGINT, result.stderr  # a shell reports it as 130
    assert "Ctrl+C again to quit at once" in result.stdout and "first handled" in result.stdout
    assert "still alive" not in result.stdout


def test_core_never_imports_textual():
    code = (
        "import sys, pkgutil, importlib, tui_gpt.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('tui_gpt.core.' + m.name)\n"
        "import tui_gpt.cli\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'textual'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_setting_travels_from_flags_and_through_a_background_spec(tmp_path):
    """Each training setting, set to a non-default value on the command line, reaches the
    spec; the spec written for a background run reads back identical."""
    from tui_gpt.cli import build_parser
    from tui_gpt.commands.train import spec_from_args
    from tui_gpt.core import detach
    from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec
    from tui_gpt.core.settings import specs

    argv, expected = ["train", "data.txt"], {}
    for cls in (ModelChoice, TrainConfig):
        for spec in specs(cls):
            expected[spec.name] = other_value(spec)
            argv += as_flags(spec, expected[spec.name])
    spec = spec_from_args(build_parser().parse_args(argv))
    got = {**vars(spec.model), **vars(spec.train)}
    assert got == expected
    path = detach.write_spec(spec, tmp_path)
    args = build_parser().parse_args(["--run-dir", str(tmp_path), "train", "--settings", str(path)])
    assert spec_from_args(args) == spec == TrainSpec.load(path)


@pytest.mark.slow
def test_settings_file_flags_override_and_bad_files_are_one_line(tmp_path):
    from tui_gpt.core.config import ModelChoice, TrainConfig, TrainSpec

    spec = TrainSpec(TEXT, ModelChoice("nano", 64, "byte"), TrainConfig(max_steps=2, lr=1e-3))
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec.to_dict()))
    result = run_cli("train", "--settings", str(path), "--max-steps", "1", "--precision", "fp32",
                     "--run-dir", str(tmp_path / "runs"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "runs").iterdir()
    saved = json.loads((run / "settings.json").read_text())
    assert saved["train"]["max_steps"] == 1 and saved["train"]["lr"] == 1e-3
    assert saved["model"]["preset"] == "nano"
    path.write_text(json.dumps({"data": "x", "train": {"lr": -1}}))
    bad = run_cli("train", "--settings", str(path), "--run-dir", str(tmp_path / "runs"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "Learning rate (--lr): must be greater than 0" in bad.stderr


def test_resume_refuses_settings_that_would_change_the_run(tmp_path):
    result = run_cli("train", "--resume", "x", "--batch-size", "4", "--run-dir", str(tmp_path))
    assert result.returncode == 2 and "--batch-size cannot change when resuming" in result.stderr


@pytest.mark.slow
def test_compare_show_label_and_plot_files(tmp_path):
    runs = str(tmp_path / "runs")
    for lr in ("1e-3", "3e-3"):
        result = run_cli("train", TEXT, *TINY, "--max-steps", "4", "--eval-freq", "2",
                         "--lr", lr, "--run-dir", runs)  # fmt: skip
        assert result.returncode == 0, result.stderr
    a, b = sorted(r["id"] for r in json.loads(run_cli("runs", "--json", "--run-dir", runs).stdout))
    compared = json.loads(run_cli("compare", a, b, "--json", "--run-dir", runs).stdout)
    assert compared["differing"] == {"lr": [1e-3, 3e-3]}
    text = run_cli("compare", a, b, "--width", "80", "--run-dir", runs).stdout
    assert "validation loss" in text and "best val loss" in text and "lr " in text

    assert run_cli("runs", "label", a, "baseline", "--run-dir", runs).returncode == 0
    listed = json.loads(run_cli("runs", "--label", "base", "--json", "--run-dir", runs).stdout)
    assert [r["id"] for r in listed] == [a]
    shown = json.loads(run_cli("runs", "show", a, "--json", "--run-dir", runs).stdout)
    assert shown["label"] == "baseline" and shown["settings"]["lr"] == 1e-3 and shown["steps"] == 4

    out = tmp_path / "curves.csv"
    wrote = run_cli("plot", a, b, "--output", str(out), "--run-dir", runs)
    assert wrote.returncode == 0, wrote.stderr
    # A header, and three evaluations per run: steps 0 and 2, and the last one (3).
    assert len(out.read_text().splitlines()) == 1 + 2 * 3
    small = run_cli("plot", a, "--width", "10", "--height", "3", "--run-dir", runs)
    assert small.returncode == 2 and "at least 30 columns and 8 rows" in small.stderr
    bad = run_cli("plot", a, "--output", str(tmp_path / "x.gif"), "--run-dir", runs)
    assert bad.returncode == 2 and ".gif" in bad.stderr

    pytest.importorskip("matplotlib", reason="images need the plots extra (matplotlib)")
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<svg"), (".pdf", b"%PDF")):
        image = tmp_path / f"curves{suffix}"
        made = run_cli("plot", a, b, "--output", str(image), "--run-dir", runs)
        assert made.returncode == 0, made.stderr
        assert magic in image.read_bytes()[:400]


def test_the_app_without_a_terminal_says_what_to_run_instead():
    result = run_cli(stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "the app needs a terminal" in result.stderr
    assert "tui-gpt --help" in result.stderr and "Traceback" not in result.stderr


def test_help_says_what_data_and_export_types_are():
    for verb in ("train", "prepare"):
        text = " ".join(run_cli(verb, "--help").stdout.split())
        assert ".jsonl" in text and ".parquet" in text and ".zst" in text, verb
    text = " ".join(run_cli("export", "--help").stdout.split())
    assert "gguf: f16 (default), f32 or q8_0" in text


@pytest.mark.slow
def test_resume_may_change_the_schedule_and_the_events_say_so(tmp_path):
    runs = str(tmp_path / "runs")
    first = run_cli(
        "train", TEXT, *TINY, "--max-steps", "2", "--sample-tokens", "0", "--run-dir", runs
    )
    assert first.returncode == 0, first.stderr
    [run] = list_runs(tmp_path / "runs")
    resumed = run_cli("train", "--resume", run.id, "--lr", "0.001", "--max-steps", "4",
                      "--run-dir", runs)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    notes = [json.loads(line) for line in open(f"{run.path}/events.jsonl")]
    said = [e["message"] for e in notes if e["event"] == "notice"]
    # Each start plans first (plan: ...); the resume also says what changed.
    assert [m for m in said if not m.startswith("plan: ")] == [
        "resumed with --max-steps 2 -> 4, --lr 0.0004 -> 0.001"
    ]
    assert sum(m.startswith("plan: 2 steps") for m in said) == 2
    steps = [e for e in notes if e["event"] == "step"]
    assert len(steps) == 4 and steps[-1]["lr"] == pytest.approx(0.001)
    refused = run_cli("train", "--resume", run.id, "--seed", "5", "--run-dir", runs)
    assert (
        refused.returncode == 2
        and "--seed cannot change when resuming (it would change the data order)" in refused.stderr
    )


@pytest.mark.slow
@pytest.mark.parametrize("end", [("--epochs", "1"), ("--max-steps", "3")])
def test_control_of_a_finished_run_advises_a_command_that_works(tmp_path, end):
    """Whatever ended the run (its epochs, its max steps), the command `control` advises
    and the one `train` prints at its end each train it further, evaluated at the end."""
    runs = str(tmp_path / "runs")
    trained = run_cli("train", TEXT, *TINY, *end, "--sample-tokens", "0", "--run-dir", runs)
    assert trained.returncode == 0, trained.stderr
    [run] = list_runs(tmp_path / "runs")
    printed = trained.stdout.split("further  tui-gpt ", 1)[1].splitlines()[0].split()
    result = run_cli("control", run.id, "pause", "--run-dir", runs)
    assert result.returncode == 2 and "it finished; train it further with: tui-gpt" in result.stderr
    advice = result.stderr.split("with: tui-gpt ", 1)[1].split(" (or")[0].split()
    # A plain resume would train nothing: refused with the same advice, the run untouched.
    info = (Path(run.path) / "run.json").read_bytes()
    plain = run_cli("train", "--resume", run.id, "--run-dir", runs)
    assert plain.returncode != 0 and "nothing to train" in plain.stderr
    assert " ".join(advice) in plain.stderr and (Path(run.path) / "run.json").read_bytes() == info
    steps = run.steps
    for command in (advice, printed):
        further = run_cli(*command, "--run-dir", runs)
        assert further.returncode == 0, further.stderr
        [after] = list_runs(tmp_path / "runs")
        assert after.status == "finished" and after.steps > steps
        evals = [e for e in Run(after.path).typed_events() if isinstance(e, Eval)]
        assert evals[-1].step == after.steps - 1  # the weights it ended with, measured
        steps = after.steps
    # Which weights a sample comes from is said (on stderr: stdout is the text).
    sample = run_cli("generate", run.id, "--prompt", "The", "--max-new-tokens", "3",
                     "--run-dir", runs)  # fmt: skip
    assert sample.returncode == 0 and f"sampling from best, step {steps - 1}, val loss" in sample.stderr


@pytest.mark.slow
def test_settings_that_do_not_apply_are_refused(tmp_path):
    runs = str(tmp_path / "runs")
    for flags, said in [
        (["--kv-heads", "2"], "KV heads (--kv-heads) applies only with --arch llama, not gpt2"),
        (["--qk-norm"], "QK-norm (--qk-norm) applies only with --arch llama"),
        (["--init-from", "some-run", "--arch", "llama"], "--arch cannot be given with it"),
        (["--further", "2e"], "--further trains a run further: give it with --resume RUN"),
    ]:
        result = run_cli("train", TEXT, *TINY, "--arch", "gpt2", *flags, "--run-dir", runs)
        assert result.returncode != 0 and said in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not list_runs(tmp_path / "runs")


def test_into_a_pipe_training_says_its_progress_every_half_minute():
    import io

    from tui_gpt.commands.common import TextProgress
    from tui_gpt.commands.train import PROGRESS_EVERY, ConsolePrinter
    from tui_gpt.core.events import RunStarted, Step

    out = io.StringIO()
    printer = ConsolePrinter(out, TextProgress("training", io.StringIO()))  # not a terminal
    printer(RunStarted(run_id="r", total_steps=100, time=1000.0))
    for step in range(60):
        printer(Step(step=step, epoch=1, loss=3.0, tok_per_s=500.0, time=1000.0 + step))
    lines = [line for line in out.getvalue().splitlines() if "steps ·" in line]
    # Steps 30 and 60 seconds in: where it is, how fast, and how long it has left.
    assert PROGRESS_EVERY == 30 and len(lines) == 1, out.getvalue()
    assert "31/100 steps" in lines[0] and "500 tok/s" in lines[0] and "ETA 1:" in lines[0]


def test_runs_state_must_be_a_state_and_tokenizer_out_asks_before_replacing(tmp_path):
    bad = run_cli("runs", "--state", "bogus", "--run-dir", str(tmp_path))
    assert bad.returncode == 2 and "live" in bad.stderr and "finished" in bad.stderr
    out = tmp_path / "tok.json"
    out.write_text("my notes")
    args = ["tokenizer", "train", TEXT, "--vocab-size", "300", "--out", str(out)]
    refused = run_cli(*args)
    assert refused.returncode == 2 and "--force" in refused.stderr and out.read_text() == "my notes"
    assert run_cli(*args, "--force").returncode == 0 and out.read_text() != "my notes"


def test_the_runs_list_fits_the_terminal(tmp_path):
    from tui_gpt.core.runs import create_run, set_label

    long_name = "a-rather-long-dataset-name-for-a-list.txt"
    first = create_run(tmp_path, long_name, RunRecord(preset="micro"))
    # The next run a second later, as people start them (ids differ in their time).
    wait_until(lambda: time.strftime("%Y%m%d-%H%M%S") not in first.id, 5, "the next second")
    runs = [first, create_run(tmp_path, long_name, RunRecord(preset="micro"))]
    set_label(runs[0], "the baseline run")
    wide = run_cli("runs", "--run-dir", str(tmp_path), env={**os.environ, "COLUMNS": "200"})
    narrow = run_cli("runs", "--run-dir", str(tmp_path), env={**os.environ, "COLUMNS": "80"})
    assert wide.returncode == narrow.returncode == 0, narrow.stderr
    assert "CREATED" in wide.stdout and "CREATED" not in narrow.stdout
    table = narrow.stdout.split("\n\n")[0].splitlines()
    assert max(map(len, table)) <= 80 and "LABEL" in table[0] and "BITS/B" in table[0]
    # Each id as its shortest unique prefix, which the other verbs take.
    shown = [line.split()[0] for line in table[1:]]
    assert len(set(shown)) == 2 and all(len(s) < len(runs[0].id) for s in shown)
    for short in shown:
        assert run_cli("runs", "show", short, "--run-dir", str(tmp_path)).returncode == 0


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["runs"], ["runs", "--json"]])
def test_help_and_the_runs_list_never_load_torch(args, runs_dir):
    """PyTorch takes a second or more to import: `--help` and listing runs answer without
    it (its imports stay inside the functions that train, sample or measure)."""
    code = (
        "import sys\nfrom tui_gpt import cli\n"
        f"try:\n    cli.main({args!r})\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)  # fmt: skip
    assert result.stderr.endswith("no torch"), result.stderr[-500:]
