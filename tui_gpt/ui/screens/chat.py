"""The generator, chat style: prompts at the bottom, continuations streaming in, sampling
settings at the side, and the next token's likeliest candidates updated as settings change.

Two modes (f7): "continue" feeds the model the conversation so far with the new prompt,
cropped to its context window; "fresh" feeds the prompt alone. The line under the prompt
says which, and how many of the context's tokens the next turn uses."""

from __future__ import annotations

import threading

import torch
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Label, Static, Switch

from tui_gpt.core.config import SamplingConfig
from tui_gpt.core.errors import TuiGptError
from tui_gpt.core.generate import next_token_probs, seeded_generator, stream
from tui_gpt.core.runs import Run
from tui_gpt.core.sampling import LoadedModel
from tui_gpt.core.tokenizer import StreamDecoder
from tui_gpt.ui.host import host
from tui_gpt.ui.messages import ContextCounted, GenerationDone, ProbsReady, TokenStreamed
from tui_gpt.ui.widgets.header import Header
from tui_gpt.ui.widgets.pane import Pane
from tui_gpt.ui.widgets.settings_form import SettingsForm
from tui_gpt.ui.widgets.token_probs import TokenProbs


class Bubble(Static):
    """One turn of the conversation."""


class ChatScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel_or_back", "Back", tooltip="Cancel the generation, or back"),
        Binding("f2", "nudge('temperature', -0.1)", "Temp -", show=False),
        Binding("f3", "nudge('temperature', 0.1)", "Temp +", show=False),
        Binding("f4", "nudge('top_k', -5)", "Top-k -", show=False),
        Binding("f5", "nudge('top_k', 5)", "Top-k +", show=False),
        Binding("ctrl+y", "copy", "Copy", tooltip="Copy the last output"),
        Binding("f6", "switch_weights", "Best/latest", tooltip="Switch between best and latest weights"),
        Binding("f7", "toggle_mode", "Continue/fresh", tooltip="Continue the conversation or start each prompt fresh"),
    ]

    def __init__(
        self, loaded: LoadedModel, title: str, run: Run | None = None, weights: str = "best"
    ) -> None:
        super().__init__()
        self.loaded = loaded
        self.chat_title = title
        self.run, self.weights = run, weights  # which checkpoint of which run it samples
        self._cancel = threading.Event()
        self._bubble: Bubble | None = None
        self._last_output = ""
        self.generating = False
        self.completed = 0  # generations finished, cancelled or failed
        self.mode = "continue"  # or "fresh": whether the conversation so far is fed too
        self.transcript = ""  # the text of every turn so far: prompts and continuations
        self._pending_probs: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="conversation-pane"):
                yield VerticalScroll(id="conversation")
                yield Input(placeholder="Write a prompt and press Enter", id="prompt")
                yield Label("", id="context-info")
            with Pane(id="sampling"):
                yield Label("Sampling · F2-F5 nudge", classes="title")
                yield SettingsForm(SamplingConfig, id="sampling-form")
                yield TokenProbs(id="probs")
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_mount(self) -> None:
        self.title = "generator"
        self.sub_title = self.chat_title
        self.query_one("#conversation").mount(
            Bubble(
                Text(
                    f"Model: {self.chat_title}\n{self.loaded.model.num_params():,} parameters · "
                    f"{self.loaded.device} · {self.loaded.precision}. The model continues your text.",
                    style="dim",
                )
            )
        )
        self.query_one("#prompt", Input).focus()
        self.refresh_probs()

    # ------------------------------------------------------------------ context

    def model_text(self, prompt: str) -> str:
        """What the model is given for this prompt: in "continue" mode the conversation so
        far, then the prompt on a line of its own."""
        if self.mode == "fresh" or not self.transcript:
            return prompt
        sep = "" if self.transcript.endswith(("\n", " ")) else "\n"
        return self.transcript + sep + prompt

    def context_ids(self, prompt: str) -> tuple[list[int], int]:
        """(the ids the model reads, how many earlier ones did not fit its context)."""
        ids = self.loaded.tokenizer.encode(self.model_text(prompt))
        ctx = self.loaded.model.cfg.context_length
        return ids[-ctx:], max(0, len(ids) - ctx)

    def _show_context(self, used: int, cut: int) -> None:
        ctx = self.loaded.model.cfg.context_length
        note = f" · {cut:,} cut" if cut else ""
        self.query_one("#context-info", Label).update(
            f"{self.mode} (f7) · {used:,}/{ctx:,} tokens{note}"
        )

    def action_toggle_mode(self) -> None:
        self.mode = "fresh" if self.mode == "continue" else "continue"
        self.notify(
            "Each prompt now continues the conversation"
            if self.mode == "continue"
            else "Each prompt now starts fresh"
        )
        self.refresh_probs()

    # ------------------------------------------------------------------ settings

    def settings(self) -> SamplingConfig:
        return self.query_one(SettingsForm).read(SamplingConfig)

    def action_nudge(self, field: str, delta: float) -> None:
        box = self.query_one(f"#{field}", Input)
        try:
            value = max(0.0, float(box.value or 0) + delta)
        except ValueError:
            value = 0.0
        box.value = f"{value:.1f}" if field == "temperature" else str(int(value))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        # Typed or pasted text settles first: one model pass per pause, not per keystroke.
        if self._pending_probs is not None:
            self._pending_probs.stop()
        self._pending_probs = self.set_timer(0.15, self.refresh_probs)

    @on(Switch.Changed)
    def _switched(self) -> None:
        self.refresh_probs()

    # ------------------------------------------------------------------ next-token panel

    def refresh_probs(self) -> None:
        try:
            s = self.settings()
        except TuiGptError as exc:
            self.query_one(TokenProbs).update(Text(str(exc), style="red"))
            return
        self._probs(self.query_one("#prompt", Input).value, s)

    @work(thread=True, exclusive=True, group="probs")
    def _probs(self, prompt: str, s: SamplingConfig) -> None:
        tok, model = self.loaded.tokenizer, self.loaded.model
        ids, cut = self.context_ids(prompt)
        self.post_message(ContextCounted(len(ids), cut))
        ids = ids or [tok.eot_id]
        with torch.inference_mode():
            logits = model(torch.tensor([ids], device=self.loaded.device), last_only=True)[
                0, -1
            ].float()
        probs = next_token_probs(logits, s.temperature or 1.0, s.top_k or None, s.top_p)
        top = torch.topk(probs, 8)
        candidates = [
            (tok.decode([int(i)]), float(p))
            for p, i in zip(top.values, top.indices, strict=True)
            if p > 0
        ]
        mode = "greedy picks the first" if s.temperature == 0 else f"temperature {s.temperature:g}"
        caption = f"next token ({mode}, top-k {s.top_k or 'off'}, top-p {s.top_p or 'off'})"
        self.post_message(ProbsReady(candidates, caption))

    @on(ContextCounted)
    def _counted(self, message: ContextCounted) -> None:
        self._show_context(message.tokens, message.cut)

    @on(ProbsReady)
    def _show_probs(self, message: ProbsReady) -> None:
        self.query_one(TokenProbs).show(message.candidates, message.caption)

    # ------------------------------------------------------------------ generation

    @on(Input.Submitted, "#prompt")
    def _submit(self, event: Input.Submitted) -> None:
        prompt = event.value
        if self.generating or not prompt.strip():
            return
        try:
            s = self.settings()
        except TuiGptError as exc:
            self.notify(str(exc), severity="error")
            return
        conversation = self.query_one("#conversation")
        conversation.mount(Bubble(Text(prompt, style="bold"), classes="user"))
        ids, cut = self.context_ids(prompt)
        if cut:
            what = ("the prompt's first" if self.mode == "fresh" or not self.transcript
                    else "the conversation's earliest")  # fmt: skip
            conversation.mount(
                Bubble(
                    Text(
                        f"{what} {cut:,} tokens did not fit the {len(ids):,}-token context "
                        "and were cut",
                        style="yellow",
                    ),
                    classes="note",
                )
            )
        self._turn = self.model_text(prompt)
        self._bubble = Bubble(Text(prompt), classes="model")
        conversation.mount(self._bubble)
        self._text = Text(prompt, style="dim")
        self._last_output = ""
        self.generating = True
        self._cancel.clear()
        self.sub_title = f"{self.chat_title} · generating (Escape cancels)"
        self._generate(ids, s)

    @work(thread=True, exclusive=True, group="generate")
    def _generate(self, ids: list[int], s: SamplingConfig) -> None:
        tok, model = self.loaded.tokenizer, self.loaded.model
        try:
            decoder = StreamDecoder(tok)
            tokens = stream(
                model,
                torch.tensor([ids], device=self.loaded.device),
                s.max_new_tokens,
                temperature=s.temperature,
                top_k=s.top_k or None,
                top_p=s.top_p,
                eos_id=tok.eot_id if s.eos else None,
                generator=seeded_generator(s.seed, self.loaded.device),
                # A training in this process keeps oneDNN's fast GEMMs to itself.
                aten_gemv=False if host(self).training_active else None,
            )
            for t in tokens:
                if self._cancel.is_set():
                    self.post_message(GenerationDone(cancelled=True))
                    return
                piece = decoder.feed(int(t.item()))
                if piece:
                    self.post_message(TokenStreamed(piece))
            tail = decoder.flush()
            if tail:
                self.post_message(TokenStreamed(tail))
            self.post_message(GenerationDone(cancelled=False))
        except Exception as exc:  # shown in the conversation, never a crash
            self.post_message(GenerationDone(cancelled=False, error=str(exc)))

    @on(TokenStreamed)
    def _token(self, message: TokenStreamed) -> None:
        self._last_output += message.text
        self._text.append(message.text, style="")
        if self._bubble is not None:
            self._bubble.update(self._text)
            self.query_one("#conversation").scroll_end(animate=False)

    @on(GenerationDone)
    def _done(self, message: GenerationDone) -> None:
        self.generating = False
        self.completed += 1
        self.sub_title = self.chat_title
        if message.error:
            self._text.append(f"\n[error: {message.error}]", style="red")
        elif message.cancelled:
            self._text.append("  [cancelled]", style="yellow")
        if self._bubble is not None:
            self._bubble.update(self._text)
        if not message.error:  # what the model wrote joins the conversation
            self.transcript = self._turn + self._last_output
        self.query_one("#prompt", Input).value = ""

    def action_cancel_or_back(self) -> None:
        if self.generating:
            self._cancel.set()
        else:
            self.app.pop_screen()

    def use_weights(self, loaded: LoadedModel, title: str, weights: str) -> None:
        """Sample from other weights of the same run: the sampling settings, the mode and
        the conversation stay as they are."""
        self.loaded, self.chat_title, self.weights = loaded, title, weights
        self.sub_title = title
        self.query_one("#conversation").mount(
            Bubble(Text(f"Now sampling from {title}.", style="dim"))
        )
        self.refresh_probs()

    def action_switch_weights(self) -> None:
        if self.run is not None and not self.generating:
            host(self).open_chat(self.run, "latest" if self.weights == "best" else "best")

    def action_copy(self) -> None:
        if self._last_output:
            self.app.copy_to_clipboard(self._last_output)
            self.notify("Copied the last output (OSC 52: works over SSH in most terminals)")
