"""Guards: what the reconciler refuses to commit because the cluster would reject it or
it would destroy data. Pure.

Stub: issue 8b replaces this module with the real guards; the decision step
(``core.decide``) already calls every function here, once per object or once per pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.models import ObjectKey, Resource
from reconciler.core.outcomes import Reason
from reconciler.core.render import common
from reconciler.core.settings import Settings


@dataclass(frozen=True)
class GuardRefusal:
    """One object the guards refuse, and why (one line naming the object and numbers)."""

    key: ObjectKey
    reason: Reason
    message: str


def refuse_object(obj: Resource, settings: Settings) -> GuardRefusal | None:
    """A refusal judged from the object alone (names, quantities, quota fit)."""
    del obj, settings
    return None


def refuse_rendered(obj: Resource, rendered: common.RenderedDir,
                    settings: Settings) -> GuardRefusal | None:
    """``refuse_object`` for a rendering the caller already has (saves rendering twice)."""
    del rendered
    return refuse_object(obj, settings)


def refuse_transition(obj: Resource, previous_spec: Mapping[str, Any] | None,
                      settings: Settings) -> GuardRefusal | None:
    """A refusal of going from ``previous_spec`` (the rendered source record) to ``obj``."""
    del obj, previous_spec, settings
    return None


def refuse_fleet(objects: Sequence[Resource], settings: Settings) -> dict[ObjectKey, GuardRefusal]:
    """Refusals that need every object at once (host uniqueness)."""
    del objects, settings
    return {}
