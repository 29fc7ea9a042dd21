"""A human's ``git revert`` or hand edit in the config repo stands until the spec changes.

The git CLI plays the human (their own name and e-mail, in their own clone, pushing back);
the reconciler is the real command. Covers issue 5, section 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit import support
from tests.audit.conftest import Reverted


@dataclass(frozen=True)
class HandEdited:
    """The story after a human set acme's scheduler replicas 6 -> 9 by hand."""

    ws: support.Workspace
    edit: str


@pytest.fixture
def hand_edited(workspace: support.Workspace, tmp_path: Path) -> HandEdited:
    """A copy of the story with a hand edit of tenants/acme/scheduler.yaml pushed."""
    human = workspace.human(tmp_path / "human")
    edit = human.replace("tenants/acme/scheduler.yaml", "replicas: 6", "replicas: 9",
                         "acme: more scheduler replicas for the sale")
    human.push()
    return HandEdited(workspace, edit)


@dataclass(frozen=True)
class Superseded:
    """``reverted`` followed by a spec change and one run."""

    ws: support.Workspace
    before: str  # the head before the run
    run: str


@pytest.fixture(scope="session")
def superseded(reverted: Reverted, tmp_path_factory: pytest.TempPathFactory) -> Superseded:
    """A copy of ``reverted`` after acme's scheduler went to 8 workers and a run. Read-only."""
    ws = reverted.ws.copy_to(tmp_path_factory.mktemp("superseded"))
    ws.write(support.customer("acme", workers=8, database=True))
    before = support.head(ws.repo)
    return Superseded(ws, before, support.ok(ws.run()))


# -- git revert ------------------------------------------------------------------------------


def test_a_reverted_update_is_held_without_a_new_commit(reverted: Reverted) -> None:
    """After a human reverts the reconciler's update, the next run commits nothing and says
    the change is held, naming the revert commit and its author."""
    assert support.head(reverted.ws.repo) == reverted.revert
    assert support.replicas(reverted.ws.repo, "acme") == 4  # as the human left it
    [held] = support.lines_starting(reverted.run, "held")
    assert held.split()[:3] == ["held", "RevertedInGit", reverted.revert[:12]]
    assert f"customer/acme: reverted in Git by {support.HUMAN} in {reverted.revert[:12]}" in held
    assert reverted.run.splitlines()[-1].startswith("0 commits,")


def test_status_reports_the_revert_with_its_commit_and_author(reverted: Reverted) -> None:
    """``status -o json`` shows acme as RevertedInGit, naming the revert and who made it."""
    rows = reverted.ws.status()
    assert rows["acme"]["state"] == "RevertedInGit"
    assert reverted.revert[:12] in rows["acme"]["message"]
    assert support.HUMAN in rows["acme"]["message"]
    assert rows["beta"]["state"] == "InSync"


def test_history_lists_the_revert_with_its_author(reverted: Reverted) -> None:
    """``history`` shows the human's revert on top, of kind revert, with who made it."""
    newest = reverted.ws.history("customer/acme")[0]
    assert (newest["commit"], newest["kind"], newest["who"]) == (
        reverted.revert, "revert", support.HUMAN)


def test_a_reverted_creation_is_held_and_the_directory_stays_gone(
        workspace: support.Workspace, tmp_path: Path) -> None:
    """A human's revert of the commit that created a tenant stands: the directory is not
    re-created and the run names the revert and its author."""
    created = support.generation_commit(workspace.repo, "customer/beta", 1)
    human = workspace.human(tmp_path / "human")
    revert = human.revert(created)
    human.push()

    out = support.ok(workspace.run())

    assert support.head(workspace.repo) == revert
    assert "tenants/beta" not in support.git("--git-dir", workspace.repo, "ls-tree", "-d",
                                             "--name-only", "main", "tenants/")
    [held] = support.lines_starting(out, "held")
    assert held.split()[:3] == ["held", "RevertedInGit", revert[:12]]
    assert f"customer/beta: reverted in Git by {support.HUMAN}" in held
    assert workspace.status()["beta"]["state"] == "RevertedInGit"


def test_a_spec_change_after_a_revert_makes_one_commit_that_supersedes_it(
        superseded: Superseded, reverted: Reverted) -> None:
    """Once the spec changes, exactly one commit renders it and says which human commit it
    supersedes; status is back to InSync."""
    [commit] = support.new_commits(superseded.ws.repo, superseded.before)
    assert commit.author == support.BOT
    assert commit.trailers["Reconciler-Supersedes"] == reverted.revert
    assert commit.trailers["Reconciler-Action"] == "update"
    assert f"supersedes {reverted.revert[:12]}" in commit.body
    assert support.replicas(superseded.ws.repo, "acme") == 8
    assert superseded.ws.status()["acme"]["state"] == "InSync"


