"""The one error type a user should see: a single line, exit code 2, no traceback."""


class BenchError(Exception):
    """Bad input or an unusable environment, explained in one line that names the fix.

    The CLI prints ``error: <message>`` and exits with code 2 (a traceback only with ``--debug``).
    Raise it for anything the user can correct; let genuine bugs raise their own exceptions.
    """


def unknown_name(kind: str, name: object, known: list[str], extra: str = "") -> BenchError:
    """The error for a name not in a registry: suggests a close match and lists the known names."""
    import difflib

    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return BenchError(f"unknown {kind} {name!r}{hint}; known {kind}s: {', '.join(sorted(known))}{extra}")
