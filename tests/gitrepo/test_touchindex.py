"""The changed-directories index and the first-parent line built from it: what a commit
changed agrees with the git CLI, and the line follows the branch as it moves.

Real repositories; the git CLI writes the awkward commits (type changes, nested trees, a
merge) and says what each commit changed.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.adapters import touchindex
from reconciler.core.plan import ChangeSet
from tests.gitcli import git, human_commit
from tests.gitrepo.test_writer import init_bare, open_repo


def cli_dirs(bare: Path, commit: str) -> frozenset[str]:
    """Directories of the files ``commit`` changed against its first parent, per git (the
    top directory left out: the index does not record it, no object lives there)."""
    names = git(bare, "diff-tree", "-r", "--root", "-m", "--first-parent", "--no-commit-id",
                "--name-only", commit).split("\n")
    return frozenset(name.rpartition("/")[0] for name in names if "/" in name)


def test_changed_directories_agree_with_git_for_every_kind_of_change(tmp_path):
    """Adding, editing, deleting, nested trees, a file replacing a directory and back, a
    commit changing nothing and the root commit: the index, rebuilt by diffing, names the
    directories git names."""
    bare = init_bare(tmp_path / "config.git")
    repo = open_repo(bare)
    commits = [repo.commit(ChangeSet({"tenants/a/x.yaml": b"1\n", "tenants/b/x.yaml": b"1\n",
                                      "README.md": b"hi\n"}), "root")]
    commits.append(human_commit(bare, {"tenants/a/x.yaml": b"2\n"}))
    commits.append(human_commit(bare, {"tenants/c/deep/er/y.yaml": b"1\n"}))
    commits.append(human_commit(bare, {"tenants/b/x.yaml": None}))
    commits.append(human_commit(bare, {"tenants/c/deep/er/y.yaml": None,
                                       "tenants/c/deep": b"now a file\n"}))
    commits.append(human_commit(bare, {"tenants/c/deep": None,
                                       "tenants/c/deep/z.yaml": b"a directory again\n"}))
    commits.append(human_commit(bare, {"README.md": b"hi\n", "tenants/a/x.yaml": b"2\n"}))
    (bare / touchindex.FILE_NAME).unlink()
    fresh = open_repo(bare)
    for commit in commits:
        fresh.touches(commit, "tenants")  # diffs the commit and adds it to the index
    index = touchindex.load(bare / touchindex.FILE_NAME)
    for commit in commits:
        assert index[commit] == cli_dirs(bare, commit), commit


def test_the_first_parent_line_follows_the_branch_as_it_moves(tmp_path):
    """Our commits extend the line one by one, a human's commit is seen, and a branch reset
    to an older commit rebuilds it: what changed after a commit is answered right each time."""
    bare = init_bare(tmp_path / "config.git")
    repo = open_repo(bare)
    first = repo.commit(ChangeSet({"tenants/a/x.yaml": b"1\n", "tenants/b/x.yaml": b"1\n"}), "1")
    assert repo.changed_after("tenants/a", first) is False
    second = repo.commit(ChangeSet({"tenants/b/x.yaml": b"2\n"}), "2")
    assert repo.changed_after("tenants/a", first) is False
    assert repo.changed_after("tenants/b", first) is True
    assert repo.changed_after("tenants/b", second) is False
    human = human_commit(bare, {"tenants/a/x.yaml": b"human\n"})
    assert repo.changed_after("tenants/a", second) is True
    assert repo.last_change("tenants/a") == human
    assert repo.last_change("tenants") == human
    git(bare, "update-ref", "refs/heads/main", first)
    assert repo.changed_after("tenants/a", first) is False
    assert repo.changed_after("tenants/b", second) is None  # no longer on the line
    assert repo.last_change("tenants/b") == first
