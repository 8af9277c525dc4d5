"""One line about an exception, for a message a person reads (status bar, stderr, JSON)."""
from __future__ import annotations


def one_line(exc: BaseException, with_type: bool = False) -> str:
    """The first non-empty line of the exception's text, or its type's name when it has
    none ('ValueError'). with_type prefixes the type: 'ValueError: bad value'."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0].strip()
    return f"{type(exc).__name__}: {first}" if with_type else first
