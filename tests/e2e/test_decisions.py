"""End to end: ``reconciler plan``, removal safety and ownership, through the real command
on real repositories (README "Deciding before writing")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import gitcli
from tests.e2e.test_cli import git_bytes, reconciler

CUSTOMER = """apiVersion: reconciler.ahoi.dev/v1alpha1
kind: Customer
metadata:
  name: {name}
spec:
  displayName: {name}
  features:
    database: {{enabled: {db}, storage: 10Gi}}
    scheduler: {{enabled: {sched}, workers: {workers}}}
{extra}"""


def write_customer(source: Path, name: str, *, db: bool = False, workers: int = 1,
                   suspend: bool = False) -> Path:
    """A Customer manifest ``source/NAME.yaml``."""
    path = source / f"{name}.yaml"
    path.write_text(CUSTOMER.format(name=name, db=str(db).lower(),
                                    sched=str(workers > 0).lower(), workers=max(workers, 1),
                                    extra="  suspend: true\n" if suspend else ""))
    return path


def tenants(repo: Path) -> set[str]:
    """Tenant directories at the head of ``repo``."""
    out = gitcli.git(repo, "ls-tree", "-d", "--name-only", "main", "tenants/")
    return {line.split("/", 1)[1] for line in out.splitlines()}


def everything(repo: Path) -> tuple[str, str]:
    """Every ref and every object of ``repo``: a write of any kind changes one of them."""
    return (gitcli.git(repo, "for-each-ref"),
            gitcli.git(repo, "count-objects", "-v"))


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    """20 Customers (two with a database) reconciled into a new repository."""
    source, repo = tmp_path / "src", tmp_path / "config.git"
    source.mkdir()
    for i in range(20):
        write_customer(source, f"c{i:02d}", db=i < 2)
    done = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert done.returncode == 0, done.stderr
    return source, repo


def test_plan_shows_the_commits_with_line_counts_and_writes_nothing(
        fleet: tuple[Path, Path]) -> None:
    """After a spec change, ``plan`` names the commit, its files with +/- line counts, exits 0,
    and leaves every ref and object of the repository as it was; ``run`` then makes it."""
    source, repo = fleet
    write_customer(source, "c05", workers=4)
    before = everything(repo)

    shown = reconciler("plan", "--source", source, "--repo", repo)

    assert shown.returncode == 0, shown.stderr
    assert "commit    update    customer/c05: scheduler 1 -> 4 workers" in shown.stdout
    assert "M tenants/c05/scheduler.yaml +1 -1" in shown.stdout
    assert "1 commits planned, 19 objects unchanged, 0 refused" in shown.stdout
    assert everything(repo) == before
    as_json = json.loads(reconciler("plan", "--source", source, "--repo", repo,
                                    "-o", "json").stdout)
    [commit] = as_json["commits"]
    assert commit["objects"] == ["customer/c05"] and commit["action"] == "update"
    assert {"path": "tenants/c05/scheduler.yaml", "status": "M", "added": 1,
            "removed": 1} in commit["files"]
    assert everything(repo) == before
    ran = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert gitcli.git(repo, "log", "-1", "--format=%s") == "customer/c05: scheduler 1 -> 4 workers"
    assert ran.returncode == 0


def test_plan_on_a_missing_repository_creates_nothing(tmp_path: Path) -> None:
    """``plan`` against a path that is not there yet shows the first run's commits and does
    not create the repository."""
    source = tmp_path / "src"
    source.mkdir()
    write_customer(source, "acme")

    shown = reconciler("plan", "--source", source, "--repo", tmp_path / "new.git")

    assert shown.returncode == 0, shown.stderr
    assert "commit    create    customer/acme" in shown.stdout
    assert not (tmp_path / "new.git").exists()


def test_a_missing_source_is_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    """``run --source`` naming no existing path exits 2 with one line, creating no repo."""
    done = reconciler("run", "--source", tmp_path / "typo", "--repo", tmp_path / "r.git",
                      "--once")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --source {tmp_path / 'typo'}: no such file or directory"]
    assert not (tmp_path / "r.git").exists()


def test_an_empty_source_removes_nothing_and_fails(fleet: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    """A source with no Customer at all while the repo holds 20 removes none of them, says
    so, and exits 1; ``--allow-removals 20`` confirms it."""
    _, repo = fleet
    empty = tmp_path / "empty"
    empty.mkdir()
    head = gitcli.git(repo, "rev-parse", "main")

    done = reconciler("run", "--source", empty, "--repo", repo, "--once")

    assert done.returncode == 1
    assert gitcli.git(repo, "rev-parse", "main") == head
    assert "the source has no Customer while the config repo holds 20; nothing removed" \
        in done.stderr
    confirmed = reconciler("run", "--source", empty, "--repo", repo, "--once",
                           "--allow-removals", "20")
    assert confirmed.returncode == 0, confirmed.stderr
    assert tenants(repo) == set()


def test_a_dangling_symlink_holds_every_removal_and_is_named(
        fleet: tuple[Path, Path]) -> None:
    """A manifest replaced by a dangling symlink removes nothing in that pass, names the
    file on one line and exits 1, while other changes are still committed."""
    source, repo = fleet
    link = source / "c03.yaml"
    link.unlink()
    link.symlink_to(source / "gone.yaml")
    write_customer(source, "c04", workers=3)

    done = reconciler("run", "--source", source, "--repo", repo, "--once")

    assert done.returncode == 1
    assert "c03" in tenants(repo)
    assert gitcli.git(repo, "log", "-1", "--format=%s") == "customer/c04: scheduler 1 -> 3 workers"
    named = [line for line in done.stderr.splitlines() if str(link) in line]
    assert len(named) == 1 and "dangling symlink" in named[0]


def test_the_removal_budget_holds_a_mass_removal_until_confirmed(
        fleet: tuple[Path, Path]) -> None:
    """Deleting 12 of 20 Customer files removes none (the budget is 5 per pass), ``status``
    and ``plan`` say the 12 are held, exit 1; ``run --allow-removals 12`` removes them in 12
    commits and drops their databases from the pool."""
    source, repo = fleet
    for i in range(12):
        (source / f"c{i:02d}.yaml").unlink()

    held = reconciler("run", "--source", source, "--repo", repo, "--once")
    status = reconciler("status", "--source", source, "--repo", repo)
    plan = reconciler("plan", "--source", source, "--repo", repo)

    assert held.returncode == 1
    assert len(tenants(repo)) == 20
    assert "12 Customer removals exceed the budget of 5 per pass" in held.stderr
    assert "the next run removes it" not in status.stdout
    assert status.stdout.count("RemovalHeld") == 12
    assert "12 removals held" in plan.stdout and plan.returncode == 1
    before = int(gitcli.git(repo, "rev-list", "--count", "main"))
    confirmed = reconciler("run", "--source", source, "--repo", repo, "--once",
                           "--allow-removals", "12")
    assert confirmed.returncode == 0, confirmed.stderr
    assert tenants(repo) == {f"c{i:02d}" for i in range(12, 20)}
    assert int(gitcli.git(repo, "rev-list", "--count", "main")) == before + 12
    ini = gitcli.git(repo, "show", "main:platform/pgbouncer/pgbouncer.ini")
    assert "c00 =" not in ini and "c01 =" not in ini


def test_a_few_removals_within_the_budget_go_through(fleet: tuple[Path, Path]) -> None:
    """Deleting 3 of 20 Customer files removes the 3 in one pass, exit 0."""
    source, repo = fleet
    for name in ("c10", "c11", "c12"):
        (source / f"{name}.yaml").unlink()

    done = reconciler("run", "--source", source, "--repo", repo, "--once")

    assert done.returncode == 0, done.stderr
    assert len(tenants(repo)) == 17


def test_a_directory_made_by_a_human_is_refused_then_adopted(tmp_path: Path) -> None:
    """A new Customer ``legacy`` whose directory a human committed is refused as NotOwned
    (the human's files stay, another Customer still reconciles, exit 1); ``adopt`` hands it
    over in one commit saying so; the next run has nothing to do."""
    source, repo = tmp_path / "src", tmp_path / "config.git"
    source.mkdir()
    write_customer(source, "first")
    assert reconciler("run", "--source", source, "--repo", repo, "--once").returncode == 0
    gitcli.human_commit(repo, {"tenants/legacy/deployment.yaml": b"kind: Deployment\n"},
                        "legacy app, by hand")
    write_customer(source, "legacy")
    write_customer(source, "second")

    done = reconciler("run", "--source", source, "--repo", repo, "--once")

    assert done.returncode == 1
    assert "NotOwned" in done.stderr and "tenants/legacy/ exists but was not made" in done.stderr
    assert gitcli.git(repo, "show", "main:tenants/legacy/deployment.yaml") == "kind: Deployment"
    assert tenants(repo) == {"first", "second", "legacy"}
    status = reconciler("status", "--source", source, "--repo", repo)
    assert any(line.split()[:3] == ["Customer", "legacy", "Refused"]
               and "NotOwned: customer/legacy" in line for line in status.stdout.splitlines())

    adopted = reconciler("adopt", "customer/legacy", "--source", source, "--repo", repo)

    assert adopted.returncode == 0, adopted.stderr
    message = gitcli.git(repo, "log", "-1", "--format=%B")
    assert message.startswith("customer/legacy: adopted tenants/legacy/")
    assert "Reconciler-Action: adopt" in message
    files = gitcli.git(repo, "ls-tree", "--name-only", "main", "tenants/legacy/")
    assert "tenants/legacy/deployment.yaml" not in files.splitlines()
    again = reconciler("run", "--source", source, "--repo", repo, "--once")
    assert again.returncode == 0, again.stderr
    assert "0 commits" in again.stdout


def test_render_writes_what_run_commits_also_for_suspended_customers(tmp_path: Path) -> None:
    """``render`` and ``run`` into an empty repository give the same files: a suspended
    Customer gets neither a directory nor a pool entry in both."""
    source, repo, out = tmp_path / "src", tmp_path / "config.git", tmp_path / "out"
    source.mkdir()
    write_customer(source, "active", db=True)
    write_customer(source, "paused", db=True, suspend=True)

    rendered = reconciler("render", source, "--out", out)
    ran = reconciler("run", "--source", source, "--repo", repo, "--once")

    assert rendered.returncode == 0 and ran.returncode == 0, rendered.stderr + ran.stderr
    in_repo = {p for p in gitcli.git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
               if p.startswith(("tenants/", "platform/pgbouncer/")) and ".gitkeep" not in p}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == in_repo
    for path in in_repo:
        assert (out / path).read_bytes() == git_bytes(repo, "show", f"main:{path}")
    assert "paused" not in (out / "platform/pgbouncer/pgbouncer.ini").read_text()
