"""The decision step against real repositories: the plan is what the pass writes, guards are
consulted at their seams, and a pass leaves nothing half-decided."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.core import guards
from reconciler.core.models import ObjectKey, Preview, Resource
from reconciler.core.outcomes import Reason, Result
from reconciler.core.settings import Settings
from reconciler.core.sources import Refusal
from reconciler.reconcile import rollback as rollback_logic
from reconciler.reconcile.engine import Reconciler
from tests.gitcli import git, human_commit
from tests.reconcile.test_engine import (
    VERSION,
    customer,
    make_engine,
    outcome_of,
    parsed,
    preview,
    show,
)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare repository on main."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    return path


def shrink_guard(obj: Resource, previous: Mapping[str, Any] | None,
                 settings: Settings) -> guards.GuardRefusal | None:
    """A stand-in for 8b's storage guard: refuses any change of database storage."""
    del settings
    old = ((previous or {}).get("features") or {}).get("database", {}).get("storage")
    new = getattr(obj.spec, "features", None)
    storage = new.database.storage if new is not None else None
    if old and storage and old != storage:
        return guards.GuardRefusal(obj.key, Reason.INVALID_SPEC,
                                   f"{obj.key}: storage {old} -> {storage} refused")
    return None


def test_the_plan_is_exactly_what_sync_commits(bare: Path) -> None:
    """The commits ``plan`` lists (subjects and changed paths) are the commits ``sync``
    makes, in order, and planning alone moves no ref."""
    engine = make_engine(bare)
    engine.sync(parsed(customer("a", database=True), customer("b")))
    before = git(bare, "rev-parse", "main")
    desired = parsed(customer("a", database=True, workers=3), customer("c", database=True),
                     preview("p"))

    plan = Reconciler(repo=engine._repo, settings=Settings(), version=VERSION).plan(desired)
    assert git(bare, "rev-parse", "main") == before
    report = engine.sync(desired, allow_removals=1)

    made = git(bare, "rev-list", "--reverse", f"{before}..main").split()
    assert [c.subject for c in plan.commits] == \
        [git(bare, "log", "-1", "--format=%s", c) for c in made]
    for planned, commit in zip(plan.commits, made, strict=True):
        changed = set(git(bare, "diff-tree", "-r", "--no-commit-id", "--name-only",
                          commit).split())
        assert changed == set(planned.changes.paths)
    assert report.ok


def test_a_guard_refusal_writes_nothing_for_that_object_and_the_rest_goes_on(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal from refuse_transition (fed the spec recorded in the repo) leaves the object's
    directory as it was, with one line naming it, while another object is committed."""
    engine = make_engine(bare)
    engine.sync(parsed(customer("a", database=True, storage="20Gi"), customer("b")))
    monkeypatch.setattr(guards, "refuse_transition", shrink_guard)
    before = show(bare, "tenants/a/database.yaml")

    report = engine.sync(parsed(customer("a", database=True, storage="10Gi"),
                                customer("b", workers=2)))

    refused = outcome_of(report, "customer/a")
    assert refused.result == Result.REFUSED
    assert refused.message == "customer/a: storage 20Gi -> 10Gi refused"
    assert show(bare, "tenants/a/database.yaml") == before
    assert outcome_of(report, "customer/b").result == Result.COMMITTED


def test_a_fleet_refusal_is_decided_over_every_object(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """refuse_fleet sees every object of the pass at once; the object it names is refused."""
    seen: list[list[str]] = []

    def fleet(objects: Any, settings: Settings) -> dict[ObjectKey, guards.GuardRefusal]:
        del settings
        seen.append(sorted(str(o.key) for o in objects))
        key = ObjectKey("Preview", "p")
        return {key: guards.GuardRefusal(key, Reason.INVALID_SPEC, "preview/p: host taken")}
    monkeypatch.setattr(guards, "refuse_fleet", fleet)

    report = make_engine(bare).sync(parsed(customer("a"), preview("p")))

    assert seen == [["customer/a", "preview/p"]]
    assert outcome_of(report, "preview/p").result == Result.REFUSED
    assert outcome_of(report, "customer/a").result == Result.COMMITTED
    assert "previews/p" not in git(bare, "ls-tree", "-r", "--name-only", "main")


def test_rollback_goes_through_refuse_transition(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback to a generation with other storage is refused by the transition guard and
    commits nothing."""
    engine = make_engine(bare)
    engine.sync(parsed(customer("a", database=True, storage="10Gi")))
    engine.sync(parsed(customer("a", database=True, storage="20Gi")))
    before = git(bare, "rev-parse", "main")
    monkeypatch.setattr(guards, "refuse_transition", shrink_guard)

    outcome = rollback_logic.rollback(engine._repo, ObjectKey("Customer", "a"), "1",
                                      version=VERSION, settings=Settings())

    assert outcome.result == Result.REFUSED
    assert "storage 20Gi -> 10Gi refused" in outcome.message
    assert git(bare, "rev-parse", "main") == before


def test_a_suspended_customer_keeps_its_pool_entry_from_its_directory(bare: Path) -> None:
    """Suspending a Customer with a database leaves its directory and its pool line alone,
    and a pool deleted by hand is rebuilt with it (the pool follows the tenant directories)."""
    engine = make_engine(bare)
    engine.sync(parsed(customer("a", database=True), customer("b", database=True)))
    active = customer("a", database=True)
    paused = active.model_copy(update={"spec": active.spec.model_copy(update={"suspend": True})})

    engine.sync(parsed(paused, customer("b", database=True)))
    assert "a = host=" in show(bare, "platform/pgbouncer/pgbouncer.ini")
    human_commit(bare, {f"platform/pgbouncer/{n}": None for n in
                        git(bare, "ls-tree", "--name-only", "main",
                            "platform/pgbouncer/").replace("platform/pgbouncer/", "").split()})
    engine.invalidate()
    engine.sync(parsed(paused, customer("b", database=True)))

    ini = show(bare, "platform/pgbouncer/pgbouncer.ini")
    assert "a = host=" in ini and "b = host=" in ini


def expiring(name: str) -> Preview:
    """A Preview created long ago with a ttl of one hour: expired at any ``now`` of today."""
    return Preview.model_validate({
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Preview",
        "metadata": {"name": name, "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"app": "campaigns", "branch": "feat/xyz", "commit": "b" * 40,
                 "image": "registry.example.com/campaigns:bbbbbbb", "ttl": "1h"}})


def test_an_unreadable_file_holds_removals_but_not_an_expiry(bare: Path) -> None:
    """With a source file that could not be read, customer/b (absent) is held with one
    verdict, while preview/old, whose own manifest says it expired, is removed once."""
    engine = make_engine(bare)
    engine.sync(parsed(customer("a"), customer("b"), preview("old")))
    unread = Refusal("src/broken.yaml", "cannot be read (dangling symlink)")

    report = engine.sync(parsed(customer("a"), expiring("old"), refusals=[unread],
                                incomplete=True), now=time.time())

    held = outcome_of(report, "customer/b")
    assert (held.result, held.reason) == (Result.SKIPPED, Reason.REMOVAL_HELD)
    assert "src/broken.yaml" in held.message
    gone = [o for o in report.outcomes if str(o.key) == "preview/old"]
    assert [(o.result, o.reason) for o in gone] == [(Result.COMMITTED, Reason.EXPIRED)]
    assert git(bare, "log", "-1", "--format=%s") == "preview/old: expired (ttl 1h)"
