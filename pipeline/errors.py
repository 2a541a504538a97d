"""The user-facing error types: one for the run, one for a single image."""

EXIT_INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C or SIGTERM


class ModomoError(Exception):
    """A failure the user can act on: printed as one line, no traceback.

    `exit_code` follows the CLI's convention: 1 fatal, 2 usage.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(ModomoError):
    """Bad options or arguments (exit 2)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


class ImageError(Exception):
    """One input cannot be processed; the batch goes on. The message is the reason."""


def one_line(exc: Exception) -> str:
    """An exception's first line, or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
