"""Errors every layer may raise (stdlib only: the store, the shard reader and the CLI use them without torch)."""


class UsageError(ValueError):
    """Bad input from the user (unknown name, bad plugin, ...): shown as one line, no traceback."""


class Interrupted(BaseException):
    """A signal asked the run to stop (SIGTERM: CI cancellation, `timeout`, a scheduler)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
