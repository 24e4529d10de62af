"""tui-gpt: pretrain a GPT language model on your own text, in a terminal."""

__version__ = "0.1.0"
