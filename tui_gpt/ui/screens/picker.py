"""Pick a text file or a folder of them from the keyboard: arrows to move, Enter to open a
folder or pick a file, `f` to pick the highlighted folder, Backspace to go up to the parent
folder, `~` to go home, Escape to cancel."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Footer, Label

from tui_gpt.core.corpus import kind


class TextTree(DirectoryTree):
    """Folders and the files tui-gpt reads (core/corpus.py); hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or kind(p))]


class PathPicker(ModalScreen[str | None]):
    BINDINGS = [
        Binding("f", "pick_folder", "Pick folder"),
        Binding("backspace", "up", "Parent folder"),
        Binding("tilde", "home", "Home"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(self._where(), id="where", classes="title")
            yield TextTree(self.root, id="tree")
        yield Footer(show_command_palette=False)  # f1 Help says ctrl+p

    def on_mount(self) -> None:
        self.query_one(TextTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_pick_folder(self) -> None:
        node = self.query_one(TextTree).cursor_node
        if node is not None and node.data is not None and Path(node.data.path).is_dir():
            self.dismiss(str(node.data.path))

    def _where(self) -> str:
        return f"Choose a text file or a folder under {self.root}"

    def _go(self, root: Path) -> None:
        self.root = root
        self.query_one(TextTree).path = root
        self.query_one("#where", Label).update(self._where())

    def action_up(self) -> None:
        if self.root.parent != self.root:
            self._go(self.root.parent)

    def action_home(self) -> None:
        self._go(Path.home())

    def action_cancel(self) -> None:
        self.dismiss(None)
