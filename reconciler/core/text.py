"""Text that is safe to put on one line: in a commit message, a log or a terminal.

Pure, and imports nothing of the project, so the CLI can use it without loading the models.
"""

from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with every control character (newlines, CR, escapes) and every Unicode line
    or paragraph separator written as a visible escape: a value copied into a commit
    message can never add a line (so never a trailer of its own), and a name read from the
    repo can never drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
