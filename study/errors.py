"""The one exception the command line turns into exit code 2 with a one-line message."""


class BadInput(Exception):
    """Bad user input: the message names the problem and the fix."""
