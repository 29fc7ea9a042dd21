"""End to end: the real ``reconciler`` command on files in temporary directories, read back
with the git CLI, as a platform engineer would use it (README "Commands").
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import reconciler as reconciler_package

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LAYOUT = ROOT / "repo-layout"
CONSOLE_SCRIPT = Path(sys.executable).parent / "reconciler"
BRANCH = "main"
EXAMPLE_KEYS = {"customer/acme", "customer/big-client-0815", "customer/small-shop",
                "preview/billing-fix-invoices", "preview/campaigns-feat-xyz"}
EXAMPLE_DIRS = {"tenants/acme", "tenants/big-client-0815", "tenants/small-shop",
                "previews/billing-fix-invoices", "previews/campaigns-feat-xyz"}
TRAILER_KEYS = {"Reconciler-Object", "Reconciler-Action", "Reconciler-Generation",
                "Reconciler-Spec-Hash", "Reconciler-Version"}
POOL = "platform/pgbouncer"


# -- running things ------------------------------------------------------------------------


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without GIT_* and RECONCILER_* variables or user Git config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "RECONCILER_"))}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="Human", GIT_AUTHOR_EMAIL="human@example.invalid",
               GIT_COMMITTER_NAME="Human", GIT_COMMITTER_EMAIL="human@example.invalid")
    env.update(extra or {})
    return env


def reconciler_command() -> list[str]:
    """The console script installed next to this interpreter (or ``python -m``)."""
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "reconciler.cli"]


def reconciler(*args: str | Path, env: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``reconciler args`` to completion."""
    return subprocess.run([*reconciler_command(), *map(str, args)], capture_output=True, text=True,
                          env=clean_env(env), cwd=cwd, timeout=120, check=False)


