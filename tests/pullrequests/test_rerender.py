"""``run --mode pr``: a settings change re-renders every unchanged spec in one pull request
(issue 12, item 7), beside the objects' own pull requests.

The settings change is a new ``--config`` file (domain, image); the remote is a ``git daemon``
repository whose main holds ``examples/`` (3 tenants, 2 previews) and the settings record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import BRANCH, ForgeUnderTest, Remote, Workspace

GITHUB = pytest.mark.parametrize("forge", ["github"], indirect=True)
DOMAIN = "rerender: domain example.com -> apps.example.org (2 tenants, 1 preview)"


def config(where: Path, text: str) -> Path:
    """A settings file holding ``text``; billing-fix-invoices' own host stays allowed."""
    where.write_text(text + "preview_host_patterns: ['preview-*.{domain}', '*.example.com']\n")
    return where


def rerender_branches(remote: Remote) -> list[str]:
    return sorted(b for b in remote.branches() if b.startswith("reconciler/rerender/"))


def objects_in(remote: Remote, branch: str) -> set[str]:
    """Every object the Reconciler-Object trailers of ``branch``'s own commits name."""
    return {line.split(": ", 1)[1] for commit in remote.commits_on_top(branch)
            for line in remote.trailers(commit) if line.startswith("Reconciler-Object: ")}


