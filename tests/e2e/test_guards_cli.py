"""End to end, the guards and input hygiene of issue 8: the real ``reconciler`` command on
real files and repositories refuses what the cluster would reject or what destroys data,
and never lets an unreadable file remove anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_cli import (
    BRANCH,
    EXAMPLE_DIRS,
    EXAMPLES,
    assert_user_error_output,
    edit_yaml,
    features,
    git,
    head,
    new_commits,
    object_dirs,
    reconciler,
    trailers,
)


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """examples/ reconciled once into a new repository (copied by each test)."""
    base = tmp_path_factory.mktemp("guards")
    source, repo = base / "examples", base / "config.git"
    shutil.copytree(EXAMPLES, source)
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 0, proc.stderr
    return source, repo


@pytest.fixture
def ws(reconciled: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the reconciled examples: (source, repo)."""
    source, repo = tmp_path / "examples", tmp_path / "config.git"
    shutil.copytree(reconciled[0], source)
    shutil.copytree(reconciled[1], repo)
    return source, repo


def touched_objects(repo: Path, since: str) -> set[str]:
    """Objects named by the commits after ``since``."""
    return {dict(trailers(repo, c)).get("Reconciler-Object", "") for c in new_commits(repo, since)}


def test_a_storage_shrink_is_refused_in_one_line_and_the_rest_is_committed(ws):
    """acme 20Gi -> 10Gi: exit 1, one ``refused StorageShrink`` line with both sizes, no
    commit for acme; small-shop's change in the same run is committed; status says
    Refused."""
    source, repo = ws
    tip = head(repo)
    edit_yaml(source / "customers" / "acme.yaml",
              lambda d: features(d)["database"].update(storage="10Gi"))
    edit_yaml(source / "customers" / "small-shop.yaml",
              lambda d: features(d).update(scheduler={"enabled": True, "workers": 2}))
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 1
    lines = assert_user_error_output(proc)
    [refused] = [line for line in lines if line.startswith("refused")]
    assert "StorageShrink" in refused and "customer/acme" in refused and "20Gi -> 10Gi" in refused
    assert touched_objects(repo, tip) == {"customer/small-shop"}
    status = reconciler("status", "--source", source, "--repo", repo, "-o", "json")
    assert status.returncode == 1
    rows = {r["name"]: r for r in json.loads(status.stdout)}
    assert rows["acme"]["state"] == "Refused" and "StorageShrink" in rows["acme"]["message"]


def test_quota_overrun_and_disallowed_host_are_refused_by_run_and_render(ws, tmp_path):
    """60 workers against a 100-pod, 8-CPU quota and a Preview at www.example.com are each
    refused with their numbers or pattern, by ``run`` and by ``render`` alike (render
    writes exactly what run would commit)."""
    source, repo = ws
    edit_yaml(source / "customers" / "acme.yaml",
              lambda d: features(d)["scheduler"].update(workers=90))
    edit_yaml(source / "previews" / "billing-fix-invoices.yaml",
              lambda d: d["spec"].update(host="www.example.com"))
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 1
    text = "\n".join(assert_user_error_output(proc))
    assert "QuotaExceeded" in text and "scheduler 90x100m" in text
    assert "HostNotAllowed" in text and "www.example.com" in text
    out = tmp_path / "rendered"
    render = reconciler("render", source, "--out", out)
    assert render.returncode == 1
    assert "www.example.com" in render.stderr and "quota" in render.stderr
    assert not (out / "previews" / "billing-fix-invoices").exists()
    assert not (out / "tenants" / "acme").exists()
    assert (out / "tenants" / "small-shop" / "namespace.yaml").exists()


def test_a_dangling_symlink_removes_nothing(ws):
    """A Customer file replaced by a dangling symlink: one line naming it, exit 1, and its
    directory is not removed (nothing is committed)."""
    source, repo = ws
    tip = head(repo)
    acme = source / "customers" / "acme.yaml"
    acme.unlink()
    acme.symlink_to(source / "customers" / "moved-away.yaml")
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 1
    text = "\n".join(assert_user_error_output(proc))
    assert f"{acme}: dangling symlink" in text
    assert head(repo) == tip and object_dirs(repo) == EXAMPLE_DIRS


def test_an_oversized_file_is_refused_unread_and_removes_nothing(ws):
    """A file over the size limit (here 2 KiB by environment) is refused without parsing
    and blocks removals in that pass."""
    source, repo = ws
    tip = head(repo)
    (source / "customers" / "small-shop.yaml").unlink()
    (source / "fleet.yaml").write_text("# padding\n" * 400)
    proc = reconciler("run", "--source", source, "--repo", repo, "--once",
                      env={"RECONCILER_MAX_SOURCE_FILE_BYTES": "2048"})
    assert proc.returncode == 1
    text = "\n".join(assert_user_error_output(proc))
    assert "fleet.yaml" in text and "max_source_file_bytes" in text
    assert head(repo) == tip and "tenants/small-shop" in object_dirs(repo)


def test_non_resource_files_are_kept_out_by_default_and_by_reconcilerignore(ws):
    """kustomization.yaml and renovate.json next to the resources, plus files listed in
    .reconcilerignore, make no refusal: exit 0, nothing committed."""
    source, repo = ws
    tip = head(repo)
    (source / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n")
    (source / "renovate.json").write_text('{"extends": ["config:recommended"]}\n')
    (source / "docs").mkdir()
    (source / "docs" / "notes.yaml").write_text("title: notes\n")
    (source / ".reconcilerignore").write_text("# documentation, not resources\ndocs/\n")
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 0, proc.stderr
    assert head(repo) == tip


def test_duplicate_kind_key_is_refused_with_file_and_line(ws):
    """A manifest with ``kind:`` twice is refused naming the file and line; nothing is
    removed."""
    source, repo = ws
    tip = head(repo)
    acme = source / "customers" / "acme.yaml"
    acme.write_text(acme.read_text() + "kind: Preview\n")
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert proc.returncode == 1
    text = "\n".join(assert_user_error_output(proc))
    assert f"{acme}: invalid YAML at line 12: duplicate key 'kind'" in text
    assert head(repo) == tip


def test_repo_on_a_non_git_directory_is_a_usage_error_and_leaves_it_alone(tmp_path):
    """``--repo`` naming a directory of someone's files: exit 2, one line, the directory
    unchanged (never turned into a bare repository)."""
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    proc = reconciler("run", "--source", EXAMPLES, "--repo", mine, "--once")
    assert proc.returncode == 2
    assert assert_user_error_output(proc) == [
        f"error: {mine}: exists and is neither a Git repository nor an empty directory; "
        "give --repo a repository, an empty or a new path"]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_repository_made_by_git_init_is_cloned_on_the_reconcilers_branch(tmp_path):
    """A bare repo whose HEAD names ``master`` (git init's default) and that the reconciler
    seeds: HEAD now names main, so ``git clone`` checks the files out."""
    repo = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "master", str(repo))
    proc = reconciler("run", "--source", EXAMPLES, "--repo", repo, "--once")
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "symbolic-ref", "HEAD") == f"refs/heads/{BRANCH}"
    git(tmp_path, "clone", "-q", str(repo), str(tmp_path / "clone"))
    assert (tmp_path / "clone" / "tenants" / "acme" / "kustomization.yaml").exists()
