"""A restart over a fleet the reconciler wrote: which old trees it reads, and what it still
notices (a human's edit or revert, a merge, a lost index, a reset branch).

A real bare repository; the git CLI plays the human. The counted calls are the ones that
read an old commit's trees (each parses a whole ``tenants/`` tree at fleet size): a
restart over an unchanged fleet needs none of them, a hand-edited object one.
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters import touchindex
from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core.outcomes import Reason, Result
from reconciler.core.render import common
from reconciler.core.settings import Settings
from reconciler.reconcile.engine import Reconciler
from tests.gitcli import git, human_commit
from tests.reconcile.test_engine import BRANCH, VERSION, customer, parsed, show

SETTINGS = Settings()  # its author is the writer's: the history is the reconciler's own
NAMES = [f"c{i:02d}" for i in range(12)]


#: the calls that read an old commit's trees
OLD_TREE_READS = ("tree_id_at", "files_at", "commits_touching")


class CountingRepo:
    """A GitConfigRepo that counts the calls named ``counted`` (by default, those reading
    an old commit's trees)."""

    def __init__(self, repo: GitConfigRepo, counted: tuple[str, ...] = OLD_TREE_READS) -> None:
        self.repo = repo
        self.counted = counted
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.repo, name)
        if name not in self.counted:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)
        return counted


def open_repo(bare: Path, branch: str = BRANCH) -> GitConfigRepo:
    """The reconciler's writer on ``bare`` (a freshly started process)."""
    return GitConfigRepo.open(bare, branch=branch, author_name=SETTINGS.author_name,
                              author_email=SETTINGS.author_email)


def restart(bare: Path) -> tuple[Reconciler, CountingRepo]:
    """A fresh reconciler on ``bare`` whose old-tree reads are counted."""
    counting = CountingRepo(open_repo(bare))
    return Reconciler(repo=counting, settings=SETTINGS, version=VERSION), counting  # type: ignore[arg-type]


