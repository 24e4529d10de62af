"""The next token's likeliest candidates, as bars: temperature and top-k made visible."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


def shown(token: str) -> str:
    """A token as it can be seen: escapes for newlines and tabs (as Python writes them), and
    spaces as "␣" (a blank row would say nothing)."""
    return repr(token)[1:-1].replace(" ", "␣")


class TokenProbs(Static):
    DEFAULT_CSS = "TokenProbs { height: auto; }"

    candidates: list[tuple[str, float]] = []
    caption = ""

    def show(self, candidates: list[tuple[str, float]], caption: str) -> None:
        self.candidates, self.caption = candidates, caption
        # Columns: the share (6), the token (up to 12, less in a narrow pane), the bar in
        # what is left: the likeliest candidate's fills it, so no bar is ever cut and the
        # others are drawn against it (the share says the absolute value).
        width = self.size.width or 40
        token_width = max(4, min(12, width - 6 - 2 - 8))
        room = max(4, width - 6 - token_width - 2)
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", width=6)
        table.add_column(width=token_width, no_wrap=True)
        table.add_column(width=room, no_wrap=True)
        top = max((p for _, p in candidates), default=0.0) or 1.0
        for text, p in candidates:
            bar = "█" * max(1 if p > 0 else 0, round(p / top * room))
            table.add_row(f"{p:6.1%}", Text(shown(text)[:token_width]), Text(bar, style="green"))
        grid = Table.grid()
        grid.add_row(Text(caption, style="bold"))
        grid.add_row(table)
        self.update(grid)

    def on_resize(self) -> None:
        if self.candidates:  # the bars follow the pane's width
            self.show(self.candidates, self.caption)