def git(where: Path, *args: str, stdin: str | None = None) -> str:
    """Run ``git -C where args`` and return its stripped stdout (fails the test on an error)."""
    proc = subprocess.run(["git", "-C", str(where), *args], input=stdin, capture_output=True,
                          text=True, env=clean_env(), check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def git_bytes(where: Path, *args: str) -> bytes:
    """Run ``git -C where args`` and return its raw stdout."""
    proc = subprocess.run(["git", "-C", str(where), *args], capture_output=True, env=clean_env(),
                          check=True)
    return proc.stdout


def head(repo: Path) -> str:
    """The tip of main."""
    return git(repo, "rev-parse", BRANCH)


def new_commits(repo: Path, since: str) -> list[str]:
    """Commits on main after ``since``, oldest first."""
    return git(repo, "rev-list", "--reverse", f"{since}..{BRANCH}").split()


def trailers(repo: Path, commit: str) -> list[tuple[str, str]]:
    """What ``git interpret-trailers --parse`` reads from the commit's message."""
    parsed = git(repo, "interpret-trailers", "--parse", stdin=git(repo, "log", "-1", "--format=%B", commit))
    return [(k, v) for k, _, v in (line.partition(": ") for line in parsed.splitlines())]


def name_status(repo: Path, commit: str) -> dict[str, str]:
    """path -> A/M/D for one commit."""
    out = git(repo, "show", "--format=", "--name-status", commit)
    return {path: status for status, path in (line.split("\t", 1) for line in out.splitlines())}


def object_dirs(repo: Path) -> set[str]:
    """Directories under tenants/ and previews/ at the tip."""
    out = git(repo, "ls-tree", "-d", "--name-only", BRANCH, "tenants/", "previews/")
    return set(out.splitlines())


def pool_databases(repo: Path, rev: str = BRANCH) -> list[str]:
    """Names in the pool's ``[databases]`` section."""
    ini = git(repo, "show", f"{rev}:{POOL}/pgbouncer.ini")
    section = ini.split("[databases]", 1)[1].split("[pgbouncer]", 1)[0]
    return [line.split(" = ", 1)[0] for line in section.splitlines() if " = " in line]


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Load one manifest, apply ``change``, write it back."""
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def features(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec.features mapping of a Customer document (created when missing)."""
    return doc.setdefault("spec", {}).setdefault("features", {})


def assert_user_error_output(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The refusal lines a run printed; fails on a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.strip()]


@dataclass(frozen=True)
class Workspace:
    """Source files and a config repo the tests may change."""

    source: Path
    repo: Path


# -- the examples, reconciled once ---------------------------------------------------------


@dataclass(frozen=True)
class ExamplesRun:
    """``run --once`` on a copy of examples/ into a new repository."""

    source: Path
    repo: Path
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def examples_run(tmp_path_factory: pytest.TempPathFactory) -> ExamplesRun:
    """The examples reconciled into a new repository (read-only for the tests using it)."""
    base = tmp_path_factory.mktemp("examples-run")
    source = base / "examples"
    shutil.copytree(EXAMPLES, source)
    repo = base / "config.git"
    proc = reconciler("run", "--source", source, "--repo", repo, "--once")
    return ExamplesRun(source, repo, proc)


@pytest.fixture
def workspace(examples_run: ExamplesRun, tmp_path: Path) -> Workspace:
    """A private copy of the examples and of the repository they were reconciled into."""
    source, repo = tmp_path / "examples", tmp_path / "config.git"
    shutil.copytree(examples_run.source, source)
    shutil.copytree(examples_run.repo, repo)
    return Workspace(source, repo)


def test_run_once_on_the_examples_exits_zero_and_reports_each_commit(examples_run):
    """``run --once`` on examples/ succeeds, prints one committed line per object and a summary."""
    proc = examples_run.proc
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    committed = [line for line in proc.stdout.splitlines() if line.startswith("committed")]
    assert len(committed) == 5
    for key in EXAMPLE_KEYS:
        assert sum(f" {key}: created" in line for line in committed) == 1
    assert proc.stdout.splitlines()[-1] == "5 commits, 0 objects unchanged, 0 refused or failed"


def test_git_log_shows_the_init_commit_and_one_commit_per_example(examples_run):
    """The history is the seed commit followed by exactly one commit per example object."""
    repo = examples_run.repo
    commits = git(repo, "rev-list", "--reverse", BRANCH).split()
    assert len(commits) == 6
    assert git(repo, "log", "-1", "--format=%s", commits[0]) == "init: config repo layout"
    named = [dict(trailers(repo, c)).get("Reconciler-Object") for c in commits[1:]]
    assert sorted(named) == sorted(EXAMPLE_KEYS)
    for commit, key in zip(commits[1:], named, strict=True):
        assert git(repo, "log", "-1", "--format=%s", commit).startswith(f"{key}: created (")
    assert object_dirs(repo) == EXAMPLE_DIRS


def test_every_reconciler_commit_has_parseable_trailers(examples_run):
    """``git interpret-trailers --parse`` finds object, action, generation, spec hash and
    version on every object commit."""
    repo = examples_run.repo
    for commit in git(repo, "rev-list", BRANCH).split()[:-1]:
        found = dict(trailers(repo, commit))
        assert set(found) >= TRAILER_KEYS, (commit, found)
        assert found["Reconciler-Action"] == "create"
        assert found["Reconciler-Generation"] == "1"
        assert found["Reconciler-Spec-Hash"].startswith("sha256:")
        assert found["Reconciler-Version"] == reconciler_package.__version__


def test_the_config_repo_is_fsck_clean(examples_run):
    """``git fsck --strict`` finds nothing wrong with the repository the examples went into."""
    proc = subprocess.run(["git", "-C", str(examples_run.repo), "fsck", "--strict", "--full",
                           "--no-dangling"], capture_output=True, text=True, env=clean_env(),
                          check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_every_rendered_directory_is_a_kustomization_listing_its_files(examples_run):
    """Each object directory holds a kustomization.yaml naming every manifest next to it and
    never the source record."""
    repo = examples_run.repo
    for directory in EXAMPLE_DIRS | {POOL}:
        files = set(git(repo, "ls-tree", "--name-only", BRANCH, f"{directory}/").split())
        names = {f.rsplit("/", 1)[1] for f in files}
        kustomization = yaml.safe_load(git(repo, "show", f"{BRANCH}:{directory}/kustomization.yaml"))
        listed = set(kustomization["resources"])
        assert listed == names - {"kustomization.yaml", ".reconciler.json", "pgbouncer.ini"}


def test_a_second_run_makes_no_commit_and_says_so(workspace):
    """Running again on unchanged input leaves the branch where it was and prints 0 commits."""
    tip = head(workspace.repo)
    proc = reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once")
    assert proc.returncode == 0, proc.stderr
    assert head(workspace.repo) == tip
    assert proc.stdout.strip() == "0 commits, 5 objects unchanged, 0 refused or failed"


# -- changes -------------------------------------------------------------------------------


def _more_workers(doc: dict[str, Any]) -> None:
    features(doc)["scheduler"]["workers"] = 4


def _enable_database(doc: dict[str, Any]) -> None:
    features(doc)["database"] = {"enabled": True, "storage": "5Gi"}


def _disable_database(doc: dict[str, Any]) -> None:
    features(doc)["database"]["enabled"] = False


@pytest.mark.parametrize(("name", "change", "pool_changes", "subject"), [
    ("acme", _more_workers, False, "customer/acme: scheduler 2 -> 4 workers"),
    ("small-shop", _enable_database, True, "customer/small-shop: database 5Gi enabled"),
    ("acme", _disable_database, True, "customer/acme: database disabled"),
], ids=["workers", "database-on", "database-off"])
def test_changing_one_customer_makes_one_commit_touching_only_its_paths(workspace, name, change,
                                                                        pool_changes, subject):
    """Editing one Customer file makes exactly one commit; it touches only tenants/<name>/,
    plus platform/pgbouncer/ exactly when the database flag changed."""
    edit_yaml(workspace.source / "customers" / f"{name}.yaml", change)
    tip = head(workspace.repo)

    proc = reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once")

    assert proc.returncode == 0, proc.stderr
    [commit] = new_commits(workspace.repo, tip)
    paths = git(workspace.repo, "show", "--format=", "--name-only", commit).splitlines()
    assert all(p.startswith((f"tenants/{name}/", f"{POOL}/")) for p in paths), paths
    assert any(p.startswith(f"tenants/{name}/") for p in paths)
    assert any(p.startswith(f"{POOL}/") for p in paths) is pool_changes
    assert git(workspace.repo, "log", "-1", "--format=%s", commit) == subject
    found = dict(trailers(workspace.repo, commit))
    assert (found["Reconciler-Object"], found["Reconciler-Generation"]) == (f"customer/{name}", "2")
    assert ("1 commits, 4 objects unchanged, 0 refused or failed") in proc.stdout


def test_deleting_a_customer_file_removes_its_directory_in_one_commit(workspace):
    """Removing big-client-0815.yaml deletes every file of tenants/big-client-0815/ and its pool
    line in a single commit; everything else stays."""
    files = git(workspace.repo, "ls-tree", "-r", "--name-only", BRANCH, "tenants/big-client-0815/")
    (workspace.source / "customers" / "big-client-0815.yaml").unlink()
    tip = head(workspace.repo)

    proc = reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once")

    assert proc.returncode == 0, proc.stderr
    [commit] = new_commits(workspace.repo, tip)
    status = name_status(workspace.repo, commit)
    assert {p for p, s in status.items() if s == "D"} == set(files.splitlines())
    assert {p for p, s in status.items() if s != "D"} <= {f"{POOL}/pgbouncer.ini", f"{POOL}/.reconciler.json"}
    assert object_dirs(workspace.repo) == EXAMPLE_DIRS - {"tenants/big-client-0815"}
    assert pool_databases(workspace.repo) == ["acme"]
    assert git(workspace.repo, "log", "-1", "--format=%s", commit) == "customer/big-client-0815: removed"
    assert "committed Removed" in proc.stdout


# -- bad input -----------------------------------------------------------------------------

CUSTOMER_HEADER = "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"


@dataclass(frozen=True)
class BadInput:
    """One bad file added to the examples and what its refusal line must mention."""

    file: str
    text: str
    mentions: tuple[str, ...]
    refused_keys: frozenset[str] = frozenset()


BAD_INPUTS = {
    "invalid-yaml": BadInput("customers/broken.yaml", CUSTOMER_HEADER + "metadata: {name: broken\n",
                             ("customers/broken.yaml", "invalid YAML", "line 4")),
    "schema-violation": BadInput(
        "customers/schema.yaml",
        CUSTOMER_HEADER + "metadata: {name: schema}\nspec:\n  features:\n"
                          "    scheduler: {enabled: true, workers: 0}\n",
        ("customers/schema.yaml", "spec.features.scheduler.workers")),
    "unknown-kind": BadInput("customers/configmap.yaml",
                             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
                             ("customers/configmap.yaml", "unknown kind", "ConfigMap")),
    "unknown-field": BadInput("customers/typo.yaml",
                              CUSTOMER_HEADER + "metadata: {name: typo}\nspec:\n  featurez: {}\n",
                              ("customers/typo.yaml", "spec.featurez")),
    "duplicate-name": BadInput("customers/acme-again.yaml", CUSTOMER_HEADER + "metadata: {name: acme}\n",
                               ("customer/acme", "duplicate"), frozenset({"customer/acme"})),
    "hostile-name": BadInput("customers/hostile.yaml", CUSTOMER_HEADER + "metadata: {name: ../../etc}\n",
                             ("customers/hostile.yaml", "metadata.name")),
    "name-too-long-for-namespace": BadInput(
        "customers/long.yaml", CUSTOMER_HEADER + f"metadata: {{name: {'n' * 60}}}\n",
        ("metadata.name", "63")),
}


@dataclass(frozen=True)
class BadRun:
    """The result of running the examples plus one bad file."""

    workdir: Path
    repo: Path
    proc: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], BadRun]:
    """Runs of examples/ plus one bad file, made once per case and shared by the tests."""
    cache: dict[str, BadRun] = {}

    def run(case: str) -> BadRun:
        if case not in cache:
            workdir = tmp_path_factory.mktemp(f"bad-{case}")
            source = workdir / "examples"
            shutil.copytree(EXAMPLES, source)
            (source / BAD_INPUTS[case].file).write_text(BAD_INPUTS[case].text)
            repo = workdir / "config.git"
            cache[case] = BadRun(workdir, repo,
                                 reconciler("run", "--source", source, "--repo", repo, "--once",
                                            cwd=workdir))
        return cache[case]

    return run


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_code_1_and_the_rest_is_committed(bad_runs, case):
    """A bad file gets one stderr line saying what is wrong, no traceback, exit code 1, and
    every other object is committed anyway."""
    bad = BAD_INPUTS[case]
    run = bad_runs(case)
    assert run.proc.returncode == 1
    lines = assert_user_error_output(run.proc)
    assert len(lines) == 1, lines
    assert lines[0].startswith("refused")
    for word in bad.mentions:
        assert word in lines[0], lines[0]
    expected = {k for k in EXAMPLE_KEYS if k not in bad.refused_keys}
    assert object_dirs(run.repo) == {d for d in EXAMPLE_DIRS
                                     if any(d.endswith("/" + k.split("/")[1]) for k in expected)}
    assert "1 refused or failed" in run.proc.stdout


