"""The exit codes of every ``anyi2v`` command: only the CLI chooses them (library code raises)."""

EXIT_OK = 0
"""The command did what was asked."""
EXIT_FAILED = 1
"""Something failed while working (a model that would not load, a daemon that failed the job)."""
EXIT_BAD_INPUT = 2
"""The input was refused: an invalid shot, a bad argument, a missing file."""
