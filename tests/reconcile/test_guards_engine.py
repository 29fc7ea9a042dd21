"""The guards inside real passes: a refused object gets one line and nothing written, while
every other object still reconciles; rollback obeys the same transition guards.

Real bare repositories, read back with the git CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.core import guards
from reconciler.core.models import Customer, ObjectKey, Preview
from reconciler.core.outcomes import Reason, Result
from reconciler.core.settings import Settings
from reconciler.reconcile import rollback
from reconciler.reconcile.engine import Reconciler
from tests.gitcli import git
from tests.reconcile.test_engine import (
    BRANCH,
    commits_since,
    customer,
    head,
    make_engine,
    object_commits,
    outcome_of,
    parsed,
    pool_databases,
    preview,
    show,
)


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare config repository."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", BRANCH, str(path))
    return path


@pytest.fixture
def engine(bare: Path) -> Reconciler:
    """A Reconciler on the empty repository, default settings."""
    return make_engine(bare)


def with_database(name: str, storage: str = "20Gi", version: str = "16",
                  annotations: dict[str, str] | None = None, workers: int | None = None) -> Customer:
    """A Customer with an enabled database of ``storage`` and ``version``."""
    features: dict[str, Any] = {"database": {"enabled": True, "storage": storage,
                                             "version": version}}
    if workers is not None:
        features["scheduler"] = {"enabled": True, "workers": workers}
    return Customer.model_validate({"metadata": {"name": name, "annotations": annotations or {}},
                                    "spec": {"features": features}})


def hosted_preview(name: str, host: str) -> Preview:
    """A Preview with an explicit host."""
    obj = preview(name)
    return obj.model_copy(update={"spec": obj.spec.model_copy(update={"host": host})})


def test_a_storage_shrink_commits_nothing_for_it_and_the_others_go_on(bare, engine):
    """20Gi -> 10Gi is refused (StorageShrink, both sizes in the line); the tenant keeps
    its 20Gi files, and another tenant's change in the same pass is committed."""
    engine.sync(parsed(with_database("acme"), customer("zeta")))
    before = head(bare)
    report = engine.sync(parsed(with_database("acme", "10Gi"), customer("zeta", workers=3)))
    shrink = outcome_of(report, "customer/acme")
    assert (shrink.result, shrink.reason) == (Result.REFUSED, Reason.STORAGE_SHRINK)
    assert "20Gi -> 10Gi" in shrink.message and "\n" not in shrink.message
    assert not report.ok
    assert object_commits(bare, "customer/acme", before) == []
    assert "storage: 20Gi" in show(bare, "tenants/acme/database.yaml")
    assert len(object_commits(bare, "customer/zeta", before)) == 1
    # growth is an ordinary update
    grown = make_engine(bare).sync(parsed(with_database("acme", "30Gi"), customer("zeta", workers=3)))
    assert outcome_of(grown, "customer/acme").result == Result.COMMITTED


def test_a_version_change_needs_confirmation_and_a_downgrade_never_passes(bare, engine):
    """16 -> 15 is refused; 16 -> 17 waits for the annotation "16->17" and then commits."""
    engine.sync(parsed(with_database("acme")))
    down = engine.sync(parsed(with_database("acme", version="15")))
    assert outcome_of(down, "customer/acme").reason == Reason.VERSION_DOWNGRADE
    up = engine.sync(parsed(with_database("acme", version="17")))
    assert outcome_of(up, "customer/acme").reason == Reason.UPGRADE_NOT_CONFIRMED
    assert "postgres:16" in show(bare, "tenants/acme/database.yaml")
    confirmed = engine.sync(parsed(with_database(
        "acme", version="17", annotations={guards.CONFIRM_UPGRADE_ANNOTATION: "16->17"})))
    assert outcome_of(confirmed, "customer/acme").result == Result.COMMITTED
    assert "postgres:17" in show(bare, "tenants/acme/database.yaml")


def test_a_refused_customer_keeps_its_pool_entry(bare, engine):
    """A tenant refused for its quota is neither added to nor dropped from the pool."""
    engine.sync(parsed(with_database("acme"), with_database("beta")))
    report = engine.sync(parsed(with_database("acme", workers=60), with_database("beta")))
    assert outcome_of(report, "customer/acme").reason == Reason.QUOTA_EXCEEDED
    assert pool_databases(bare) == ["acme", "beta"]
    fresh = engine.sync(parsed(with_database("beta"), with_database("gamma", workers=60),
                               with_database("acme")))
    assert outcome_of(fresh, "customer/gamma").reason == Reason.QUOTA_EXCEEDED
    assert pool_databases(bare) == ["acme", "beta"]


def test_a_preview_taking_a_webhook_host_is_refused_in_the_pass(bare, engine):
    """The colliding Preview is refused (HostConflict) and nothing is written for it; the
    tenant and an unrelated Preview are committed."""
    tenant = Customer.model_validate({"metadata": {"name": "acme"},
                                      "spec": {"features": {"webhooks": {"enabled": True}}}})
    settings = Settings(preview_host_patterns=("preview-*.{domain}", "*.hooks.{domain}"))
    eng = make_engine(bare, settings)
    report = eng.sync(parsed(tenant, hosted_preview("thief", "acme.hooks.example.com"),
                             preview("fine")))
    thief = outcome_of(report, "preview/thief")
    assert (thief.result, thief.reason) == (Result.REFUSED, Reason.HOST_CONFLICT)
    assert object_commits(bare, "preview/thief") == []
    assert object_commits(bare, "preview/fine") and object_commits(bare, "customer/acme")


def test_a_refused_object_is_not_removed(bare, engine):
    """An object that a guard refuses keeps its directory (it is not 'absent')."""
    engine.sync(parsed(preview("a")))
    report = engine.sync(parsed(hosted_preview("a", "www.example.com")))
    assert outcome_of(report, "preview/a").reason == Reason.HOST_NOT_ALLOWED
    assert show(bare, "previews/a/kustomization.yaml")


def test_a_large_import_leaves_refused_objects_out(bare):
    """The one import commit of a big first pass holds every object but the refused one,
    which gets its own refusal line."""
    eng = make_engine(bare, Settings(import_batch=2))
    report = eng.sync(parsed(customer("a"), customer("b"), customer("c"),
                             with_database("huge", "9Ti")))
    assert outcome_of(report, "customer/huge").reason == Reason.QUANTITY_INVALID
    assert [o.result for o in report.outcomes if o.key == ObjectKey("Customer", "a")] == \
        [Result.COMMITTED]
    assert len(commits_since(bare, None)) == 1
    assert object_commits(bare, "customer/huge") == []


def test_rollback_never_shrinks_storage(bare, engine):
    """Rolling back past a growth would shrink the volume: refused, nothing committed."""
    engine.sync(parsed(with_database("acme", "20Gi")))
    engine.sync(parsed(with_database("acme", "40Gi")))
    tip = head(bare)
    outcome = rollback.rollback(engine._repo, ObjectKey("Customer", "acme"), "1",
                                version="test")
    assert (outcome.result, outcome.reason) == (Result.REFUSED, Reason.STORAGE_SHRINK)
    assert "40Gi -> 20Gi" in outcome.message
    assert head(bare) == tip