def test_a_hostile_name_writes_nothing_anywhere(bad_runs):
    """A name like ``../../etc`` is refused: no path outside the object directories appears in
    the repository and nothing is written next to it on disk."""
    run = bad_runs("hostile-name")
    paths = git(run.repo, "ls-tree", "-r", "-t", "--name-only", BRANCH).splitlines()
    assert not [p for p in paths if "etc" in p.split("/")]
    assert sorted(p.name for p in run.workdir.iterdir()) == ["config.git", "examples"]
    assert not (run.workdir.parent / "etc").exists()


def test_a_duplicate_name_names_both_files(bad_runs):
    """The refusal of a duplicated name says which files define it."""
    [line] = assert_user_error_output(bad_runs("duplicate-name").proc)
    assert "customers/acme.yaml" in line and "customers/acme-again.yaml" in line


def test_a_name_too_long_for_its_namespace_names_the_file(bad_runs):
    """The refusal of a name too long for its namespace names the file it came from."""
    [line] = assert_user_error_output(bad_runs("name-too-long-for-namespace").proc)
    assert "customers/long.yaml" in line


def test_a_skipped_suspended_object_is_named(workspace):
    """The line reporting a suspended object names it."""
    edit_yaml(workspace.source / "customers" / "small-shop.yaml",
              lambda doc: doc["spec"].update(suspend=True))
    proc = reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once")
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("skipped")]
    assert "customer/small-shop" in line


