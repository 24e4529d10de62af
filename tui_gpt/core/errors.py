"""The one exception type for problems a user can fix (bad file, bad flag, no vocabulary).

The CLI prints its message as a single line and exits with status 2; the app shows it inline.
Anything else that escapes is a bug.
"""


class TuiGptError(Exception):
    """A problem with the user's input or environment, with a message meant for them."""


class Cancelled(TuiGptError):
    """The caller no longer wants the answer (a newer request replaced it)."""


class DamagedFile(TuiGptError):
    """A file that exists but cannot be what tui-gpt wrote (or what a user would hand it):
    a folder, a FIFO, a device, a link inside a run folder, too large, too deeply nested,
    not JSON. One line naming it."""