def fleet(workers: dict[str, int]) -> list[Any]:
    """The Customers, ``workers`` overriding the default of one."""
    return [customer(name, workers=workers.get(name, 1)) for name in NAMES]


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A repository the reconciler imported a fleet into, then changed three of them in
    own commits (so objects' last own commits differ)."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", BRANCH, str(path))
    engine = Reconciler(repo=open_repo(path), settings=SETTINGS, version=VERSION)
    engine.sync(parsed(*fleet({})))
    for name in ("c01", "c05", "c09"):
        assert engine.apply(customer(name, workers=3)).result == Result.COMMITTED
    return path


CHANGED = {"c01": 3, "c05": 3, "c09": 3}


def test_a_restart_over_an_unchanged_fleet_reads_no_old_tree_and_writes_nothing(bare):
    """Every object's last own commit is the newest change of its directory: the head's
    directory is taken as ours, no old commit's tree is read and nothing is committed."""
    tip = git(bare, "rev-parse", BRANCH)
    engine, counting = restart(bare)
    report = engine.sync(parsed(*fleet(CHANGED)))
    assert report.commits == []
    assert all(o.result == Result.UNCHANGED for o in report.outcomes), report.outcomes
    assert counting.calls == Counter()
    assert git(bare, "rev-parse", BRANCH) == tip


def test_a_restart_reads_the_branch_head_a_few_times_not_once_per_object(bare, monkeypatch):
    """A pass reads its snapshot at one head: the branch's reference (a file read each
    time) is looked up a fixed number of times, however many objects the fleet has."""
    lookups = Counter[str]()
    real_lookup = GitConfigRepo._branch_head

    def counted(self: GitConfigRepo) -> str | None:
        lookups["head"] += 1
        return real_lookup(self)
    monkeypatch.setattr(GitConfigRepo, "_branch_head", counted)
    engine, _ = restart(bare)
    assert engine.sync(parsed(*fleet(CHANGED))).commits == []
    assert lookups["head"] <= 6 < len(NAMES)


def test_a_snapshot_record_carries_every_field_of_the_record_file(bare):
    """The source record a snapshot keeps (its spec read again on demand) says what the
    record file says, field for field."""
    engine, _ = restart(bare)
    state = engine.snapshot(parsed(*fleet(CHANGED))).state(customer("c05").key)
    assert_record_is_the_file(bare, state, "c05")


def assert_record_is_the_file(bare: Path, state: Any, name: str) -> None:
    """``state``'s source record equals tenant ``name``'s record file at the head."""
    raw = git(bare, "show", f"{BRANCH}:tenants/{name}/{common.SOURCE_FILE}").encode()
    on_disk = common.parse_source_record(raw)
    assert state.record is not None and on_disk is not None
    assert dataclasses.replace(state.record, spec=None) == dataclasses.replace(on_disk, spec=None)
    assert dict(state.record.spec or {}) == on_disk.spec


def test_a_hand_edit_before_a_restart_is_held_and_only_its_old_tree_is_read(bare):
    """A human edits one tenant, then the reconciler commits another: after a restart the
    edit is held (named, not overwritten) and only that tenant's old tree is read."""
    edit = human_commit(bare, {"tenants/c03/scheduler.yaml": b"# mine now\n"}, "tune c03")
    Reconciler(repo=open_repo(bare), settings=SETTINGS, version=VERSION).apply(
        customer("c07", workers=5))
    engine, counting = restart(bare)
    report = engine.sync(parsed(*fleet({**CHANGED, "c07": 5})))
    assert report.commits == []
    held = [o for o in report.outcomes if o.result == Result.HELD]
    assert [(str(o.key), o.reason) for o in held] == [("customer/c03", Reason.MODIFIED_IN_GIT)]
    assert edit[:12] in held[0].message
    assert counting.calls["commits_touching"] == 0
    assert counting.calls["tree_id_at"] + counting.calls["files_at"] <= 2
    assert show(bare, "tenants/c03/scheduler.yaml") == "# mine now"


def test_a_revert_of_our_commit_is_held_after_a_restart(bare):
    """``git revert`` of the reconciler's commit for one tenant stands after a restart."""
    ours = git(bare, "log", "-1", "--format=%H", "--", "tenants/c05")
    revert_commit(bare, ours)
    engine, _ = restart(bare)
    report = engine.sync(parsed(*fleet(CHANGED)))
    assert report.commits == []
    held = [o for o in report.outcomes if o.result == Result.HELD]
    assert [(str(o.key), o.reason) for o in held] == [("customer/c05", Reason.REVERTED_IN_GIT)]


@pytest.mark.parametrize("damage", ["missing", "garbage", "torn", "foreign"])
def test_a_lost_or_damaged_index_is_rebuilt_and_a_hand_edit_still_seen(bare, damage):
    """Without a trustworthy changed-directories index (deleted, garbage, a half-written
    line, lines of another repository) a restart diffs the commits again, writes the index
    back and still holds the hand edit."""
    edit = human_commit(bare, {"tenants/c03/scheduler.yaml": b"# mine now\n"}, "tune c03")
    path = bare / touchindex.FILE_NAME
    text = path.read_text()
    damaged = {"missing": None, "garbage": "\x00\xffnot an index\n",
               "torn": "".join(line[:50] + "\n" for line in text.splitlines()),
               "foreign": "".join(f"{'f' * 40} tenants/x\t.\n" for _ in range(3))}[damage]
    path.unlink()
    if damaged is not None:
        path.write_text(damaged)
    engine, _ = restart(bare)
    report = engine.sync(parsed(*fleet(CHANGED)))
    assert report.commits == []
    held = [o for o in report.outcomes if o.result == Result.HELD]
    assert [str(o.key) for o in held] == ["customer/c03"] and edit[:12] in held[0].message
    index = touchindex.load(path)
    assert set(git(bare, "rev-list", BRANCH).split()) <= set(index)
    assert index[edit] == frozenset({"tenants/c03"})


def test_a_human_commit_reaching_a_running_reconciler_is_held(bare):
    """A human commit landing between two changes of a running reconciler is noticed on the
    next change of that object (the first-parent line is extended, not trusted stale)."""
    engine = Reconciler(repo=open_repo(bare), settings=SETTINGS, version=VERSION)
    engine.sync(parsed(*fleet(CHANGED)))
    assert engine.apply(customer("c02", workers=4)).result == Result.COMMITTED
    edit = human_commit(bare, {"tenants/c02/scheduler.yaml": b"# mine now\n"}, "tune c02")
    outcome = engine.apply(customer("c02", workers=4))
    assert (outcome.result, outcome.reason) == (Result.HELD, Reason.MODIFIED_IN_GIT)
    assert edit[:12] in outcome.message


def test_our_commit_merged_from_another_branch_is_ours_after_a_restart(bare):
    """The reconciler's commit that reached the branch through a merge commit (a pull
    request) is not a human change: nothing is held and nothing committed."""
    git(bare, "branch", "pr", BRANCH)
    side = Reconciler(repo=open_repo(bare, "pr"), settings=SETTINGS, version=VERSION)
    assert side.apply(customer("c04", workers=7)).result == Result.COMMITTED
    main, pr = git(bare, "rev-parse", BRANCH), git(bare, "rev-parse", "pr")
    human_commit(bare, {"NOTES.md": b"unrelated\n"})  # main moved on meanwhile
    main = git(bare, "rev-parse", BRANCH)
    tree = merged_tree(bare, main, pr)
    merge = git(bare, "commit-tree", tree, "-p", main, "-p", pr, "-m", "Merge pull request #1")
    git(bare, "update-ref", f"refs/heads/{BRANCH}", merge)
    engine, _ = restart(bare)
    report = engine.sync(parsed(*fleet({**CHANGED, "c04": 7})))
    assert report.commits == []
    assert all(o.result == Result.UNCHANGED for o in report.outcomes), report.outcomes


def test_a_branch_reset_under_a_running_reconciler_still_shows_the_humans_change(bare):
    """The branch is reset to before the reconciler's last commit and a human commits on
    top: the running reconciler rebuilds its view and holds the human's change."""
    engine = Reconciler(repo=open_repo(bare), settings=SETTINGS, version=VERSION)
    engine.sync(parsed(*fleet(CHANGED)))
    before = git(bare, "rev-parse", BRANCH)
    assert engine.apply(customer("c06", workers=6)).result == Result.COMMITTED
    git(bare, "update-ref", f"refs/heads/{BRANCH}", before)
    edit = human_commit(bare, {"tenants/c06/scheduler.yaml": b"# mine now\n"}, "tune c06")
    outcome = engine.apply(customer("c06", workers=6))
    assert (outcome.result, outcome.reason) == (Result.HELD, Reason.MODIFIED_IN_GIT)
    assert edit[:12] in outcome.message


# -- the git CLI as a human uses it --------------------------------------------------------


def revert_commit(bare: Path, commit: str) -> str:
    """A ``git revert``-style commit of ``commit`` on top of the branch (plumbing)."""
    parent = f"{commit}^"
    changed = git(bare, "diff-tree", "-r", "--no-commit-id", "--name-only", commit).split()
    files: dict[str, bytes | None] = {}
    for path in changed:
        listed = git(bare, "ls-tree", parent, "--", path)
        files[path] = raw_blob(bare, f"{parent}:{path}") if listed else None
    subject = git(bare, "log", "-1", "--format=%s", commit)
    return human_commit(bare, files, f'Revert "{subject}"\n\nThis reverts commit {commit}.')


def raw_blob(bare: Path, spec: str) -> bytes:
    """A file's exact bytes (``git`` strips its output)."""
    return subprocess.run(["git", "-C", str(bare), "cat-file", "blob", spec],
                          capture_output=True, check=True).stdout


def merged_tree(bare: Path, ours: str, theirs: str) -> str:
    """The tree of merging ``theirs`` into ``ours`` (no conflicts expected)."""
    return git(bare, "merge-tree", "--write-tree", ours, theirs).splitlines()[0]


@pytest.mark.parametrize("damage", ["flipped-byte", "emptied", "truncated", "torn-tail"])
def test_a_damaged_line_of_the_index_never_hides_a_hand_edit_seen_before(bare, damage):
    """The index already holds the hand edit's line; one byte flipped in it (naming another
    tenant), its directories cut away, the file cut mid-line, or a half-written line
    that the next append continues: the next restart still holds the edit, never writes
    over it, and the index is sound again afterwards."""
    edit = human_commit(bare, {"tenants/c03/scheduler.yaml": b"# mine now\n"}, "tune c03")
    engine, _ = restart(bare)
    assert [o.key.name for o in engine.sync(parsed(*fleet(CHANGED))).outcomes
            if o.result == Result.HELD] == ["c03"]
    path = bare / touchindex.FILE_NAME
    raw = path.read_bytes()
    start = raw.index(edit.encode())
    end = raw.index(b"\n", start) + 1
    line = raw[start:end]
    if damage == "flipped-byte":
        path.write_bytes(raw[:start] + line.replace(b"tenants/c03", b"tenants/c13") + raw[end:])
    elif damage == "emptied":
        path.write_bytes(raw[:start] + line[:line.rindex(b" ") + 1] + b".\n" + raw[end:])
    else:  # cut mid-line at the end of the file
        path.write_bytes(raw[:start] + raw[end:] + line[:60])
    if damage == "torn-tail":  # another writer appends right after the torn line
        touchindex.append(path, [("e" * 40, ["tenants/c07"])])

    engine, _ = restart(bare)
    report = engine.sync(parsed(*fleet(CHANGED)))

    assert report.commits == []
    held = [o for o in report.outcomes if o.result == Result.HELD]
    assert [str(o.key) for o in held] == ["customer/c03"] and edit[:12] in held[0].message
    assert show(bare, "tenants/c03/scheduler.yaml") == "# mine now"
    index = touchindex.load(path)
    assert index[edit] == frozenset({"tenants/c03"})
    assert len(index) == path.read_bytes().count(b"\n")  # damaged lines are gone
