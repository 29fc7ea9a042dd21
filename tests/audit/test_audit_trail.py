"""``reconciler history`` and ``reconciler diff``: the whole story of one object (issue 5,
section 3), read against what ``git log`` and ``git diff`` say.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audit import support
from tests.audit.conftest import Reverted


def changed_lines(diff: str) -> dict[str, list[str]]:
    """file -> the removed and added lines of a unified diff (headers left out)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            current = line[4:].removeprefix("b/")
        elif line.startswith(("+", "-")) and not line.startswith("---"):
            out.setdefault(current, []).append(line)
    return out


@pytest.mark.parametrize("by", ["generation", "commit"])
def test_diff_shows_exactly_the_spec_change_between_two_points(
        story: support.Workspace, by: str) -> None:
    """``diff customer/acme 1 2`` (or the two commit ids) prints a unified diff of the
    rendered files: replicas 2 -> 4 in scheduler.yaml, and the source record's change."""
    gen1 = support.generation_commit(story.repo, "customer/acme", 1)
    gen2 = support.generation_commit(story.repo, "customer/acme", 2)
    a, b = ("1", "2") if by == "generation" else (gen1[:12], gen2)

    out = support.ok(story.cli("diff", "customer/acme", a, b))

    lines = changed_lines(out)
    assert set(lines) == {"tenants/acme/scheduler.yaml", "tenants/acme/.reconciler.json"}
    assert lines["tenants/acme/scheduler.yaml"] == ["-  replicas: 2", "+  replicas: 4"]
    assert "--- a/tenants/acme/scheduler.yaml\n+++ b/tenants/acme/scheduler.yaml\n" in out
    assert lines == changed_lines(support.git("--git-dir", story.repo, "diff", gen1, gen2,
                                              "--", "tenants/acme"))


def test_history_tells_the_whole_story_newest_first(reverted: Reverted, tmp_path: Path) -> None:
    """After a revert, hand edits (one merged from a branch), a rollback and a spec change,
    ``history -o json`` lists each of them newest first with its kind, who and generation."""
    ws = reverted.ws.copy_to(tmp_path)
    gens = [support.generation_commit(ws.repo, "customer/acme", g) for g in (2, 1)]
    human = ws.human(tmp_path / "human")
    edit = human.replace("tenants/acme/scheduler.yaml", "replicas: 4", "replicas: 5",
                         "acme: one more replica")
    support.git("switch", "--quiet", "-c", "notes", cwd=human.where)
    (human.where / "tenants/acme/NOTES.md").write_text("ask Hanna before scaling\n")
    support.git("add", "tenants/acme/NOTES.md", cwd=human.where)
    support.git("commit", "--quiet", "-m", "acme: notes", cwd=human.where)
    branch = support.git("rev-parse", "HEAD", cwd=human.where)
    support.git("switch", "--quiet", "main", cwd=human.where)
    support.git("merge", "--quiet", "--no-ff", "--no-edit", "notes", cwd=human.where)
    merge = support.git("rev-parse", "HEAD", cwd=human.where)
    human.push()
    support.ok(ws.cli("rollback", "customer/acme", "--to", "1"))
    rollback = support.head(ws.repo)
    ws.write(support.customer("acme", workers=8, database=True))
    support.ok(ws.run())
    update = support.head(ws.repo)

    entries = ws.history("customer/acme")

    assert [(e["commit"], e["kind"], e["who"]) for e in entries] == [
        (update, "reconciler", support.BOT),
        (rollback, "rollback", support.BOT),
        (merge, "merge", support.HUMAN),
        (branch, "edit", support.HUMAN),
        (edit, "edit", support.HUMAN),
        (reverted.revert, "revert", support.HUMAN),
        (reverted.reverted, "reconciler", support.BOT),
        (gens[0], "reconciler", support.BOT),
        (gens[1], "reconciler", support.BOT),
    ]
    assert [e["generation"] for e in entries[5:]] == [None, 3, 2, 1]
    assert entries[1]["generation"] == 1
    assert entries[0]["detail"] == f"update, supersedes {rollback[:12]}"
    assert entries[1]["detail"] == f"to {gens[1][:12]}"
    assert [e["subject"] for e in entries] == [
        support.git("--git-dir", ws.repo, "log", "-1", "--format=%s", e["commit"])
        for e in entries]