def test_an_import_pass_reports_one_commit(tmp_path):
    """A pass that imports every example in one commit says it made 1 commit."""
    repo = tmp_path / "config.git"
    proc = reconciler("run", "--source", EXAMPLES, "--repo", repo, "--once",
                      env={"RECONCILER_IMPORT_BATCH": "2"})
    assert proc.returncode == 0, proc.stderr
    assert len(git(repo, "rev-list", BRANCH).split()) == 2
    assert proc.stdout.splitlines()[-1] == "1 commits, 0 objects unchanged, 0 refused or failed"


# -- status and history --------------------------------------------------------------------


def test_status_reports_each_objects_state_from_the_files_and_the_repo(workspace):
    """``status -o json`` shows InSync, OutOfSync, NotRendered, Invalid and Orphaned objects, the
    last commit of each rendered one, and exits 1 because one file is invalid."""
    customers = workspace.source / "customers"
    edit_yaml(customers / "acme.yaml", _more_workers)
    (customers / "small-shop.yaml").write_text(
        CUSTOMER_HEADER + "metadata: {name: small-shop}\nspec: {quota: {pods: 0}}\n")
    (customers / "big-client-0815.yaml").unlink()
    (customers / "newbie.yaml").write_text(CUSTOMER_HEADER + "metadata: {name: newbie}\n")

    proc = reconciler("status", "--source", workspace.source, "--repo", workspace.repo, "-o", "json")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(proc.stdout)}
    states = {key: r["state"] for key, r in rows.items()}
    assert states == {
        ("Customer", "acme"): "OutOfSync",
        ("Customer", "big-client-0815"): "Orphaned",
        ("Customer", "newbie"): "NotRendered",
        ("Customer", "small-shop"): "Invalid",
        ("Preview", "billing-fix-invoices"): "InSync",
        ("Preview", "campaigns-feat-xyz"): "InSync",
    }
    assert rows[("Customer", "small-shop")]["valid"] is False
    assert "spec.quota.pods" in rows[("Customer", "small-shop")]["message"]
    last = {dict(trailers(workspace.repo, c)).get("Reconciler-Object"): c
            for c in git(workspace.repo, "rev-list", BRANCH).split()}
    for kind, name in rows:
        key = f"{kind.lower()}/{name}"
        assert rows[(kind, name)]["last_commit"] == last.get(key)
    assert rows[("Preview", "campaigns-feat-xyz")]["path"] == "previews/campaigns-feat-xyz"
    assert rows[("Customer", "newbie")]["path"] is None


