"""The error every layer may raise for bad user input (stdlib only: the store and the shard reader use it too)."""


class UsageError(ValueError):
    """Bad input from the user (unknown name, bad plugin, ...): shown as one line, no traceback."""
