"""Pushing beside humans: human commits pushed while object changes flow are never lost, each
object change lands exactly once, the branch only moves forward, and edits of owned files
are reported."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from pathlib import Path

import pytest

from reconciler import app
from reconciler.adapters.gitremote import Credentials, MirrorConfigRepo
from reconciler.core.models import ObjectKey, Resource
from reconciler.core.sources import Parsed
from reconciler.ports.configrepo import PushResult
from reconciler.reconcile.delivery import Delivery, DeliveryReport
from reconciler.reconcile.engine import Reconciler
from tests import gitservers
from tests.delivery.support import (
    EXAMPLES,
    HumanClone,
    ReconcilerCli,
    customer,
    is_ancestor,
    record_ref_updates,
    ref_updates,
    served,
    served_object_changes,
)

# Object changes in the order they are committed; one push after each batch. Within a batch
# no object changes twice, so a re-render on a moved remote re-creates every change.
BATCHES = [
    [("shop-0", 1), ("shop-1", 1)],
    [("shop-2", 1), ("shop-0", 2)],
    [("shop-1", 2)],
    [("shop-2", 2), ("shop-1", 3)],
    [("shop-2", 3)],
]
# Push attempt (0-based) -> the human commit that lands on the server just before it.
HUMAN_PUSHES = {
    1: ("README", "first human edit\n", "docs: explain the layout"),
    4: ("tenants/shop-0/NOTES.md", "hand-written notes\n", "notes for shop-0"),
    6: ("README", "second human edit\n", "docs: fix a typo"),
}


def test_human_pushes_during_object_changes_are_kept_and_every_change_lands_once(
    daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Human pushes that land just before the reconciler's pushes stay in the history, every
    object change arrives exactly once on a linear, never-rewound branch, and the human's
    edit of a file the reconciler owns is reported."""
    server = daemon_git_server
    server.create_bare_repo("config")
    record_ref_updates(server, "config")
    settings = app.settings_from(None, environ={})
    mirror = MirrorConfigRepo.open_mirror(
        server.url_for("config"), tmp_path / "state", credentials=Credentials(),
        branch=settings.branch, author_name=settings.author_name,
        author_email=settings.author_email)
    engine = Reconciler(repo=mirror, settings=settings, version="race-test")
    desired: dict[str, Resource] = {}

    def rerender(_keys: list[ObjectKey]) -> None:
        engine.invalidate()
        engine.sync(Parsed(list(desired.values()), ()))

    delivery = Delivery(repo=mirror, window=0.0, on_rebase=rerender, sleep=lambda _s: None)
    human = HumanClone(server, "config", tmp_path / "human")
    human_commits: dict[str, str] = {}
    heads_seen = [server.head_of("config")]
    real_push = mirror.push
    attempts = itertools.count()

    def push_just_after_a_human() -> PushResult:
        attempt = next(attempts)
        if attempt in HUMAN_PUSHES:
            path, text, message = HUMAN_PUSHES[attempt]
            human_commits[path + message] = human.commit_and_push(path, text, message)
            heads_seen.append(server.head_of("config"))
        result = real_push()
        heads_seen.append(server.head_of("config"))
        return result

    monkeypatch.setattr(mirror, "push", push_just_after_a_human)
    reports: list[DeliveryReport] = []
    for batch in BATCHES:
        for name, generation in batch:
            desired[name] = customer(name, generation, f"{name} v{generation}")
            assert engine.apply(desired[name]).commit is not None
            delivery.committed()
        reports.append(delivery.deliver())

    assert [r.error for r in reports] == [None] * len(BATCHES)
    assert sum(r.rebases for r in reports) == len(HUMAN_PUSHES)
    assert mirror.pending() == []
    assert server.head_of("config") == mirror.head()
    for commit in human_commits.values():
        assert is_ancestor(server, "config", commit)
    expected = Counter((f"customer/{n}", str(g)) for batch in BATCHES for n, g in batch)
    assert served_object_changes(server, "config") == expected
    assert served(server, "config", "rev-list", "--merges", "main") == ""
    for head in heads_seen:
        assert head is not None and is_ancestor(server, "config", head)
    updates = ref_updates(server, "config")
    assert len(updates) == len(BATCHES) + len(HUMAN_PUSHES)  # one push per batch, never more
    for older, newer in itertools.pairwise(updates):
        assert is_ancestor(server, "config", older, newer), "main was rewound"
    foreign = [change for r in reports for change in r.foreign]
    notes_commit = human_commits["tenants/shop-0/NOTES.mdnotes for shop-0"]
    assert [(f.commit.id, f.paths) for f in foreign] == [
        (notes_commit, ("tenants/shop-0/NOTES.md",))]
    assert served(server, "config", "show", "main:README") == "second human edit"
    assert served(server, "config", "show", "main:tenants/shop-0/NOTES.md") == "hand-written notes"
    assert "shop-2 v3" in served(server, "config", "show", "main:tenants/shop-2/namespace.yaml")


def test_run_warns_about_a_human_edit_of_owned_files_that_won_the_race(
    daemon_git_server: gitservers.DaemonGitServer, cli: ReconcilerCli, tmp_path: Path
) -> None:
    """When a human's commit to tenants/<name>/ lands just before the run's push, the run
    re-renders on top of it, keeps it in the history, pushes its change once and warns on
    stderr."""
    server = daemon_git_server
    server.create_bare_repo("config")
    source = tmp_path / "resources"
    shutil.copytree(EXAMPLES, source)
    assert cli.run_once(server, "config", source=source).returncode == 0
    acme = source / "customers" / "acme.yaml"
    acme.write_text(acme.read_text().replace("ACME Corp", "ACME Corporation"))
    human = HumanClone(server, "config", tmp_path / "human")
    notes = human.commit("tenants/acme/NOTES.md", "hand-written notes\n", "notes for acme")
    human.push("HEAD:refs/humans/pending")  # the objects reach the server, main stays put
    hook = server.repo_path("config") / "hooks" / "pre-receive"
    # The human's push wins the race: main moves to their commit and ours is refused.
    hook.write_text("#!/bin/sh\ncat >/dev/null\n"
                    f"env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {notes} || exit 2\n"
                    'rm -f "$0"\nexit 1\n')
    hook.chmod(0o755)

    done = cli.run_once(server, "config", source=source, without_backoff=True)

    assert done.returncode == 0, done.stderr
    assert not hook.exists(), "the reconciler never pushed"
    assert (f"warning: commit {notes[:12]} by Human changed files the reconciler owns: "
            "tenants/acme/NOTES.md") in done.stderr
    assert "pushed 1 commits in 1 push(es) after 1 re-render(s)" in done.stdout
    assert is_ancestor(server, "config", notes)
    changes = served_object_changes(server, "config")
    assert changes[("customer/acme", "2")] == 1
