"""Hostile repository content: whatever a human commits into the config repo affects at most
the object it sits in — every other object is still committed, nothing is written outside
the repository, and no command ends in a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from tests.chaos.support import (
    commit_entries,
    copy_examples,
    fsck,
    no_traceback,
    reconciler,
    seeded,
    tree_paths,
    write_customer,
)
from tests.gitcli import git


def test_deeply_nested_source_record_stops_nobody(tmp_path: Path) -> None:
    """A human's tenants/evil/.reconciler.json of 5,000 nested '[' does not stop the pass: a
    changed Customer is still committed."""
    sources, repo = seeded(tmp_path)
    commit_entries(repo, {b"tenants/evil/.reconciler.json": ("100644", b"[" * 5000)},
                   "evil nesting")
    write_customer(sources, "acme", 5)

    done = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert no_traceback(done), done.stderr
    assert done.returncode == 0, done.stderr
    assert "workers: 5" in git(repo, "show", "main:tenants/acme/scheduler.yaml").replace(
        "replicas: 5", "workers: 5")
    assert fsck(repo) == ""


def test_name_that_is_not_utf8_in_a_large_tenants_tree_stops_nobody(tmp_path: Path) -> None:
    """A directory whose name is not UTF-8 among 300 human directories in tenants/ (the large
    tree path) leaves every tenant committable; the entry survives byte for byte."""
    sources, repo = seeded(tmp_path)
    entries = {f"tenants/filler-{i:03}/NOTES".encode(): ("100644", b"x\n") for i in range(300)}
    entries[b"tenants/\xff\xfebad/NOTES"] = ("100644", b"not utf-8\n")
    commit_entries(repo, entries, "many directories, one with a raw name")
    write_customer(sources, "fresh", 2)
    write_customer(sources, "acme", 3)

    done = reconciler("run", "--source", str(sources), "--repo", str(repo), "--once")

    assert no_traceback(done), done.stderr
    assert done.returncode == 0, done.stderr
    names = git(repo, "-c", "core.quotePath=true", "ls-tree", "--name-only", "main:tenants")
    assert '"\\377\\376bad"' in names.splitlines()
    assert {"fresh", "acme", "filler-299"} <= set(names.splitlines())
    assert fsck(repo) == ""


def test_odd_generation_trailer_by_a_human_does_not_break_history(tmp_path: Path) -> None:
    """A human commit with ``Reconciler-Generation: ²`` naming an object: ``history`` lists
    it without a generation instead of crashing."""
    _sources, repo = seeded(tmp_path)
    commit_entries(repo, {b"tenants/acme/NOTES": ("100644", b"hi\n")},
                   "notes\n\nReconciler-Object: customer/acme\nReconciler-Generation: \u00b2\n")

    done = reconciler("history", "customer/acme", "--repo", str(repo), "-o", "json")

    assert no_traceback(done), done.stderr
    assert done.returncode == 0, done.stderr
    assert any(r["generation"] is None for r in json.loads(done.stdout))  # a number or null


def test_symlinks_committed_by_a_human_are_never_written_through(tmp_path: Path) -> None:
    """In a config repo with a work tree, symlinks committed at tenants/acme and
    platform/pgbouncer pointing outside make those writes refused in one line each; nothing
    appears outside the repository and the Previews are still committed."""
    sources = copy_examples(tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "config"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    (work / "README").write_text("config\n")
    git(work, "add", "README")
    git(work, "commit", "--quiet", "-m", "start")
    commit_entries(work / ".git", {
        b"tenants/acme": ("120000", str(outside).encode()),
        b"platform/pgbouncer": ("120000", str(outside).encode()),
    }, "links")
    git(work, "reset", "--quiet", "--hard", "main")
    assert (work / "tenants" / "acme").is_symlink()

    done = reconciler("run", "--source", str(sources), "--repo", str(work), "--once")

    assert no_traceback(done), done.stderr
    assert list(outside.iterdir()) == []
    assert "symbolic link" in done.stderr
    paths = tree_paths(work / ".git")
    assert "previews/billing-fix-invoices/kustomization.yaml" in paths
    assert "previews/campaigns-feat-xyz/kustomization.yaml" in paths
    assert "tenants/acme" in paths  # still the human's link, not replaced behind their back
    assert (work / "tenants" / "acme").is_symlink()
    assert fsck(work / ".git") == ""
