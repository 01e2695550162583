"""The exceptions and the warning the CLI turns into one line and an exit status."""


class RnnscopeError(Exception):
    """Bad input: the message names the problem and the fix; the CLI prints one line, exit 2."""


class WriteFailed(Exception):
    """A file could not be written (disk full, read-only or deleted directory): the message names
    the path and the OS error; every file written before is intact. The CLI exits 1."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the work; the CLI prints the message and exits 128 + signum.
    A KeyboardInterrupt, so that nothing that catches Exception swallows it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class RnnscopeWarning(UserWarning):
    """Something unreadable was skipped (a damaged record line); the CLI prints one line."""
