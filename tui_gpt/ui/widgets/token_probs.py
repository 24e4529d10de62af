"""The next token's likeliest candidates, as bars: temperature and top-k made visible."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


class TokenProbs(Static):
    DEFAULT_CSS = "TokenProbs { height: auto; }"

    candidates: list[tuple[str, float]] = []
    caption = ""

    def show(self, candidates: list[tuple[str, float]], caption: str) -> None:
        self.candidates, self.caption = candidates, caption
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", width=6)
        table.add_column(width=12)
        table.add_column()
        for text, p in candidates:
            bar = "█" * int(round(p * 20))
            table.add_row(f"{p:6.1%}", Text(repr(text)[1:-1][:12]), Text(bar, style="green"))
        grid = Table.grid()
        grid.add_row(Text(caption, style="bold"))
        grid.add_row(table)
        self.update(grid)