def test_status_after_a_run_shows_everything_in_sync(examples_run):
    """Right after ``run``, status prints every example InSync in its table and exits 0."""
    proc = reconciler("status", "--source", examples_run.source, "--repo", examples_run.repo)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "STATE", "LAST", "COMMIT", "MESSAGE"]
    assert len(lines) == 6
    assert all(line.split()[2] == "InSync" for line in lines[1:])


def test_status_does_not_promise_to_remove_a_hand_made_directory(workspace):
    """A directory a human added under tenants/ is kept by run, and status does not claim the
    next run removes it."""
    clone = workspace.repo.parent / "clone"
    git(workspace.repo.parent, "clone", "-q", str(workspace.repo), str(clone))
    (clone / "tenants" / "handmade").mkdir()
    (clone / "tenants" / "handmade" / "namespace.yaml").write_text("kind: Namespace\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "hand-made tenant")
    git(clone, "push", "-q", "origin", BRANCH)
    run = reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once")
    assert run.returncode == 0 and "tenants/handmade" in object_dirs(workspace.repo)
    proc = reconciler("status", "--source", workspace.source, "--repo", workspace.repo, "-o", "json")
    [row] = [r for r in json.loads(proc.stdout) if r["name"] == "handmade"]
    assert row["state"] != "Orphaned"
    assert "removes" not in row["message"]


def test_history_lists_an_objects_commits_newest_first(workspace):
    """``history customer/acme -o json`` lists acme's commits, newest first, with their
    generation and subject; other objects' commits are left out."""
    edit_yaml(workspace.source / "customers" / "acme.yaml", _more_workers)
    assert reconciler("run", "--source", workspace.source, "--repo", workspace.repo, "--once").returncode == 0
    acme_commits = [c for c in git(workspace.repo, "rev-list", BRANCH).split()
                    if ("Reconciler-Object", "customer/acme") in trailers(workspace.repo, c)]

    proc = reconciler("history", "customer/acme", "--repo", workspace.repo, "-o", "json")

    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert [e["commit"] for e in entries] == acme_commits
    assert [(e["generation"], e["subject"]) for e in entries] == [
        (2, "customer/acme: scheduler 2 -> 4 workers"),
        (1, "customer/acme: created (database 20Gi, scheduler 2 workers, webhooks)"),
    ]
    assert entries[0]["date"] >= entries[1]["date"]


def test_history_of_a_bad_object_name_is_one_line_and_exit_code_2(examples_run):
    """``history`` with something that is not customer/NAME or preview/NAME is a usage error."""
    proc = reconciler("history", "tenant/acme", "--repo", examples_run.repo)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "customer/NAME" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- render, init, crds --------------------------------------------------------------------


def repo_files(repo: Path, *paths: str, placeholders: bool = False) -> dict[str, bytes]:
    """Every file under ``paths`` at the tip, read with git archive (without the .gitkeep
    placeholders unless asked)."""
    archive = git_bytes(repo, "archive", "--format=tar", BRANCH, *paths)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile() and (placeholders or not m.name.endswith("/.gitkeep"))}


