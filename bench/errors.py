"""The one error type a user should see: a single line, exit code 2, no traceback."""


class BenchError(Exception):
    """Bad input or an unusable environment, explained in one line that names the fix.

    The CLI prints ``error: <message>`` and exits with code 2 (a traceback only with ``--debug``).
    Raise it for anything the user can correct; let genuine bugs raise their own exceptions.
    """
