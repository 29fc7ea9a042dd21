"""Where the reconciler writes in the config repo: owned paths, the pool, PR branches, and
the tenant layout (flat ``tenants/<name>/`` or sharded ``tenants/_<shard>/<name>/``).

Pure constants and small functions; the one place that names them (the engine, delivery,
pull-request mode, status and the layout view of the repo all ask here).

The core thinks in logical directories (``ObjectKey.directory``: ``tenants/acme``); only the
config repo's view (``adapters/layoutview.py``) and what shows a physical place to a user
(status, the Applied condition) map them with ``physical_path``. The shard of a tenant is
``_`` + the first two hex digits of sha256(name): 256 shards, stable across versions and
machines, ~390 tenants each at 100,000. ``_`` never starts a Customer name (a DNS-1123
label), so a shard directory can never be mistaken for a flat tenant directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from reconciler.core import errors, messages
from reconciler.core.models import DIRECTORIES, ObjectKey
from reconciler.core.render.common import POOL_DIRECTORY

#: what an object of each kind may write: its own directory, and a Customer the pool
OWNED_PREFIXES: dict[str, tuple[str, ...]] = {
    "Customer": ("tenants/", POOL_DIRECTORY), "Preview": ("previews/",)}
#: every top-level path the reconciler owns (a foreign commit there is reported)
OWNED_TOPS: tuple[str, ...] = (*(f"{top}/" for top in DIRECTORIES.values()),
                               f"{POOL_DIRECTORY}/", ".reconciler/")
#: pull-request mode: the branch of one object is ``reconciler/<kind>/<name>``
BRANCH_PREFIX = "reconciler/"

Layout = Literal["flat", "sharded"]
FLAT: Layout = "flat"
SHARDED: Layout = "sharded"
#: the only directory that is sharded: tenants can be 100,000; previews stay flat (one per
#: open pull request or branch, bounded by the forge's ~1,000 open PRs per base branch)
SHARDED_TOP = DIRECTORIES["Customer"]
#: written by the first sharded commit and by ``layout migrate``; absent means flat
LAYOUT_RECORD = ".reconciler/layout.json"
SHARD_DIGITS = 2
SHARD_COUNT = 16 ** SHARD_DIGITS
SHARD_NAME = re.compile(r"^_[0-9a-f]{2}$")


class LayoutMismatchError(errors.UserInputError):
    """The config repo is laid out one way and the settings ask for the other."""


def branch_for(key: ObjectKey) -> str:
    """The object's own pull-request branch."""
    return f"{BRANCH_PREFIX}{key.kind.lower()}/{key.name}"


@functools.lru_cache(maxsize=4096)  # sha256 of a name is cheap; 100,000 kept cost 13 MB
def shard_of(name: str) -> str:
    """The shard directory of a tenant: ``_`` + first two hex digits of sha256(name)."""
    return "_" + hashlib.sha256(name.encode()).hexdigest()[:SHARD_DIGITS]


def is_shard(name: str) -> bool:
    """Whether a directory name under ``tenants/`` is a shard (``_00`` ... ``_ff``)."""
    return bool(SHARD_NAME.fullmatch(name))


def physical_path(logical: str, layout: Layout) -> str:
    """Where a logical path (``tenants/acme/x.yaml``) lives in a repo of ``layout``
    (``tenants/_3f/acme/x.yaml`` when sharded). Other paths are unchanged."""
    if layout != SHARDED:
        return logical
    top, sep, rest = logical.partition("/")
    if top != SHARDED_TOP or not sep:
        return logical
    name = rest.partition("/")[0]
    if not name or name.startswith("."):  # tenants/.gitkeep: a file of tenants/ itself
        return logical
    return f"{top}/{shard_of(name)}/{rest}"


def logical_path(physical: str, layout: Layout) -> str:
    """The inverse of ``physical_path``."""
    if layout != SHARDED:
        return physical
    parts = physical.split("/", 2)
    if len(parts) == 3 and parts[0] == SHARDED_TOP and is_shard(parts[1]):
        return f"{parts[0]}/{parts[2]}"
    return physical


def directory_of(key: ObjectKey, layout: Layout) -> str:
    """The physical directory of an object (what Argo CD's Application path names)."""
    return physical_path(key.directory, layout)


_TENANT_PATH = re.compile(rf"(?<![\w/.-]){SHARDED_TOP}/([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)/")


def physical_text(text: str, layout: Layout) -> str:
    """A commit message with every ``tenants/<name>/`` it mentions at its physical place,
    so the files a commit body lists are the files the commit changed."""
    if layout != SHARDED:
        return text
    return _TENANT_PATH.sub(lambda m: f"{SHARDED_TOP}/{shard_of(m[1])}/{m[1]}/", text)


def layout_record(layout: Layout) -> bytes:
    """The bytes of ``.reconciler/layout.json`` (deterministic)."""
    data = {"layout": layout, "shard": "sha256(name)[:2]", "shards": SHARD_COUNT}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def parse_layout_record(raw: bytes | None) -> Layout:
    """The layout a record names; absent means flat. A record naming no known layout (a
    hand edit) raises LayoutMismatchError: guessing could write tenants twice."""
    if raw is None:
        return FLAT
    try:
        value = json.loads(raw).get("layout")
    except (ValueError, UnicodeDecodeError, AttributeError):
        value = None
    if value not in (FLAT, SHARDED):
        raise LayoutMismatchError(f"{LAYOUT_RECORD} is not a layout record (expected "
                                  '{"layout": "flat"|"sharded"}); fix or remove it')
    return FLAT if value == FLAT else SHARDED


