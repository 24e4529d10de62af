"""One line of text asked for from the keyboard: Enter answers, Escape cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", enter: str = "save") -> None:
        """`enter`: what Enter does, said under the field (save, train, export...)."""
        super().__init__()
        self.question, self.value, self.enter = question, value, enter

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            yield Input(self.value, id="answer")
            yield Label(f"[b]Enter[/b] {self.enter}    [b]Esc[/b] cancel", id="keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
