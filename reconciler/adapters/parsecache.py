"""The YAML documents of source files seen before, by the hash of their bytes: a restart
over an unchanged fleet reads them with the C ``json`` module instead of PyYAML's Python
constructor (about 85 % of reading 10,000 Customers).

Content-addressed, so an entry is never stale: the key is the SHA-256 of the file's bytes,
the document limit and the parse rules (the loader's code, PyYAML's version, this
format), and the value is what ``core.sources.load_text`` made of them, documents or the
path-free reason they cannot be read. Validation still runs on every read. Each entry
carries a checksum; a torn, garbled or foreign line is a miss, parsed again, never an
error. Appended to (one ``write``), and rewritten (temp file and rename) with only the
entries of the files last read once the others outweigh them, so it stays about the size
of the fleet's manifests. A read-only directory only means nothing is written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

import reconciler
from reconciler.adapters import cachefile
from reconciler.core import sources, yamlio

FILE_NAME = "reconciler-parsed-v1"
_FORMAT = b"reconciler-parsed-v1"
#: the documents a cached file may expand to, in values per byte of YAML: aliases can
#: make a small file enormous; such a file is simply parsed again each time
_VALUES_PER_BYTE = 2
#: a cache file larger than this is not read (about 40 times a 100,000-tenant fleet's)
MAX_FILE_BYTES = 1 << 30
#: a temporary file of a rewrite this old was left by a killed process
_STALE_SECONDS = 600


@functools.cache
def rules_version() -> bytes:
    """What the parse result depends on besides the bytes: a change of any of it (an
    upgrade, an edited loader) makes every entry a miss."""
    digest = hashlib.sha256(_FORMAT)
    for part in (reconciler.__version__, yaml.__version__, yamlio.LOADER_NAME):
        digest.update(part.encode() + b"\0")
    for module in (yamlio, sources):
        try:
            digest.update(Path(module.__file__ or "").read_bytes())
        except OSError:
            digest.update(b"(source unavailable)")
    return digest.digest()


def key_of(data: bytes, limits: sources.Limits) -> str:
    """The cache key of a file's bytes read under ``limits``."""
    digest = hashlib.sha256(rules_version())
    digest.update(f"{limits.max_documents}\0".encode())
    digest.update(data)
    return digest.hexdigest()


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ParseCache:
    """One cache file (``path``); ``None`` for a cache that keeps nothing.

    A pass reads it (``get``), learns (``put``) and ``save``s once. After that first save
    (a running controller, whose edits are new bytes anyway) it is not read again: each
    ``put`` appends its entry at once, and ``save`` rewrites the file only when entries
    of files no longer seen outweigh the live ones (their sizes are remembered).
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._data = b""  # the file as loaded (lazily, on the first ``get`` or ``put``)
        self._spans: dict[str, tuple[int, int]] | None = None  # key -> its line in _data
        self._new: dict[str, str] = {}  # key -> line, learnt since the load
        self._damaged = False  # a torn, foreign or corrupt line: the next save rewrites
        self._saved = False  # saved once: from now on appends only
        self._sizes: dict[str, int] = {}  # key -> its line's length, for live keys

    def _index(self) -> dict[str, tuple[int, int]]:
        if self._spans is None:
            self._spans = {}
            loaded = cachefile.read_regular(self._path, MAX_FILE_BYTES) \
                if self._path is not None else b""
            if loaded is None:  # not a regular file, or absurdly large: replaced on save
                loaded, self._damaged = b"", True
            data = self._data = loaded
            start = 0
            while start < len(data):
                end = data.find(b"\n", start)
                if end == -1:
                    self._damaged = True  # a torn last line
                    break
                if end - start > 83 and data[start + 64] == 32 and data[start + 81] == 32:
                    # a foreign byte spoils its line only (its checksum fails)
                    key = data[start:start + 64].decode("ascii", "replace")
                    self._spans[key] = (start, end + 1)
                    self._sizes[key] = end + 1 - start
                else:
                    self._damaged = True
                start = end + 1
        return self._spans

    def _line(self, key: str) -> str | None:
        span = self._index().get(key)
        if span is not None:
            return self._data[span[0]:span[1]].decode("ascii", "replace")
        return self._new.get(key)

    def get(self, key: str) -> sources.Loaded | None:
        """What was loaded from the bytes with ``key``, or None (never seen, or the entry
        does not check out)."""
        if self._saved:
            return None
        line = self._line(key)
        if line is None:
            return None
        payload = line[82:-1]
        value = None
        if _checksum(payload) == line[65:81]:
            with contextlib.suppress(ValueError, RecursionError):
                value = json.loads(payload)
        if isinstance(value, dict) and len(value) == 1:
            if isinstance(value.get("docs"), list):
                docs: list[Any] = value["docs"]
                return docs
            if isinstance(value.get("refused"), str):
                refused: str = value["refused"]
                return refused
        self._damaged = True  # dropped by the next save: the file is parsed again
        self._index().pop(key, None)
        self._new.pop(key, None)
        return None

    def put(self, key: str, loaded: sources.Loaded, size: int) -> None:
        """Remember what the ``size`` bytes with ``key`` loaded as, when JSON says it
        exactly (a timestamp, a set or binary data would come back as something else)."""
        if self._path is None or (not self._saved and self._line(key) is not None):
            return
        try:
            if isinstance(loaded, str):
                value: dict[str, object] = {"refused": loaded}
            elif _plain(loaded, budget=[_VALUES_PER_BYTE * size + 16]):
                value = {"docs": loaded}
            else:
                return
            payload = json.dumps(value, separators=(",", ":"))  # ASCII: a line per entry
        except RecursionError:  # nested too deep to walk: parsed again each time
            return
        line = f"{key} {_checksum(payload)} {payload}\n"
        self._sizes[key] = len(line)
        if not self._saved:
            self._new[key] = line
            return
        with contextlib.suppress(OSError):  # a read-only repository: parsed again next time
            self._append(line)

    def save(self, live: Iterable[str]) -> None:
        """Write what was learnt; keep only the ``live`` keys (the files just read) once
        the others take more room than they do. Never raises: it is only a cache."""
        if self._path is None:
            return
        live = dict.fromkeys(live)
        if self._saved:
            try:
                size = os.stat(self._path).st_size
            except OSError:
                return
            if size <= 2 * sum(self._sizes.get(key, 0) for key in live) + 4096:
                return
            self._saved = False  # read it once more, to keep only the live entries
        elif self._spans is None:
            return
        kept = [line for line in map(self._line, live) if line is not None]
        kept_bytes = sum(map(len, kept))
        new = "".join(self._new.values())
        try:
            if self._damaged or len(self._data) + len(new) > 2 * kept_bytes + 4096:
                self._rewrite("".join(kept))
            elif new:
                self._append(new)
        except OSError:
            pass  # a read-only repository: parsed again next time
        self._data, self._spans, self._new = b"", None, {}
        self._damaged, self._saved = False, True
        self._sizes = {key: self._sizes[key] for key in live if key in self._sizes}

    def _append(self, text: str) -> None:
        """Add lines at the end (one ``write``: concurrent appenders do not interleave)."""
        assert self._path is not None
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, text.encode("ascii"))
        finally:
            os.close(fd)

    def _rewrite(self, text: str) -> None:
        assert self._path is not None
        for stale in self._path.parent.glob(f".{FILE_NAME}.*"):  # left by a killed rewrite
            with contextlib.suppress(OSError):
                if stale.lstat().st_mtime < time.time() - _STALE_SECONDS:
                    stale.unlink()
        fd, temp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, self._path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _plain(value: object, budget: list[int]) -> bool:
    """Whether ``value`` is made only of what JSON writes and reads back as the same
    types (dicts with string keys, lists, strings, ints, floats, booleans, None), within
    ``budget`` values (walked with a stack: no recursion, no generator per container)."""
    left = budget[0]
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        left -= 1
        if left < 0:
            budget[0] = left
            return False
        kind = type(item)
        if kind is dict:
            assert isinstance(item, dict)
            for key in item:
                if type(key) is not str:
                    return False
            push(item.values())
        elif kind is list:
            assert isinstance(item, list)
            push(item)
        elif kind not in _SCALARS:
            return False
    budget[0] = left
    return True


_SCALARS = frozenset({str, int, float, bool, type(None)})
