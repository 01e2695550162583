"""The one exception type for problems a user can cause and fix."""


class RnnscopeError(Exception):
    """Bad input: the message names the problem and the fix; the CLI prints one line, exit 2."""
