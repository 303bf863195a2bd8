"""Errors that mean "the user asked for something that cannot be done as asked".

The CLI prints them as one line and exits with status 2; other errors exit with 1.
"""


class UsageError(ValueError):
    """Bad input from the user: arguments, config, names, files."""
