"""`python -m tui_gpt` runs the same entry point as the `tui-gpt` script."""

import sys

from tui_gpt.cli import main

if __name__ == "__main__":
    sys.exit(main())
