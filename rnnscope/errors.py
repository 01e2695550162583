"""The one exception type for problems a user can cause and fix."""


class RnnscopeError(Exception):
    """Bad input: the message names the problem and the fix. The CLI prints it as one line, exit 2."""