def test_generations_stay_unique_after_a_revert(superseded: Superseded) -> None:
    """The reconciler's commits for acme never record the same generation for two specs, so
    ``rollback --to N`` and ``diff`` name one commit."""
    generations = [c.trailers.get("Reconciler-Generation") for c in support.log(superseded.ws.repo)
                   if c.trailers.get("Reconciler-Object") == "customer/acme"
                   and c.author == support.BOT]
    assert generations == ["4", "3", "2", "1"]


# -- hand edits, resync and the overwrite policy -------------------------------------------


def test_a_hand_edit_is_held_as_modified_in_git(hand_edited: HandEdited) -> None:
    """A hand edit of an owned file stands: the run commits nothing and names the edit and
    its author with reason ModifiedInGit."""
    out = support.ok(hand_edited.ws.run())

    assert support.head(hand_edited.ws.repo) == hand_edited.edit
    assert support.replicas(hand_edited.ws.repo, "acme") == 9
    [held] = support.lines_starting(out, "held")
    assert held.split()[:3] == ["held", "ModifiedInGit", hand_edited.edit[:12]]
    assert f"modified in Git by {support.HUMAN} in {hand_edited.edit[:12]}" in held


def test_resync_restores_the_rendering_in_one_commit(hand_edited: HandEdited) -> None:
    """``reconciler resync customer/acme`` restores the rendered file in one restore commit
    that supersedes the edit, and the next run leaves it alone."""
    ws = hand_edited.ws
    done = ws.cli("resync", "customer/acme", "--source", ws.source)

    assert support.ok(done).startswith("committed: customer/acme: restored the rendered files")
    [commit] = support.new_commits(ws.repo, hand_edited.edit)
    assert commit.trailers["Reconciler-Action"] == "restore"
    assert commit.trailers["Reconciler-Supersedes"] == hand_edited.edit
    assert support.paths_changed(ws.repo, commit.id) == ["tenants/acme/scheduler.yaml"]
    assert support.replicas(ws.repo, "acme") == 6
    again = support.ok(ws.run())
    assert support.head(ws.repo) == commit.id
    assert again.splitlines()[-1] == "0 commits, 2 objects unchanged, 0 refused or failed"


def test_the_overwrite_annotation_restores_a_hand_edit_on_the_next_run(
        hand_edited: HandEdited) -> None:
    """With ``reconciler.ahoi.dev/on-human-change: overwrite`` on the Customer, the next run
    restores the rendering at once."""
    ws = hand_edited.ws
    ws.write(support.customer("acme", workers=6, database=True,
                              annotations={support.POLICY_ANNOTATION: "overwrite"}))

    support.ok(ws.run())

    [commit] = support.new_commits(ws.repo, hand_edited.edit)
    assert commit.trailers["Reconciler-Action"] == "restore"
    assert support.replicas(ws.repo, "acme") == 6


def test_the_global_overwrite_policy_restores_every_hand_edit(
        hand_edited: HandEdited, tmp_path: Path) -> None:
    """``human_change_policy: overwrite`` in the --config file restores hand edits of every
    object on the next run, one commit each."""
    ws = hand_edited.ws
    human = ws.human(tmp_path / "human-2")
    edit = human.replace("tenants/beta/scheduler.yaml", "replicas: 1", "replicas: 3",
                         "beta: more replicas too")
    human.push()
    config = tmp_path / "settings.yaml"
    config.write_text("human_change_policy: overwrite\n")

    support.ok(ws.run("--config", config))

    commits = support.new_commits(ws.repo, edit)
    assert sorted(c.trailers["Reconciler-Object"] for c in commits) == [
        "customer/acme", "customer/beta"]
    assert {c.trailers["Reconciler-Action"] for c in commits} == {"restore"}
    assert (support.replicas(ws.repo, "acme"), support.replicas(ws.repo, "beta")) == (6, 1)


def test_a_reverted_removal_is_held(workspace: support.Workspace, tmp_path: Path) -> None:
    """When a human reverts the commit that removed a deleted Customer's directory, the next
    run leaves the directory as the human restored it."""
    (workspace.source / "beta.yaml").unlink()
    support.ok(workspace.run())
    human = workspace.human(tmp_path / "human")
    revert = human.revert("HEAD")
    human.push()

    support.ok(workspace.run())

    assert support.head(workspace.repo) == revert
