"""An error as one line for the user: every message the app, the CLI and the scripts show goes
through `one_line`, so a path with a line break in it is never cut in half."""
from __future__ import annotations

MAX_CHARS = 400


def one_line(exc: BaseException | str, limit: int = MAX_CHARS) -> str:
    """The message with its line breaks folded into spaces, at most `limit` characters (… beyond);
    the exception's type name when it says nothing."""
    text = " ".join(part.strip() for part in str(exc).strip().splitlines() if part.strip())
    if not text:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    return text if len(text) <= limit else text[:limit - 1] + "…"
