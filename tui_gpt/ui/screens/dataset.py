"""Dataset selection and training settings: pick a text, see what it holds, start training."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Input,
    Label,
    ListItem,
    ListView,
    ProgressBar,
    Select,
    Static,
    Switch,
)
from textual.worker import get_current_worker

from tui_gpt import paths
from tui_gpt.core import memory
from tui_gpt.core.bpe import (
    MAX_VOCAB,
    MIN_VOCAB,
    default_path,
    tokenizer_for,
    tokenizers_dir,
    train_tokenizer,
)
from tui_gpt.core.config import (
    AUTO,
    RECIPES,
    TOKENIZERS,
    ModelChoice,
    TrainConfig,
    TrainSpec,
    count_params,
    default_recipe,
    preset_description,
)
from tui_gpt.core.data import PreparedData, inspect_source, plan, prepare
from tui_gpt.core.errors import Cancelled, TuiGptError
from tui_gpt.core.estimate import fastest, make_plan
from tui_gpt.core.events import count
from tui_gpt.core.fsutil import atomic_write_text
from tui_gpt.core.jobs import runtime_for
from tui_gpt.core.reading import read_json
from tui_gpt.core.sizing import size, window
from tui_gpt.ui.host import host
from tui_gpt.ui.messages import (
    PlanReady,
    PreviewFailed,
    PreviewReady,
    Say,
    TokenizerProgress,
    TokenizerTrained,
)
from tui_gpt.ui.screens.picker import PathPicker
from tui_gpt.ui.screens.prompt import PromptScreen
from tui_gpt.ui.widgets.header import Header
from tui_gpt.ui.widgets.pane import Pane
from tui_gpt.ui.widgets.settings_form import SettingsForm


def recent_file() -> Path:
    return paths.data_dir() / "recent.json"


def load_recent() -> list[str]:
    """The datasets opened last, newest first; a missing or damaged file is no history."""
    try:
        items = read_json(recent_file())
    except (FileNotFoundError, TuiGptError):
        return []
    if not isinstance(items, list):
        return []
    return [p for p in items if isinstance(p, str) and Path(p).exists()][:8]


def remember(path: str) -> None:
    items = [path] + [p for p in load_recent() if p != path]
    _keep(recent_file(), json.dumps(items[:8]))


def _keep(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):  # a read-only home: nothing remembered, nothing lost
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)


def settings_file() -> Path:
    """The settings of the last training started from this screen, for the next session."""
    return paths.data_dir() / "last-settings.json"


def remember_settings(spec: TrainSpec) -> None:
    _keep(settings_file(), json.dumps(spec.to_dict(), indent=1))


def last_settings() -> TrainSpec | None:
    if not settings_file().is_file():
        return None
    try:
        return TrainSpec.load(settings_file())
    except TuiGptError:
        return None  # damaged or from another version: start from the defaults


def dataset_choices() -> list[tuple[str, str]]:
    """(label, path): the user's recent datasets first (newest first), then the whole
    sample folder and each bundled sample."""
    bundled: list[tuple[str, str]] = []
    samples = paths.samples_dir()
    if samples.is_dir():
        bundled.append(("all bundled samples (folder)", str(samples)))
        bundled += [(f"sample: {p.stem}", str(p)) for p in sorted(samples.glob("*.txt"))]
    known = {path for _, path in bundled}
    recent = [(f"recent: {Path(p).name}", p) for p in load_recent() if p not in known]
    return recent + bundled


class DatasetList(ListView):
    """The dataset list; Home and End move the highlight (a plain list only scrolls)."""

    BINDINGS = [
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    def action_first(self) -> None:
        if len(self):
            self.index = 0
            self.call_after_refresh(self.keep_in_view)

    def action_last(self) -> None:
        if len(self):
            self.index = len(self) - 1
            self.call_after_refresh(self.keep_in_view)

    def keep_in_view(self) -> None:
        """Scroll the highlighted entry into view, as the list is laid out now."""
        if self.highlighted_child is not None:
            self.scroll_to_widget(self.highlighted_child, animate=False, immediate=True)

    def on_resize(self) -> None:
        # The list's height settles only after the preview beside it has its text (and
        # changes with the form's rows): the chosen entry stays in view through it.
        self.call_after_refresh(self.keep_in_view)


def trained_tokenizers() -> list[tuple[str, str]]:
    """(label, path) of the tokenizers trained so far (the form offers them)."""
    # The name first: in a narrow form only the start of the label shows.
    return [(f"{p.stem} (trained)", str(p)) for p in sorted(tokenizers_dir().glob("*.json"))]


class DatasetScreen(Screen):
    BINDINGS = [
        Binding("ctrl+t", "start", "Train", tooltip="Start training", priority=True),
        Binding("ctrl+b", "start_background", "Background", tooltip="Start training in the background", priority=True),
        Binding("ctrl+o", "pick", "Open", tooltip="Open a file or folder"),
        Binding("ctrl+n", "train_tokenizer", "Tokenizer", tooltip="Train a tokenizer"),
        Binding("ctrl+r", "app.show_runs", "Runs"),
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.dataset: str | None = None
        self._choices = dataset_choices()
        self._problem: str | None = "choose a dataset"
        self._request = 0  # the preview shown answers the newest request only
        self._plan_request = 0  # and the plan shown, the newest of the settings on screen
        # (vocabulary, tokenized text) of the preview shown: what a plan needs besides the
        # settings, so a setting that changes only the plan re-plans at once.
        self._plan_basis: tuple[int, PreparedData] | None = None
        self._list_index: int | None = None  # the list entry last chosen
        self._form_error = False  # the preview shows a settings field's problem
        self._recipe = default_recipe()  # the recipe list's choice

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="datasets"):
                yield Label("Datasets", classes="title")
                yield DatasetList(
                    *[ListItem(Label(label)) for label, _ in self._choices], id="dataset-list"
                )
                # Typing on the list starts a path here: selecting all on focus would let the
                # second character replace the first.
                yield Input(
                    placeholder="path + Enter (ctrl+o: browse)", id="path", select_on_focus=False
                )
                yield Static("", id="preview")
                yield ProgressBar(total=100, show_eta=False, id="tokenizer-progress")
            # The recipe and the plan stay in view above the fields, which scroll.
            with Vertical(id="settings"):
                yield Label("Settings", classes="title")
                yield Select(
                    [(f"recipe: {name}", name) for name in RECIPES],
                    value=default_recipe(), allow_blank=False, id="recipe",
                    tooltip="fills the settings below with a recipe's: "
                    + "; ".join(f"{name}: {r.description}" for name, r in RECIPES.items()),
                )  # fmt: skip
                yield Static("", id="preset-info")
                yield Static("", id="plan")
                with Pane(id="fields"):
                    yield SettingsForm(
                        ModelChoice,
                        TrainConfig,
                        more_choices={"tokenizer": trained_tokenizers},
                        id="form",
                    )
                    yield Button("Start training  (ctrl+t)", id="start", variant="primary")
                    yield Button("In background  (ctrl+b)", id="start-background")
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_mount(self) -> None:
        self.title = "tui-gpt"
        self.sub_title = "choose a dataset"
        last = last_settings()
        if last is not None:
            self._show_settings(last)
        else:  # a first start: the default recipe's settings
            self._show_recipe(default_recipe())
        self._update_preset_info()
        if self._choices:
            # The dataset of the last training, else the first sample.
            paths_ = [p for _, p in self._choices]
            index = paths_.index(last.data) if last is not None and last.data in paths_ else 0
            listing = self.query_one(ListView)
            listing.index = self._list_index = index
            self.choose(self._choices[index][1])
            # The entry chosen starts in view, however far down the list it is.
            self.call_after_refresh(self._show_chosen, index)
        self.query_one(ListView).focus()  # arrows pick a dataset; typing starts a path

    @property
    def recipe(self) -> str:
        """The recipe chosen in the list (what a new run's settings started from)."""
        return self._recipe

    def _show_chosen(self, index: int) -> None:
        listing = self.query_one(ListView)
        if listing.index == index and listing.highlighted_child is not None:  # not moved since
            listing.scroll_to_widget(listing.highlighted_child, animate=False)

    def on_key(self, event: events.Key) -> None:
        """Typing on the dataset list starts a path in the path field, so nothing typed at
        once is lost (`?` stays help)."""
        if (
            isinstance(self.focused, ListView)
            and event.is_printable
            and event.character
            and event.character not in " ?"
        ):
            box = self.query_one("#path", Input)
            box.focus()
            box.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def remember_form(self) -> None:
        """The dataset and settings on screen, for the next session (called on quitting);
        a field in error keeps what was remembered before."""
        if self.dataset is None:
            return
        with contextlib.suppress(TuiGptError, NoMatches):
            model, cfg = self.read_settings()
            remember_settings(TrainSpec(self.dataset, model, cfg))

    def _show_settings(self, spec: TrainSpec) -> None:
        """Fill the form from a spec: the settings a user left it with last time."""
        form = self.query_one("#form", SettingsForm)
        model = spec.model
        if model.tokenizer not in TOKENIZERS:  # a trained tokenizer's file, if still there
            if Path(model.tokenizer).is_file():
                form.choose("tokenizer", model.tokenizer)
            else:
                model = replace(model, tokenizer=ModelChoice().tokenizer)
        form.show(model)
        form.show(spec.train)

    def _show_recipe(self, name: str) -> None:
        model, train = RECIPES[name].settings()
        self._show_settings(TrainSpec(self.dataset or "", model, train))

    @on(Select.Changed, "#recipe")
    def _recipe_chosen(self, event: Select.Changed) -> None:
        event.stop()
        # The list reports its first value too: only a choice the user makes fills the form
        # (which may hold the settings remembered from last time).
        if isinstance(event.value, str) and event.value != self._recipe:
            self._recipe = event.value
            self._show_recipe(event.value)
            self._update_preset_info()
            self.refresh_preview()

    # ------------------------------------------------------------------ dataset choice

    @on(ListView.Selected)
    @on(ListView.Highlighted)
    def _list_choice(self, event: ListView.Selected | ListView.Highlighted) -> None:
        # A highlight counts when it moves: the one the list reports (late) for the entry
        # chosen at start-up must not undo a path typed meanwhile.
        index = event.list_view.index
        if isinstance(event, ListView.Highlighted) and index == self._list_index:
            return
        self._list_index = index
        if index is not None and 0 <= index < len(self._choices):
            self.choose(self._choices[index][1])

    @on(Input.Submitted, "#path")
    def _typed_path(self, event: Input.Submitted) -> None:
        if event.value.strip():  # Enter checks again, even the same path (it may have changed)
            self.dataset = str(Path(event.value.strip()).expanduser())
            self.refresh_preview()

    def action_pick(self) -> None:
        def picked(path: str | None) -> None:
            if path:
                self.query_one("#path", Input).value = path
                self.choose(path)

        self.app.push_screen(PathPicker(Path.cwd()), picked)

    def choose(self, path: str) -> None:
        if path != self.dataset:
            self.dataset = path
            self.refresh_preview()

    # ------------------------------------------------------------------ settings

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        self._update_preset_info()
        self.refresh_preview()

    @on(Switch.Changed, "#form Switch")
    def _switch_changed(self, event: Switch.Changed) -> None:
        self._update_preset_info()
        self._replan()

    @on(Input.Changed, "#form Input")
    def _input_changed(self, event: Input.Changed) -> None:
        self._update_preset_info()
        try:
            self.read_settings()
        except TuiGptError as exc:  # said at once, without scanning the data again
            self._request += 1
            self._form_error = True
            self._show_problem(str(exc), self._request)
            return
        # The split depends on these; any field checks again while the form is in error.
        if self._form_error or event.input.id in (
            "context_length", "stride", "batch_size", "train_ratio", "grad_accum"
        ):
            self.refresh_preview()
        else:  # epochs, minutes, max steps, evaluation...: the same data, another plan
            self._replan()

    def _replan(self) -> None:
        """The plan line again for the settings on screen, from the preview's facts."""
        basis = self._plan_basis
        if basis is None or self._form_error or not self.is_mounted:
            return  # a preview is on its way, and a plan with it
        try:
            model, cfg = self.read_settings()
        except TuiGptError:
            return
        self._plan_request += 1
        self.query_one("#plan", Static).update("plan: ...")
        self._plan_worker(model, cfg, *basis, self._plan_request)

    @work(thread=True, exclusive=True, group="plan")
    def _plan_worker(
        self, model: ModelChoice, cfg: TrainConfig, vocab: int, data: PreparedData, request: int
    ) -> None:
        self._estimate(model, cfg, vocab, data, request)

    def _update_preset_info(self, vocab: int | None = None) -> None:
        """Parameters of the chosen preset with the chosen tokenizer's vocabulary (a trained
        one's is read from its file; the preview passes the loaded tokenizer's), and the
        memory a training with the form's settings needs (core/memory.py) beside what is
        free."""
        forms, lines = self.query("#form").results(SettingsForm), self.query("#preset-info")
        form = next(forms, None)
        if form is None or not lines:  # a late answer while the screen is going away
            return
        if vocab is None:
            vocab = {"byte": 257, "gpt2": 50257}.get(str(form.query_one("#tokenizer", Select).value))
        if vocab is None:
            return  # a trained tokenizer: the preview says, once it has read the file
        if form.read(ModelChoice).preset == AUTO:
            lines.first(Static).update(f"auto: {preset_description(AUTO)} (the plan)")
            return
        try:
            model, cfg = self.read_settings()
            runtime = runtime_for(cfg)
        except TuiGptError:
            return  # the field in error says so; the line keeps its last good state
        mcfg = model.config(vocab)
        need = memory.estimate(mcfg, memory.shape(cfg, mcfg.context_length, runtime, mcfg)).total
        room = memory.available(runtime.device.type)
        free = f" of {memory.size(room)} free" if room is not None else ""
        fits = "" if room is None or need <= room else "[red]"
        lines.first(Static).update(
            f"{model.preset}: {preset_description(model.preset)}. "
            f"{count_params(mcfg) / 1e6:,.1f}M parameters ({vocab:,}-token vocabulary), "
            f"context {mcfg.context_length}, {fits}~{memory.size(need)} to train{free}"
            + ("[/red]" if fits else "")
        )

    def read_settings(self) -> tuple[ModelChoice, TrainConfig]:
        """The form's settings; raises TuiGptError naming the first bad field, or the
        model's shape when fields that are each fine do not fit together (KV heads)."""
        form = self.query_one("#form", SettingsForm)
        model = form.read(ModelChoice)
        if model.preset != AUTO:  # (auto tries only the shapes that fit together)
            model.config(257)  # the vocabulary does not change what fits together
        cfg = form.read(TrainConfig)
        cfg.validate()  # settings that are each fine but not together (epochs to size)
        return model, cfg

    # ------------------------------------------------------------------ preview

    def refresh_preview(self) -> None:
        if not self.is_mounted or self.dataset is None:
            return
        # The newest request wins: an older scan still running is given up, and whatever it
        # finds is not shown. Until this one is done, nothing starts on an unchecked path.
        self._request += 1
        self._plan_request += 1
        self._plan_basis = None
        self._problem = f"still reading {Path(self.dataset).name}"
        self.query_one("#preview", Static).update(f"reading {Path(self.dataset).name} ...")
        # The plan on screen is always the plan of the settings on screen: an older one goes.
        self.query_one("#plan", Static).update("plan: ...")
        self.sub_title = Path(self.dataset).name  # the title names what is being looked at
        try:
            model, cfg = self.read_settings()
        except TuiGptError as exc:
            self._form_error = True
            self._show_problem(str(exc), self._request)
            return
        self._form_error = False
        self._preview(self.dataset, model, cfg, self._request, self._plan_request)

    @work(thread=True, exclusive=True, group="preview")
    def _preview(
        self, path: str, model: ModelChoice, cfg: TrainConfig, request: int, plan_request: int
    ) -> None:
        worker = get_current_worker()
        try:
            source = inspect_source(path, cfg.text_field, stop=lambda: worker.is_cancelled)
            tokenizer = tokenizer_for(model.tokenizer, source, cfg.train_ratio)
            data = prepare(source, tokenizer, cfg.train_ratio)
            seq = window(model, tokenizer.vocab_size)
            facts = plan(data, seq, cfg.batch_size, cfg.stride, cfg.grad_accum)
        except Cancelled:
            return
        except TuiGptError as exc:
            self.post_message(PreviewFailed(str(exc), request))
            return
        problem = facts.problems[0] if facts.problems else None
        lines = [
            f"[b]{escape(Path(path).name)}[/b]  {count(len(source.files), 'file')}, "
            f"{memory.size(source.bytes)}",
            f"characters {facts.chars:,}   tokens {facts.tokens:,} ({tokenizer.name})",
            f"train {facts.train_tokens:,} tokens -> {facts.train_batches:,} batches/epoch",
            f"validation {facts.val_tokens:,} tokens -> {facts.val_batches:,} "
            + ("batch" if facts.val_batches == 1 else "batches"),
            f"windows of {seq}, stride {cfg.stride or seq}, batch {cfg.batch_size}",
        ]
        if problem:
            lines.append(f"[red]problem: {escape(problem)}[/red]")
        if len(source.files) > 1:  # what the folder holds, biggest first
            sizes = sorted(((f.stat().st_size, f.name) for f in source.files), reverse=True)
            shown = ", ".join(f"{escape(n)} {memory.size(b)}" for b, n in sizes[:3])
            more = f" and {len(sizes) - 3} more" if len(sizes) > 3 else ""
            lines.append(f"[dim]{shown}{more}[/dim]")
        for f, why in source.skipped[:5]:
            lines.append(f"[yellow]skipped {escape(f.name)}: {escape(why)}[/yellow]")
        if len(source.skipped) > 5:
            lines.append(f"[yellow]... and {len(source.skipped) - 5} more skipped[/yellow]")
        basis = None if problem else (tokenizer.vocab_size, data)
        self.post_message(
            PreviewReady("\n".join(lines), problem, tokenizer.vocab_size, basis, request)
        )
        if basis is not None:
            self._estimate(model, cfg, *basis, plan_request)

    @on(PreviewReady)
    def _preview_ready(self, message: PreviewReady) -> None:
        self._show_preview(message.text, message.problem, message.request)
        self._show_vocab(message.vocab, message.request)
        if message.basis is not None:
            self._keep_basis(message.basis, message.request)

    @on(PreviewFailed)
    def _preview_failed(self, message: PreviewFailed) -> None:
        self._show_problem(message.problem, message.request)

    def _show_vocab(self, vocab: int, request: int) -> None:
        # An older preview's tokenizer (the one before a change) must not overwrite the
        # preset line of the newer one.
        if request == self._request:
            self._update_preset_info(vocab)

    def _keep_basis(self, basis: tuple[int, PreparedData], request: int) -> None:
        if request == self._request:
            self._plan_basis = basis

    def _estimate(
        self, model: ModelChoice, cfg: TrainConfig, vocab: int, data: PreparedData, request: int
    ) -> None:
        """The plan of the settings on screen (a measured step; a second or two the first
        time for a small model, then remembered), in the preview's worker; under `--preset
        auto` the shape the budget buys first (a run sizes again when it starts: its
        budget counts from then)."""
        try:
            runtime = runtime_for(cfg)
            # Never measured beside a training of this window: it would slow it down, and
            # the measurement's own random numbers must not touch the trainer's.
            measure = not host(self).training_active
            seconds = None if cfg.minutes is None else cfg.minutes * 60
            sizing = size(model, cfg, vocab, data, runtime, seconds, measure)
            cfg = sizing.train
            seq = window(sizing.choice, vocab)
            batches = plan(data, seq, cfg.batch_size, cfg.stride, cfg.grad_accum).train_batches
            mcfg = sizing.choice.config(vocab, seq)
            runtime, step_s, note = fastest(mcfg, cfg, seq, runtime, measure)
            if step_s is None:
                line = "plan: measured once the training in this window ends"
            else:
                plan_ = make_plan(cfg, step_s, batches, cfg.tokens_per_step(seq),
                                  cfg.step_bound(batches), note=note)  # fmt: skip
                line = "\n".join(filter(None, (sizing.line(), plan_.line())))
        except (TuiGptError, RuntimeError) as exc:
            line = f"plan: unknown ({exc})"
        self.post_message(PlanReady(line, request))

    @on(PlanReady)
    def _show_plan(self, message: PlanReady) -> None:
        if message.request == self._plan_request:
            with contextlib.suppress(NoMatches):
                self.query_one("#plan", Static).update(escape(message.line))

    def _show_preview(self, text: str, problem: str | None, request: int) -> None:
        if request != self._request:
            return  # an answer to an older question
        self._problem = problem
        self.query_one("#preview", Static).update(text)
        self.sub_title = Path(self.dataset or "").name

    def _show_problem(self, message: str, request: int) -> None:
        if request != self._request:
            return
        self._problem = message
        self.query_one("#preview", Static).update(f"[red]problem: {message}[/red]")
        if self.dataset is not None:
            self.sub_title = f"{Path(self.dataset).name} · problem"

    # ------------------------------------------------------------------ tokenizer

    def action_train_tokenizer(self) -> None:
        """Fit a BPE to the chosen dataset, with a vocabulary size asked for first."""
        dataset = self.dataset
        if dataset is None:
            self.notify("Choose a dataset first", severity="warning")
            return

        def answer(text: str | None) -> None:
            if text is None:
                return
            try:
                size = int(text)
                if not MIN_VOCAB <= size <= MAX_VOCAB:
                    raise ValueError
            except ValueError:
                self.notify(
                    f"A vocabulary size is a whole number from {MIN_VOCAB} to {MAX_VOCAB:,}",
                    severity="error",
                )
                return
            self._train_tokenizer(
                dataset, size, self.query_one("#form", SettingsForm).read(TrainConfig).text_field
            )

        name = Path(dataset).name
        self.app.push_screen(
            PromptScreen(f"Vocabulary size of a tokenizer trained on {name}", "4096", "train"),
            answer,
        )

    @work(thread=True, exclusive=True, group="tokenizer")
    def _train_tokenizer(self, dataset: str, size: int, text_field: str) -> None:
        self.post_message(TokenizerProgress(0.0))
        shown = [0.0]

        def progress(done: int, total: int) -> None:
            if done == total or time.monotonic() - shown[0] > 0.1:
                shown[0] = time.monotonic()
                self.post_message(TokenizerProgress(100 * done / max(1, total)))

        try:
            source = inspect_source(dataset, text_field)
            tok = train_tokenizer(source, size, default_path(source.name, size), progress)
        except TuiGptError as exc:
            self.app.post_message(Say(str(exc), "No tokenizer", "error"))
            return
        finally:
            self.post_message(TokenizerProgress(None))
        self.post_message(TokenizerTrained(tok))

    @on(TokenizerProgress)
    def _tokenizer_progress(self, message: TokenizerProgress) -> None:
        """The tokenizer bar: shown at a percent, or hidden (None) when fitting ends."""
        bar = self.query_one("#tokenizer-progress", ProgressBar)
        bar.set_class(message.percent is not None, "busy")
        if message.percent is not None:
            bar.update(progress=message.percent)

    @on(TokenizerTrained)
    def _tokenizer_trained(self, message: TokenizerTrained) -> None:
        tok = message.tokenizer
        self.query_one("#form", SettingsForm).choose("tokenizer", str(tok.path))
        self.notify(f"{tok.vocab_size:,} tokens, saved as {tok.path}", title="Tokenizer trained")

    # ------------------------------------------------------------------ start

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#start-background")
    def _start_background_pressed(self) -> None:
        self.action_start_background()

    def action_start_background(self) -> None:
        """Train in a process of its own that outlives this app and the terminal (a dropped
        SSH session); the dashboard follows it through the run folder."""
        self.action_start(background=True)

    def action_start(self, background: bool = False) -> None:
        if self.dataset is None:
            self.notify("Choose a dataset first", severity="warning")
            return
        try:
            model, cfg = self.read_settings()
        except TuiGptError as exc:
            self.notify(str(exc), severity="error")
            return
        if self._problem:
            self.notify(self._problem, severity="error")
            return
        remember(self.dataset)
        spec = TrainSpec(self.dataset, model, cfg)
        remember_settings(spec)
        if background:
            host(self).start_background(spec)
        else:
            host(self).start_training(spec)