def test_a_settings_change_is_one_pull_request_of_bounded_batches(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A new domain with rerender_batch 2: one PR from reconciler/rerender/… titled with
    what changed, holding the batch commits on main, labelled like other PRs; no PR of any
    object's own; a second run moves nothing and writes nothing on the forge."""
    main_before = remote.head()
    settings = config(tmp_path / "s.yaml", "domain: apps.example.org\nrerender_batch: 2\n")

    out = support.ok(workspace.run(forge, "--config", settings))

    assert remote.head() == main_before
    [branch] = rerender_branches(remote)
    assert remote.branches() == {BRANCH, branch}
    commits = remote.commits_on_top(branch)
    assert len(commits) == 2
    assert remote.parents(commits[-1]) == [main_before]
    assert [remote.subject(c) for c in reversed(commits)] == [
        "rerender: domain example.com -> apps.example.org (2 tenants, batch 1/2)",
        "rerender: domain example.com -> apps.example.org (1 preview, batch 2/2)"]
    assert "apps.example.org" in remote.show(".reconciler/settings.json", branch)
    assert "preview-campaigns-feat-xyz.apps.example.org" in remote.show(
        "previews/campaigns-feat-xyz/app.yaml", branch)
    [pull] = forge.pulls()
    assert (pull.state, pull.head, pull.base, pull.title) == ("open", branch, BRANCH, DOMAIN)
    assert set(pull.labels) == {"gitops-reconciler", "customer", "preview"}
    assert "- domain: example.com -> apps.example.org" in pull.body
    assert "re-rendered 2 tenants, 1 preview in 2 commits" in pull.body
    assert "customer/acme" in pull.body and "preview/campaigns-feat-xyz" in pull.body
    proposed = [line for line in out.splitlines() if line.startswith("proposed")]
    assert len(proposed) == 3 and all(DOMAIN in line for line in proposed), out
    # their own host, no domain: nothing deployed changes, so no commit names them
    assert "billing-fix-invoices" not in pull.body and "small-shop" not in pull.body
    writes, head = forge.writes(), remote.head(branch)

    support.ok(workspace.run(forge, "--config", settings))

    assert forge.writes() == writes
    assert remote.head(branch) == head and remote.branches() == {BRANCH, branch}


@GITHUB
def test_a_spec_change_during_an_open_rerender_gets_its_own_pull_request_and_survives_it(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """acme's workers change while the re-render PR is open: acme gets its own PR (its change
    rendered with the new domain) and leaves the re-render PR; after both merge, in either
    order, main holds acme's new workers and the new domain everywhere."""
    settings = config(tmp_path / "s.yaml", "domain: apps.example.org\n")
    support.ok(workspace.run(forge, "--config", settings))
    [branch] = rerender_branches(remote)
    workspace.set_feature("acme", "scheduler", workers=3)

    support.ok(workspace.run(forge, "--config", settings))

    acme = "reconciler/customer/acme"
    assert remote.branches() == {BRANCH, branch, acme}
    assert "replicas: 3" in remote.show("tenants/acme/scheduler.yaml", acme)
    assert "acme.hooks.apps.example.org" in remote.show("tenants/acme/webhooks.yaml", acme)
    assert "customer/acme" not in objects_in(remote, branch)
    assert objects_in(remote, branch) >= {"customer/big-client-0815",
                                          "preview/campaigns-feat-xyz"}
    rerender_pull = next(p for p in forge.open_pulls() if p.head == branch)
    assert "customer/acme" not in rerender_pull.body

    merge = remote.merge(branch, tmp_path / "m1", f"Merge #{rerender_pull.number}")
    forge.fake.merge(rerender_pull.number, merge)
    support.ok(workspace.run(forge, "--config", settings))

    assert [p.head for p in forge.open_pulls()] == [acme]
    assert remote.branches() == {BRANCH, acme}  # the merged re-render branch is retired
    assert remote.parents(remote.head(acme)) == [remote.head()]
    [acme_pull] = forge.open_pulls()
    merge = remote.merge(acme, tmp_path / "m2", f"Merge #{acme_pull.number}")
    forge.fake.merge(acme_pull.number, merge)
    out = support.ok(workspace.run(forge, "--config", settings))

    assert forge.open_pulls() == [] and remote.branches() == {BRANCH}
    assert out.splitlines()[-1].startswith("0 commits, 5 objects unchanged")
    assert "replicas: 3" in remote.show("tenants/acme/scheduler.yaml")
    assert "acme.hooks.apps.example.org" in remote.show("tenants/acme/webhooks.yaml")


@GITHUB
def test_a_newer_settings_change_updates_the_same_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """Domain A proposed, then domain B before the merge: the same branch and PR now say
    example.com -> B, and the branch holds B only."""
    support.ok(workspace.run(forge, "--config", config(tmp_path / "a.yaml",
                                                       "domain: a.example.org\n")))
    [branch] = rerender_branches(remote)
    [first] = forge.pulls()

    support.ok(workspace.run(forge, "--config", config(tmp_path / "b.yaml",
                                                       "domain: b.example.org\n")))

    assert rerender_branches(remote) == [branch]
    [pull] = forge.pulls()
    assert (pull.number, pull.state) == (first.number, "open")
    assert pull.title.startswith("rerender: domain example.com -> b.example.org")
    [commit] = remote.commits_on_top(branch)
    assert remote.parents(commit) == [remote.head()]
    assert "b.example.org" in remote.show("tenants/acme/webhooks.yaml", branch)


@GITHUB
def test_a_persons_commit_on_the_rerender_branch_is_kept_when_a_newer_change_lands(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """Someone pushes a commit onto the open re-render branch; a newer settings change then
    goes on top of it (a fast-forward, not a force-push): their commit stays on the branch."""
    support.ok(workspace.run(forge, "--config", config(tmp_path / "a.yaml",
                                                       "domain: a.example.org\n")))
    [branch] = rerender_branches(remote)
    clone = remote.clone(tmp_path / "human")
    support.git("fetch", "--quiet", "origin", branch, cwd=clone)
    support.git("checkout", "--quiet", "-b", "work", "FETCH_HEAD", cwd=clone)
    (clone / "NOTES.md").write_text("checked the new domain with DNS\n")
    support.git("add", "NOTES.md", cwd=clone)
    support.git("commit", "--quiet", "-m", "notes: DNS checked", cwd=clone, env=support.HUMAN)
    support.git("push", "--quiet", "origin", f"HEAD:{branch}", cwd=clone)
    human = support.git("rev-parse", "HEAD", cwd=clone)

    out = support.ok(workspace.run(forge, "--config", config(tmp_path / "b.yaml",
                                                             "domain: b.example.org\n")))

    tip = remote.head(branch)
    assert tip != human, out
    remote.git("merge-base", "--is-ancestor", human, tip)
    assert remote.show("NOTES.md", branch) == "checked the new domain with DNS"
    assert "b.example.org" in remote.show("tenants/acme/webhooks.yaml", branch)
    [pull] = forge.pulls()
    assert pull.state == "open" and "b.example.org" in pull.title


@GITHUB
def test_a_closed_rerender_pull_request_is_not_reopened_until_the_settings_change_again(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A reviewer closes the re-render PR unmerged: later runs open no PR (of the group or
    any object) and say it was declined; a different settings change is proposed anew."""
    settings = config(tmp_path / "a.yaml", "domain: a.example.org\n")
    support.ok(workspace.run(forge, "--config", settings))
    [declined] = forge.pulls()
    forge.fake.close(declined.number)

    for _ in range(2):
        out = support.ok(workspace.run(forge, "--config", settings))
        assert [p.number for p in forge.pulls()] == [declined.number]
        assert out.count("was declined") == 5, out
        assert not any(b.startswith("reconciler/customer/") for b in remote.branches())

    support.ok(workspace.run(forge, "--config", config(tmp_path / "b.yaml",
                                                       "domain: b.example.org\n")))

    [newer] = forge.open_pulls()
    assert newer.number != declined.number and "b.example.org" in newer.title


@GITHUB
def test_a_setting_that_changes_no_rendered_file_makes_no_commit_and_no_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A database pin for a PostgreSQL version no tenant runs changes only the records' input
    hashes: no branch, no PR, main untouched."""
    main_before = remote.head()
    settings = config(tmp_path / "pin.yaml", "images:\n  database_pins:\n    '9': "
                      f"docker.io/library/postgres:9@sha256:{'a' * 64}\n")

    support.ok(workspace.run(forge, "--config", settings))

    assert forge.pulls() == [] and remote.branches() == {BRANCH}
    assert remote.head() == main_before


@GITHUB
def test_a_refused_rerender_push_fails_the_run_and_the_next_run_proposes_it(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest, tmp_path: Path) -> None:
    """A hook refuses the re-render branch: the run fails naming the push, opens no PR (of
    the group or any object); once the hook is gone the next run opens the one PR."""
    hook = remote.git_dir / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in\n"
                    "  refs/heads/reconciler/rerender/*) echo 'no re-renders today'; exit 1;;\n"
                    "esac; done\n")
    hook.chmod(0o755)
    settings = config(tmp_path / "s.yaml", "domain: apps.example.org\n")

    done = workspace.run(forge, "--config", settings)

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "push of reconciler/rerender/" in done.stdout + done.stderr
    assert forge.pulls() == [] and remote.branches() == {BRANCH}

    hook.unlink()
    support.ok(workspace.run(forge, "--config", settings))

    [pull] = forge.pulls()
    assert pull.head.startswith("reconciler/rerender/") and pull.state == "open"
