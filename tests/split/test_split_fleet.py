"""A fleet split across reconciler instances: each owns the objects its label selector or
shard index selects, in its own repository or branch, and never removes the other's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core import selection
from reconciler.core.models import Customer
from reconciler.core.settings import Settings, SettingsError, load_settings
from reconciler.core.sources import Parsed
from reconciler.ports.cluster import RawObject, WatchEvent
from reconciler.reconcile.engine import Reconciler
from reconciler.reconcile.informer import Informer
from tests.gitcli import git


def customer(name: str, team: str) -> Customer:
    """A Customer labelled with its team."""
    return Customer.model_validate({
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
        "metadata": {"name": name, "labels": {"team": team}}, "spec": {}})


def instance(repo: Path, branch: str, **settings: Any) -> Reconciler:
    """One reconciler instance (its own writer, branch and settings)."""
    config = GitConfigRepo.open(repo, branch=branch, author_name="gitops-reconciler",
                                author_email="reconciler@example.invalid")
    return Reconciler(repo=config, settings=Settings(branch=branch, **settings),
                      version="test")


def tenants(repo: Path, branch: str) -> set[str]:
    """The tenant directories on ``branch``."""
    out = git(repo, "ls-tree", "--name-only", f"{branch}:tenants/")
    return {line for line in out.split() if line != ".gitkeep"}


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare repository."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    return path


def test_two_instances_on_two_branches_each_reconcile_only_their_objects(bare: Path) -> None:
    """Instances with selectors team=a and team=b over the same resources write only their own
    tenants to their own branch; a relabelled tenant moves from one to the other; neither
    removes the other's."""
    fleet = [customer("a1", "a"), customer("a2", "a"), customer("b1", "b")]
    first = instance(bare, "fleet-a", selector="team=a")
    second = instance(bare, "fleet-b", selector="team=b")
    assert first.sync(Parsed(fleet, ())).ok and second.sync(Parsed(fleet, ())).ok
    assert tenants(bare, "fleet-a") == {"a1", "a2"}
    assert tenants(bare, "fleet-b") == {"b1"}

    moved = [customer("a1", "a"), customer("a2", "b"), customer("b1", "b")]
    first.sync(Parsed(moved, ()))
    second.sync(Parsed(moved, ()))
    assert tenants(bare, "fleet-a") == {"a1"}
    assert tenants(bare, "fleet-b") == {"a2", "b1"}
    assert first.sync(Parsed(moved, ())).commits == [] == second.sync(Parsed(moved, ())).commits


def test_a_selector_matching_nothing_removes_nothing(bare: Path) -> None:
    """A mistyped selector that selects none of the fleet holds every removal (empty source)
    instead of emptying the instance's repository."""
    fleet = [customer(f"t{i}", "a") for i in range(8)]
    instance(bare, "main", selector="team=a").sync(Parsed(fleet, ()))
    report = instance(bare, "main", selector="team=typo").sync(Parsed(fleet, ()))
    assert report.commits == [] and not report.ok
    assert len(tenants(bare, "main")) == 8


def test_shard_indexes_split_a_fleet_into_disjoint_parts() -> None:
    """Every name falls into exactly one of the shards 0/3, 1/3, 2/3, the same on every call."""
    names = [f"tenant-{i}" for i in range(300)]
    owners = [[s for s in range(3) if Settings(shard=f"{s}/3").owns(n, {})] for n in names]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2}
    assert selection.shard_of("acme", 3) == selection.shard_of("acme", 3)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("team=a", {"team": "a"}, True), ("team=a", {"team": "b"}, False),
    ("team!=a", {}, True), ("env in (prod, staging)", {"env": "staging"}, True),
    ("env notin (prod)", {"env": "prod"}, False), ("legacy", {"legacy": ""}, True),
    ("!legacy", {"legacy": "x"}, False), ("team=a,!legacy", {"team": "a"}, True),
])
def test_label_selectors_follow_kubernetes_semantics(selector: str, labels: dict[str, str],
                                                     expected: bool) -> None:
    """Equality, set and existence clauses match as kubectl's -l does."""
    assert Settings(selector=selector).owns("x", labels) is expected


def test_a_malformed_selector_or_shard_is_one_line_naming_the_setting() -> None:
    """A selector or shard that cannot be parsed stops start-up with one line."""
    with pytest.raises(SettingsError, match=r"^setting selector: .*'team===a'"):
        load_settings(None, {"RECONCILER_SELECTOR": "team===a"})
    with pytest.raises(SettingsError, match=r"^setting shard: "):
        load_settings(None, {"RECONCILER_SHARD": "4/4"})


class _Cluster:
    """Just enough of the Cluster port for an Informer: one list, one watch stream."""

    def __init__(self, items: list[RawObject], events: list[WatchEvent]) -> None:
        self.items, self.events = items, events

    def list_objects(self, plural: str) -> tuple[list[RawObject], str]:
        del plural
        return self.items, "1"

    def watch_objects(self, plural: str, resource_version: str,
                      timeout: int) -> Iterator[WatchEvent]:
        del plural, resource_version, timeout
        yield from self.events


def raw(name: str, team: str) -> RawObject:
    """A raw Customer as the API server sends it."""
    return {"metadata": {"name": name, "labels": {"team": team}, "resourceVersion": "1"}}


def test_the_controllers_informer_keeps_only_selected_objects() -> None:
    """The informer of an instance with team=a caches only team=a objects, and an object
    relabelled away is reported once, as gone, so its directory is removed there."""
    cluster = _Cluster([raw("a1", "a"), raw("b1", "b")],
                       [WatchEvent("MODIFIED", raw("a1", "b"), "2"),
                        WatchEvent("MODIFIED", raw("b1", "b"), "3")])
    changed: list[str] = []
    settings = Settings(selector="team=a")
    informer = Informer(cluster=cluster, plural="customers", on_change=changed.append,  # type: ignore[arg-type]
                        keep=lambda r: settings.owns(r["metadata"]["name"],
                                                     r["metadata"]["labels"]))
    informer.relist()
    assert informer.names() == ["a1"] and changed == ["a1"]
    stop = threading.Event()
    informer._watch(stop)
    assert informer.names() == [] and changed == ["a1", "a1"]
