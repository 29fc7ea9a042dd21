"""The Applied verdict (pure rules) over a real config repo's history.

Which Argo CD Applications and Flux Kustomizations deploy an object's directory, and whether
the revision they applied contains the object's last commit and is healthy. "Contains" is
answered by a real repository in a tmp dir: a later commit contains an earlier one, an
earlier commit does not contain a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core import applied, plan
from tests.scheduled import support


@dataclass(frozen=True)
class History:
    """A config repo with three commits: before, the object's commit, after."""

    repo: GitConfigRepo
    before: str
    commit: str
    after: str


@pytest.fixture
def history(tmp_path: Path) -> History:
    """Seed, then tenants/acme, then tenants/beta, in a fresh bare repository."""
    repo = GitConfigRepo.open(tmp_path / "config.git", branch="main", author_name="bot",
                              author_email="bot@example.invalid", create=True)
    before = repo.commit(plan.ChangeSet({"README.md": b"config\n"}), "init")
    commit = repo.commit(plan.ChangeSet({"tenants/acme/ns.yaml": b"kind: Namespace\n"}),
                         "customer/acme: created")
    after = repo.commit(plan.ChangeSet({"tenants/beta/ns.yaml": b"kind: Namespace\n"}),
                        "customer/beta: created")
    return History(repo, before, commit, after)


def verdict(history: History, directory: str, apps: list[dict[str, object]],
            kustomizations: list[dict[str, object]]) -> tuple[str, str, str]:
    """The Applied condition for ``directory`` whose last commit is ``history.commit``."""
    found = applied.deployers(directory, apps, kustomizations)
    return applied.applied_condition(directory, history.commit, found, history.repo.contains)


# -- contains ------------------------------------------------------------------------------


def test_a_later_revision_contains_the_commit_and_an_earlier_one_does_not(
        history: History) -> None:
    """The commit itself and its descendants contain it; its parent and unknown ids do not."""
    assert history.repo.contains(history.commit, history.commit)
    assert history.repo.contains(history.commit, history.after)
    assert not history.repo.contains(history.commit, history.before)
    assert not history.repo.contains(history.commit, "0" * 40)


# -- which deployers cover a directory ----------------------------------------------------


def test_an_application_deploys_the_directory_named_by_its_source_path(
        history: History) -> None:
    """source.path, with or without ``./`` or a trailing slash, and a path among several
    sources, select the Application; another tenant's path does not."""
    apps = [support.application("tenant-acme", "./tenants/acme/", revision=history.after),
            support.application("multi", "tenants/acme", revision=history.after,
                                multi_source=True),
            support.application("tenant-beta", "tenants/beta", revision=history.after)]
    found = applied.deployers("tenants/acme", apps, [])
    assert [(d.kind, d.name) for d in found] == [("Application", "argocd/tenant-acme"),
                                                 ("Application", "argocd/multi")]


def test_a_kustomization_deploys_every_directory_under_its_path(history: History) -> None:
    """``./tenants`` covers tenants/acme, ``./`` covers everything, ``./tenant`` and
    ``./previews`` do not cover tenants/acme."""
    kustomizations = [support.kustomization(name, path, revision=history.after)
                      for name, path in (("tenants", "./tenants"), ("all", "./"),
                                         ("typo", "./tenant"), ("previews", "./previews"))]
    found = applied.deployers("tenants/acme", [], kustomizations)
    assert [d.name for d in found] == ["flux-system/tenants", "flux-system/all"]


def test_a_kustomizations_applied_revision_is_read_from_branch_at_sha1(history: History) -> None:
    """``main@sha1:<sha>`` in lastAppliedRevision is the commit Flux applied."""
    [found] = applied.deployers(
        "tenants/acme", [], [support.kustomization("tenants", "./tenants",
                                                   revision=history.after)])
    assert found.revision == history.after


# -- the verdict ---------------------------------------------------------------------------


