"""Errors every layer may raise (stdlib only: the store, the shard reader and the CLI use them without torch)."""


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only (its type when it has none): for one-line error reports."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class UsageError(ValueError):
    """Bad input from the user (unknown name, bad plugin, ...): shown as one line, no traceback."""


class Interrupted(BaseException):
    """A signal asked the run to stop (SIGTERM: CI cancellation, `timeout`, a scheduler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