def tree_files(root: Path, *paths: str) -> dict[str, bytes]:
    """Every file under ``paths`` (all when none) of a directory on disk."""
    tops = [root / p for p in paths] if paths else [root]
    return {p.relative_to(root).as_posix(): p.read_bytes() for top in tops
            for p in ([top] if top.is_file() else sorted(top.rglob("*"))) if p.is_file()}


def test_render_writes_the_files_the_repo_holds(examples_run, tmp_path):
    """``render examples --out D`` writes every object directory byte for byte as the repository
    holds it, the source record's generation (counted as run counts it) included."""
    out = tmp_path / "rendered"
    proc = reconciler("render", examples_run.source, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "rendered 5 objects" in proc.stdout
    rendered = tree_files(out, "tenants", "previews")
    held = repo_files(examples_run.repo, "tenants", "previews")
    assert set(rendered) == set(held)
    for path, data in held.items():
        assert rendered[path] == data, path


def test_render_writes_the_connection_pool_the_repo_holds(examples_run, tmp_path):
    """``render`` also writes platform/pgbouncer/ as run commits it for the same Customers."""
    out = tmp_path / "rendered"
    reconciler("render", examples_run.source, "--out", out)
    assert tree_files(out, POOL) == repo_files(examples_run.repo, POOL)


def test_render_refuses_bad_files_and_writes_the_rest(tmp_path):
    """``render`` with one invalid file prints one refusal, exits 1 and renders the others."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLES, source)
    (source / "customers" / "broken.yaml").write_text(BAD_INPUTS["schema-violation"].text)
    proc = reconciler("render", source, "--out", tmp_path / "out")
    assert proc.returncode == 1
    [line] = assert_user_error_output(proc)
    assert "customers/broken.yaml" in line and "spec.features.scheduler.workers" in line
    assert {p.parent.relative_to(tmp_path / "out").as_posix()
            for p in (tmp_path / "out").rglob("kustomization.yaml")} == EXAMPLE_DIRS | {POOL}


def test_init_seeds_repo_layout_in_one_commit_and_is_idempotent(tmp_path):
    """``init`` creates a repository holding exactly repo-layout/ in one commit; a second init
    adds nothing."""
    repo = tmp_path / "new-config.git"
    first = reconciler("init", "--repo", repo)
    assert first.returncode == 0, first.stderr
    commits = git(repo, "rev-list", BRANCH).split()
    assert len(commits) == 1 and commits[0] in first.stdout
    assert repo_files(repo, placeholders=True) == tree_files(LAYOUT)
    assert git(repo, "log", "-1", "--format=%s") == "init: config repo layout"

    second = reconciler("init", "--repo", repo)
    assert second.returncode == 0, second.stderr
    assert "already seeded" in second.stdout
    assert git(repo, "rev-list", BRANCH).split() == commits


def test_init_in_an_empty_directory_inside_another_repository_leaves_that_repository_alone(tmp_path):
    """``init --repo project/config`` makes a config repo there, not a commit in ``project``."""
    project = tmp_path / "project"
    git(tmp_path, "init", "-q", "-b", BRANCH, str(project))
    (project / "app.py").write_text("print('hello')\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "my project")
    tip = head(project)
    (project / "config").mkdir()
    reconciler("init", "--repo", project / "config")
    assert head(project) == tip
    assert sorted(p.name for p in project.iterdir()) == [".git", "app.py", "config"]


def test_crds_writes_the_generated_definitions(tmp_path):
    """``crds --out D`` writes the Customer and Preview CRDs, identical to the ones in crds/."""
    out = tmp_path / "crds"
    proc = reconciler("crds", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["customer.yaml", "preview.yaml"]
    for path in out.iterdir():
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "reconciler.ahoi.dev"
        assert crd["spec"]["scope"] == "Cluster"
        assert crd["spec"]["names"]["kind"] == path.stem.capitalize()
        assert path.read_bytes() == (ROOT / "crds" / path.name).read_bytes()


# -- work trees and the long-running mode --------------------------------------------------


def test_run_on_a_clone_keeps_its_work_tree_in_step(tmp_path):
    """``run`` into a repository the user cloned commits on its checked-out branch and updates
    the clean work tree; a work tree with local edits is left as the user left it."""
    origin = tmp_path / "origin.git"
    assert reconciler("init", "--repo", origin).returncode == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    source = tmp_path / "examples"
    shutil.copytree(EXAMPLES, source)

    proc = reconciler("run", "--source", source, "--repo", clone, "--once")
    assert proc.returncode == 0, proc.stderr
    assert git(clone, "status", "--porcelain") == ""
    assert (clone / "tenants" / "acme" / "kustomization.yaml").is_file()
    assert git(clone, "rev-parse", "HEAD") == head(clone)
    assert len(git(clone, "rev-list", "origin/main..main").split()) == 5

    (clone / "README.md").write_text("my notes\n")
    edit_yaml(source / "customers" / "acme.yaml", _more_workers)
    proc = reconciler("run", "--source", source, "--repo", clone, "--once")
    assert proc.returncode == 0, proc.stderr
    assert "local changes" in proc.stderr
    assert (clone / "README.md").read_text() == "my notes\n"
    assert "replicas: 4" in git(clone, "show", f"{BRANCH}:tenants/acme/scheduler.yaml")
    assert "replicas: 2" in (clone / "tenants" / "acme" / "scheduler.yaml").read_text()


def test_run_without_once_follows_file_changes_and_stops_on_sigterm(workspace):
    """The long-running ``run`` commits a Customer change within seconds of the file changing
    and exits cleanly (code 0, no traceback) on SIGTERM."""
    tip = head(workspace.repo)
    process = subprocess.Popen(
        [*reconciler_command(), "run", "--source", str(workspace.source), "--repo", str(workspace.repo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        time.sleep(1.0)  # let the first pass (nothing to do) run
        assert process.poll() is None, process.communicate()
        edit_yaml(workspace.source / "customers" / "acme.yaml", _more_workers)
        deadline = time.monotonic() + 10
        while head(workspace.repo) == tip and time.monotonic() < deadline:
            time.sleep(0.2)
        assert head(workspace.repo) != tip, "no commit within 10 s of the change"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "customer/acme: scheduler 2 -> 4 workers" in stdout
    [commit] = new_commits(workspace.repo, tip)
    assert dict(trailers(workspace.repo, commit))["Reconciler-Object"] == "customer/acme"


# -- the quickstart ------------------------------------------------------------------------


def _demo_would_install() -> bool:
    """True when scripts/demo.sh would pip-install the project (no .venv with it here)."""
    return not (ROOT / ".venv" / "bin" / "reconciler").exists()


def test_demo_installs_only_the_project():
    """scripts/demo.sh installs the project without its test extras and never runs
    scripts/setup.sh (no linters, type checker or kubectl for a demo)."""
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert "setup.sh" not in script
    assert "[test]" not in script
    assert "pip install --disable-pip-version-check -q -e ." in script


@pytest.mark.skipif(_demo_would_install(), reason="scripts/demo.sh would pip-install the project")
def test_demo_script_prints_the_git_log_of_the_examples(tmp_path):
    """``bash scripts/demo.sh`` (README quickstart) reconciles the examples into DEMO_REPO,
    prints its git log with every example object and its trailers, and says where it is."""
    repo = tmp_path / "demo-repo"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], capture_output=True, text=True,
                          env=clean_env({"DEMO_REPO": str(repo)}), timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"== the config repo is {repo} (bare)" in proc.stdout
    log = proc.stdout
    assert "init: config repo layout" in log
    for key in EXAMPLE_KEYS:
        assert f"{key}: created" in log
        assert f"Reconciler-Object: {key}" in log
    assert len(git(repo, "rev-list", BRANCH).split()) == 6
