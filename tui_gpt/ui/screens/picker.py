"""Pick a text file or a folder of them from the keyboard: arrows to move, Enter to open a
folder or pick a file, `f` to pick the highlighted folder, Escape to cancel."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Footer, Label


class TextTree(DirectoryTree):
    """Folders and .txt files only; hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".txt")
        ]


class PathPicker(ModalScreen[str | None]):
    BINDINGS = [
        Binding("f", "pick_folder", "Pick folder"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(f"Choose a .txt file or a folder under {self.root}", classes="title")
            yield TextTree(self.root, id="tree")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path))

    def action_pick_folder(self) -> None:
        node = self.query_one(TextTree).cursor_node
        if node is not None and node.data is not None and Path(node.data.path).is_dir():
            self.dismiss(str(node.data.path))

    def action_cancel(self) -> None:
        self.dismiss(None)
