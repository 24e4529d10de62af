"""One module per `tui-gpt` verb; each has `add_parser(subparsers)` and sets `func`."""