def test_a_synced_healthy_application_at_a_later_revision_makes_applied_true(
        history: History) -> None:
    """Synced and Healthy at a revision containing the commit: True, naming the Application."""
    status, reason, message = verdict(
        history, "tenants/acme",
        [support.application("tenant-acme", "tenants/acme", revision=history.after)], [])
    assert (status, reason) == ("True", "Applied")
    assert "Application argocd/tenant-acme" in message
    assert history.commit[:12] in message


def test_a_multi_source_application_is_judged_like_a_single_source_one(
        history: History) -> None:
    """An Application whose sources[] include the directory gives the same verdict."""
    status, reason, _ = verdict(
        history, "tenants/acme",
        [support.application("multi", "tenants/acme", revision=history.commit,
                             multi_source=True)], [])
    assert (status, reason) == ("True", "Applied")


def test_a_degraded_application_makes_applied_false_unhealthy(history: History) -> None:
    """At the right revision but Degraded: False, reason Unhealthy, saying the health."""
    status, reason, message = verdict(
        history, "tenants/acme",
        [support.application("tenant-acme", "tenants/acme", revision=history.after,
                             health="Degraded")], [])
    assert (status, reason) == ("False", "Unhealthy")
    assert "health Degraded" in message


def test_an_application_at_an_older_revision_makes_applied_false_not_yet_applied(
        history: History) -> None:
    """At the commit's parent: False, reason NotYetApplied, naming where it is."""
    status, reason, message = verdict(
        history, "tenants/acme",
        [support.application("tenant-acme", "tenants/acme", revision=history.before)], [])
    assert (status, reason) == ("False", "NotYetApplied")
    assert history.before[:12] in message and history.commit[:12] in message


def test_no_deployer_makes_applied_unknown_no_deployer(history: History) -> None:
    """Nothing deploys the directory: Unknown, reason NoDeployer, naming the directory."""
    status, reason, message = verdict(
        history, "tenants/acme",
        [support.application("tenant-beta", "tenants/beta", revision=history.after)], [])
    assert (status, reason) == ("Unknown", "NoDeployer")
    assert "tenants/acme/" in message


def test_nothing_committed_yet_makes_applied_unknown(history: History) -> None:
    """An object with no commit yet cannot be applied: Unknown, reason NotCommitted."""
    found = applied.deployers("tenants/acme", [support.application(
        "tenant-acme", "tenants/acme", revision=history.after)], [])
    assert applied.applied_condition("tenants/acme", None, found, history.repo.contains)[:2] \
        == ("Unknown", "NotCommitted")


def test_a_ready_kustomization_at_a_later_revision_makes_applied_true(
        history: History) -> None:
    """Flux: lastAppliedRevision containing the commit and Ready=True: True."""
    status, reason, message = verdict(
        history, "tenants/acme", [],
        [support.kustomization("tenants", "./tenants", revision=history.after)])
    assert (status, reason) == ("True", "Applied")
    assert "Kustomization flux-system/tenants" in message


def test_a_kustomization_that_is_not_ready_makes_applied_false_unhealthy(
        history: History) -> None:
    """Flux: the right revision but Ready=False: False, Unhealthy, with Flux's message."""
    status, reason, message = verdict(
        history, "tenants/acme", [],
        [support.kustomization("tenants", "./tenants", revision=history.after, ready="False",
                               message="health check failed")])
    assert (status, reason) == ("False", "Unhealthy")
    assert "health check failed" in message


def test_a_kustomization_at_an_older_revision_makes_applied_false_not_yet_applied(
        history: History) -> None:
    """Flux: lastAppliedRevision older than the commit: False, NotYetApplied."""
    status, reason, _ = verdict(
        history, "tenants/acme", [],
        [support.kustomization("tenants", "./tenants", revision=history.before)])
    assert (status, reason) == ("False", "NotYetApplied")


def test_one_deployer_that_applied_the_commit_is_enough(history: History) -> None:
    """An Application still behind does not hide a Kustomization that applied it."""
    status, reason, message = verdict(
        history, "tenants/acme",
        [support.application("tenant-acme", "tenants/acme", revision=history.before)],
        [support.kustomization("tenants", "./tenants", revision=history.after)])
    assert (status, reason) == ("True", "Applied")
    assert "Kustomization" in message
