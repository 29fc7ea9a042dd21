"""The ``.reconcilerignore`` file: which files under ``--source`` are not resources.

Pure: the caller reads the file and walks the tree; this module only matches paths.
Gitignore-like: one pattern a line, ``#`` comments, ``!`` re-includes, a trailing ``/``
matches directories only, a pattern with a ``/`` is anchored at the source root (a
leading ``/`` too), otherwise it matches a name at any depth; ``*`` and ``?`` stay within
one path part, ``**`` crosses parts. The last matching pattern wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILE_NAME = ".reconcilerignore"
#: never resources, often next to them; a ``!name`` line in the file reads them again
DEFAULT_PATTERNS = ("kustomization.yaml", "kustomization.yml", "renovate.json")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    directory_only: bool


@dataclass(frozen=True)
class IgnoreRules:
    """Compiled patterns; ``ignored(path)`` answers for a path relative to the root."""

    rules: tuple[_Rule, ...]

    def ignored(self, relative: str, *, is_dir: bool = False) -> bool:
        """Whether ``relative`` (POSIX, relative to the source root) is to be skipped."""
        verdict = False
        for rule in self.rules:
            if rule.directory_only and not is_dir:
                continue
            if rule.regex.fullmatch(relative):
                verdict = not rule.negated
        return verdict


def parse_rules(text: str = "", *, defaults: tuple[str, ...] = DEFAULT_PATTERNS) -> IgnoreRules:
    """The rules of an ignore file's ``text``, after the built-in ``defaults``."""
    rules = [_compile(p) for p in defaults]
    for line in text.splitlines():
        rule = _compile(line)
        if rule is not None:
            rules.append(rule)
    return IgnoreRules(tuple(r for r in rules if r is not None))


def _compile(line: str) -> _Rule | None:
    pattern = line.rstrip()
    if not pattern or pattern.startswith("#"):
        return None
    negated = pattern.startswith("!")
    pattern = pattern.removeprefix("!").removeprefix("\\")
    directory_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    if not pattern:
        return None
    body = _translate(pattern)
    regex = body if anchored else f"(?:.*/)?{body}"
    return _Rule(re.compile(regex), negated, directory_only)


def _translate(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end].replace("\\", "\\\\")
            out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)