def check_layout(repo_layout: Layout | None, wanted: Layout) -> None:
    """Refuse to write ``wanted`` into a repo laid out otherwise (None: the repo holds no
    tenant yet, either layout fits). One line naming both and the command that fixes it."""
    if repo_layout is None or repo_layout == wanted:
        return
    raise LayoutMismatchError(
        f"the config repo's tenants are {repo_layout} but the setting layout is {wanted}: "
        f"run `reconciler migrate-layout --to {wanted} --repo REPO` (one commit), or set "
        f"layout: {repo_layout} (RECONCILER_LAYOUT={repo_layout})")


# -- migrating a config repo from one layout to the other ---------------------------------

LAYOUT_ACTION = "layout"
TRAILER_LAYOUT = "Reconciler-Layout"
TRAILER_MOVED = "Reconciler-Moved"


class MigrationConflictError(errors.UserInputError):
    """The repo holds something a migration would collide with (a human's directory)."""


def plan_migration(top: Sequence[str], shards: Mapping[str, Sequence[str]],
                   to: Layout) -> dict[str, str]:
    """Directory moves (source -> destination) that lay ``tenants/`` out as ``to``.

    ``top``: the subdirectories of ``tenants/``; ``shards``: each shard's subdirectories.
    Empty when the repo is laid out so already. Refuses (one line) a repo holding both
    layouts' directories: someone made one by hand, and moving over it would merge or lose.
    """
    flat = [name for name in top if not is_shard(name) and not name.startswith(".")]
    sharded = sorted(f"{shard}/{name}" for shard, names_ in shards.items() for name in names_)
    if flat and sharded:
        raise MigrationConflictError(
            f"{SHARDED_TOP}/ holds flat directories ({SHARDED_TOP}/{flat[0]}) and sharded "
            f"ones ({SHARDED_TOP}/{sharded[0]}): move or remove what a human added first")
    if to == SHARDED:
        return {f"{SHARDED_TOP}/{name}": f"{SHARDED_TOP}/{shard_of(name)}/{name}"
                for name in sorted(flat)}
    out: dict[str, str] = {}
    for path in sharded:
        name = path.partition("/")[2]
        if f"{SHARDED_TOP}/{name}" in out.values():
            raise MigrationConflictError(f"{SHARDED_TOP}/{name} is in two shards; remove one")
        out[f"{SHARDED_TOP}/{path}"] = f"{SHARDED_TOP}/{name}"
    return out


def migration_branch(to: Layout) -> str:
    """The branch a pull-request-mode migration to ``to`` is proposed on."""
    return f"reconciler/migrate-layout/{to}"


def migration_pull_request_body(message: str, *, listed: int = 200) -> str:
    """A migration PR's body from its commit message: what it does, the first ``listed``
    moves (a forge caps a body near 64 KB; the commit's trailers list every one), how to
    finish it."""
    _, _, rest = message.partition("\n\n")
    text, _, _ = rest.partition(f"\n\n{messages.TRAILER_ACTION}: ")
    moved = messages.trailer_values(message, TRAILER_MOVED)
    lines = [f"- `{m}`" for m in moved[:listed]]
    if len(moved) > listed:
        lines.append(f"- ... and {len(moved) - listed:,} more (the commit's "
                     f"`{TRAILER_MOVED}` trailers list every one)")
    return (f"Proposed by gitops-reconciler (`reconciler migrate-layout`).\n\n{text.strip()}"
            "\n\n" + "\n".join(lines) + "\n\nReconcilers whose `layout` setting differs from "
            "the repository's hold (nothing written) until the two agree: merge this, then "
            "set the setting everywhere (or set it first: they hold until the merge).\n")


def migration_message(moves: Mapping[str, str], to: Layout, version: str) -> str:
    """The migration commit: what moved, why, and how to go back."""
    before = FLAT if to == SHARDED else SHARDED
    count = f"{len(moves):,} tenant" + ("" if len(moves) == 1 else "s")
    subject = (f"layout: tenants {before} -> {to} ({count}"
               + (f" in {len({d.split('/')[1] for d in moves.values()}):,} shards)"
                  if to == SHARDED else ")"))
    body = [f"Moves every tenant directory to {SHARDED_TOP}/<name>/" if to == FLAT else
            f"Moves every tenant directory to {SHARDED_TOP}/_<shard>/<name>/, <shard> the "
            "first two hex digits of sha256(name).",
            "Files are unchanged (same blobs and trees); Argo CD Applications keep their",
            "names and only change path. To go back, revert this commit and set the",
            f"reconciler's layout setting to {before}."]
    trailers: list[tuple[str, str]] = [(messages.TRAILER_ACTION, LAYOUT_ACTION),
                                       (TRAILER_LAYOUT, to)]
    trailers += [(TRAILER_MOVED, f"{src} -> {dst}") for src, dst in sorted(moves.items())]
    trailers.append((messages.TRAILER_VERSION, version))
    return messages.build_message(subject, body, trailers)
