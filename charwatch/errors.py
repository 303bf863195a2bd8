"""Errors that mean "the user asked for something that cannot be done as asked", and the
``charwatch`` command's exit statuses.

The CLI prints a :class:`UsageError` as one line and exits with :data:`EXIT_USAGE`; other
errors exit with :data:`EXIT_FAILED`.
"""

EXIT_OK = 0
EXIT_FAILED = 1  # a job failed
EXIT_USAGE = 2  # bad arguments, config, names or files
EXIT_CRAWL_PROBLEM = 3  # a crawled listing ended blocked, behind a login, gone or changed
EXIT_PLATFORM_PAUSED = 4  # a platform is paused after a platform-wide block
EXIT_INTERRUPTED = 130  # Ctrl-C


class UsageError(ValueError):
    """Bad input from the user: arguments, config, names, files."""
