"""Where the reconciler writes in the config repo: owned paths, the pool, PR branches.

Pure constants and small functions; the one place that names them (the engine, delivery,
pull-request mode and status all ask here).
"""

from __future__ import annotations

from reconciler.core.models import DIRECTORIES, ObjectKey
from reconciler.core.render.common import POOL_DIRECTORY

#: what an object of each kind may write: its own directory, and a Customer the pool
OWNED_PREFIXES: dict[str, tuple[str, ...]] = {
    "Customer": ("tenants/", POOL_DIRECTORY), "Preview": ("previews/",)}
#: every top-level path the reconciler owns (a foreign commit there is reported)
OWNED_TOPS: tuple[str, ...] = (*(f"{top}/" for top in DIRECTORIES.values()),
                               f"{POOL_DIRECTORY}/")
#: pull-request mode: the branch of one object is ``reconciler/<kind>/<name>``
BRANCH_PREFIX = "reconciler/"


def branch_for(key: ObjectKey) -> str:
    """The object's own pull-request branch."""
    return f"{BRANCH_PREFIX}{key.kind.lower()}/{key.name}"
