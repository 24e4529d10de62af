"""One line of text asked for from the keyboard: Enter answers, Escape cancels."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


@dataclass
class TypedAhead:
    """Keys typed in one burst with the key that opens a dialog: they reach the screen
    underneath before the dialog is up, and it keeps them for the dialog."""

    text: str = ""
    submitted: bool = False  # Enter came too

    def take(self, event: events.Key) -> bool:
        """Keep the key if it belongs to the answer; True when kept."""
        if self.submitted:
            return False
        if event.key == "enter":
            self.submitted = True
        elif event.is_printable and event.character:
            self.text += event.character
        else:
            return False
        return True


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, question: str, value: str = "", enter: str = "save", typed: TypedAhead | None = None
    ) -> None:
        """`enter`: what Enter does, said under the field (save, train, export...); `typed`:
        what was typed for it before it opened (it replaces `value`; Enter in it answers)."""
        super().__init__()
        self.question, self.value, self.enter = question, value, enter
        self.typed = typed
        if typed is not None:  # its Enter, if it came, is read as the field appears
            self._early = typed.text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            # Selected once, in on_mount: a select on every focus could swallow what was
            # typed before the field had the focus.
            yield Input(self.value, id="answer", select_on_focus=False)
            yield Label(f"[b]Enter[/b] {self.enter}    [b]Esc[/b] cancel", id="keys")

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        if self._early:  # typed before the field existed: it replaces the suggestion
            box.value, self._typed = self._early, True
            box.cursor_position = len(box.value)
        elif not self._typed:
            box.select_all()  # typing replaces the suggested value
        if self._submit_early or (self.typed is not None and self.typed.submitted):
            self.call_after_refresh(self._answer, box.value)

    _typed = False
    _early = ""
    _submit_early = False

    def on_key(self, event: events.Key) -> None:
        """Keys typed in one burst as the dialog opens, before the field has the focus,
        go into it (in order) instead of being lost; the first replaces the suggestion."""
        box = next(iter(self.query(Input)), None)
        if box is None and event.key == "enter" and self._early:  # answered already
            self._submit_early = True
            event.stop()
            return
        if (
            (box is not None and self.focused is box)
            or not event.is_printable
            or not event.character
        ):
            return
        event.stop()
        event.prevent_default()
        if box is None:  # not composed yet: kept until it is (on_mount)
            self._early += event.character
            return
        if not self._typed:
            box.value = ""
        self._typed = True
        box.insert_text_at_cursor(event.character)
        box.focus()

    def answer_now(self) -> None:
        """An Enter typed for this dialog that reached the screen underneath: answer with
        what the field holds, or will hold once it is up."""
        box = next(iter(self.query(Input)), None)
        if box is None or not box.is_mounted:
            self._submit_early = True
        else:
            self._answer(box.value)

    def _answer(self, value: str) -> None:
        self.dismiss(value)  # not awaited: called from the screen's own message loop

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
