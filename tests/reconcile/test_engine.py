"""The Reconciler against a real GitConfigRepo: what it commits, when, and what it leaves alone.

Objects are built in memory (the file source has its own tests); the repository is a real
bare repository in a temporary directory and the git CLI reads back what was committed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core.models import Customer, ObjectKey, Preview
from reconciler.core.outcomes import Outcome, Reason, Result
from reconciler.core.settings import Settings
from reconciler.core.sources import Parsed, Refusal
from reconciler.reconcile.engine import PassReport, Reconciler
from tests.gitcli import git, human_commit

BRANCH = "main"
VERSION = "9.9.9-test"
POOL_INI = "platform/pgbouncer/pgbouncer.ini"
POOL_RECORD = "platform/pgbouncer/.reconciler.json"
SHA = "b32bef0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a"


# -- the git CLI ---------------------------------------------------------------------------






def head(bare: Path) -> str | None:
    """The tip of main, None before the first commit."""
    proc = subprocess.run(["git", "-C", str(bare), "rev-parse", "-q", "--verify", BRANCH],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or None


def commits_since(bare: Path, since: str | None) -> list[str]:
    """Commits on main after ``since`` (all when None), oldest first."""
    if head(bare) is None:
        return []
    spec = f"{since}..{BRANCH}" if since else BRANCH
    return git(bare, "rev-list", "--reverse", spec).split()


def touched(bare: Path, commit: str) -> set[str]:
    """Paths a commit changed relative to its parent (every path for a root commit)."""
    return set(git(bare, "diff-tree", "-r", "--root", "--no-commit-id", "--name-only", commit).split())


def trailers(bare: Path, commit: str) -> list[tuple[str, str]]:
    """The commit's trailers as ``git interpret-trailers --parse`` reads them."""
    message = git(bare, "log", "-1", "--format=%B", commit)
    out = git(bare, "interpret-trailers", "--parse", stdin=message.encode())
    return [tuple(line.split(": ", 1)) for line in out.splitlines()]  # type: ignore[misc]


def object_commits(bare: Path, key: str, since: str | None = None) -> list[str]:
    """Commits after ``since`` whose Reconciler-Object trailer names ``key``, oldest first."""
    return [c for c in commits_since(bare, since) if ("Reconciler-Object", key) in trailers(bare, c)]


def subject(bare: Path, commit: str) -> str:
    """The commit's subject line."""
    return git(bare, "log", "-1", "--format=%s", commit)


def show(bare: Path, path: str, rev: str = BRANCH) -> str:
    """A file's text at ``rev``."""
    return git(bare, "show", f"{rev}:{path}")


def exists(bare: Path, path: str, rev: str = BRANCH) -> bool:
    """Whether ``path`` (file or directory) exists at ``rev``."""
    return bool(git(bare, "ls-tree", "--name-only", rev, "--", path))


def pool_databases(bare: Path, rev: str = BRANCH) -> list[str]:
    """Names in the pool's ``[databases]`` section at ``rev``."""
    lines = show(bare, POOL_INI, rev).split("[databases]", 1)[1].split("[pgbouncer]", 1)[0]
    return [line.split(" = ", 1)[0] for line in lines.splitlines() if " = " in line]


# -- objects -------------------------------------------------------------------------------


def customer(name: str, *, database: bool = False, storage: str = "20Gi", workers: int | None = None,
             webhooks: bool = False, suspend: bool = False, uid: str | None = None,
             generation: int | None = None) -> Customer:
    """A Customer as a platform user would write it."""
    features: dict[str, Any] = {"database": {"enabled": database, "storage": storage}}
    if workers is not None:
        features["scheduler"] = {"enabled": True, "workers": workers}
    if webhooks:
        features["webhooks"] = {"enabled": True}
    metadata: dict[str, Any] = {"name": name}
    if uid:
        metadata["uid"] = uid
    if generation is not None:
        metadata["generation"] = generation
    return Customer.model_validate({
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer", "metadata": metadata,
        "spec": {"suspend": suspend, "features": features},
    })


def preview(name: str, *, commit: str = SHA) -> Preview:
    """A Preview of the campaigns app."""
    return Preview.model_validate({
        "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Preview", "metadata": {"name": name},
        "spec": {"app": "campaigns", "branch": "feat/xyz", "commit": commit,
                 "image": f"registry.example.com/campaigns:{commit[:7]}"},
    })


def parsed(*objects: Customer | Preview, refusals: Sequence[Refusal] = (),
           incomplete: bool = False) -> Parsed:
    """What the source would read."""
    return Parsed(list(objects), list(refusals), incomplete)


def outcome_of(report: PassReport, key: str) -> Outcome:
    """The one outcome of ``key`` (e.g. ``customer/acme``) that is not a no-op."""
    found = [o for o in report.outcomes if str(o.key) == key]
    interesting = [o for o in found if o.result != Result.UNCHANGED] or found
    assert len(interesting) == 1, report.outcomes
    return interesting[0]


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """An empty bare config repository."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", BRANCH, str(path))
    return path


def make_engine(bare: Path, settings: Settings | None = None) -> Reconciler:
    """A Reconciler with its own writer on ``bare`` (a freshly started process)."""
    repo = GitConfigRepo.open(bare, branch=BRANCH, author_name="gitops-reconciler",
                              author_email="reconciler@example.invalid")
    return Reconciler(repo=repo, settings=settings or Settings(), version=VERSION)


@pytest.fixture
def engine(bare: Path) -> Reconciler:
    """A Reconciler on the empty repository, default settings."""
    return make_engine(bare)


# -- creating, changing, nothing to do -----------------------------------------------------


def test_a_new_customer_is_one_commit_with_trailers(bare, engine):
    """A new Customer becomes one commit holding its directory and its pool entry, with a
    subject in words and the trailers git interpret-trailers reads."""
    report = engine.sync(parsed(customer("acme", database=True, workers=2)))

    [commit] = commits_since(bare, None)
    assert report.ok and report.commits == [commit]
    assert outcome_of(report, "customer/acme").reason == Reason.CREATED
    assert subject(bare, commit) == "customer/acme: created (database 20Gi, scheduler 2 workers)"
    paths = touched(bare, commit)
    assert {"tenants/acme/namespace.yaml", "tenants/acme/database.yaml",
            "tenants/acme/scheduler.yaml", POOL_INI} <= paths
    assert all(p.startswith(("tenants/acme/", "platform/pgbouncer/", ".reconciler/")) for p in paths)
    found = dict(trailers(bare, commit))
    assert found["Reconciler-Object"] == "customer/acme"
    assert found["Reconciler-Action"] == "create"
    assert found["Reconciler-Generation"] == "1"
    assert found["Reconciler-Spec-Hash"].startswith("sha256:")
    assert found["Reconciler-Version"] == VERSION
    assert "Reconciler-UID" not in found
    assert pool_databases(bare) == ["acme"]


def test_the_uid_trailer_appears_when_the_uid_is_known(bare, engine):
    """An object carrying metadata.uid gets a Reconciler-UID trailer with it."""
    engine.sync(parsed(customer("acme", uid="2f6c1d1e-0000-4000-8000-000000000001")))
    [commit] = object_commits(bare, "customer/acme")
    assert dict(trailers(bare, commit))["Reconciler-UID"] == "2f6c1d1e-0000-4000-8000-000000000001"


def test_the_same_input_again_makes_no_commit(bare, engine):
    """A second pass over unchanged objects reports every one UNCHANGED and commits nothing."""
    objects = (customer("acme", database=True), customer("zeta"), preview("campaigns-feat-xyz"))
    engine.sync(parsed(*objects))
    tip = head(bare)

    report = engine.sync(parsed(*objects))

    assert head(bare) == tip
    assert report.commits == []
    assert {o.result for o in report.outcomes} == {Result.UNCHANGED}
    assert {str(o.key) for o in report.outcomes} == {"customer/acme", "customer/zeta",
                                                     "preview/campaigns-feat-xyz"}


def test_a_fresh_reconciler_on_an_existing_repo_makes_no_commit(bare, engine):
    """A newly started reconciler (nothing cached) recognises everything as up to date."""
    objects = (customer("acme", database=True, workers=2), customer("zeta", database=True),
               preview("campaigns-feat-xyz"))
    engine.sync(parsed(*objects))
    tip = head(bare)

    report = make_engine(bare).sync(parsed(*objects))

    assert head(bare) == tip
    assert {o.result for o in report.outcomes} == {Result.UNCHANGED}


def test_a_spec_change_is_exactly_one_commit_touching_only_that_object(bare, engine):
    """Changing one Customer's workers makes one commit, only under its own directory, whose
    subject says what changed."""
    engine.sync(parsed(customer("acme", database=True, workers=2), customer("zeta", database=True)))
    tip = head(bare)

    report = engine.sync(parsed(customer("acme", database=True, workers=4),
                                customer("zeta", database=True)))

    [commit] = commits_since(bare, tip)
    assert outcome_of(report, "customer/acme").reason == Reason.UPDATED
    assert outcome_of(report, "customer/zeta").result == Result.UNCHANGED
    assert subject(bare, commit) == "customer/acme: scheduler 2 -> 4 workers"
    assert touched(bare, commit) == {"tenants/acme/scheduler.yaml", "tenants/acme/.reconciler.json"}
    assert dict(trailers(bare, commit))["Reconciler-Action"] == "update"


def test_enabling_the_database_adds_the_pool_entry_in_the_same_commit(bare, engine):
    """Turning a database on writes the tenant's database and its pool line in one commit;
    turning it off removes both in one commit; other tenants' lines stay."""
    engine.sync(parsed(customer("acme", database=True), customer("zeta")))
    before = head(bare)
    assert pool_databases(bare) == ["acme"]

    engine.sync(parsed(customer("acme", database=True), customer("zeta", database=True)))
    [enabled] = commits_since(bare, before)
    assert {"tenants/zeta/database.yaml", POOL_INI} <= touched(bare, enabled)
    assert all(p.startswith(("tenants/zeta/", "platform/pgbouncer/")) for p in touched(bare, enabled))
    assert pool_databases(bare) == ["acme", "zeta"]
    assert subject(bare, enabled) == "customer/zeta: database 20Gi enabled"

    engine.sync(parsed(customer("acme", database=True), customer("zeta")))
    [disabled] = commits_since(bare, enabled)
    assert {"tenants/zeta/database.yaml", POOL_INI} <= touched(bare, disabled)
    assert not exists(bare, "tenants/zeta/database.yaml")
    assert pool_databases(bare) == ["acme"]
    assert subject(bare, disabled) == "customer/zeta: database disabled"


def test_removing_a_customer_removes_its_directory_and_pool_line_in_one_commit(bare, engine):
    """A Customer no longer among the resources loses its directory and its pool entry in a
    single delete commit."""
    engine.sync(parsed(customer("acme", database=True), customer("zeta", database=True, workers=3)))
    before = head(bare)
    files = git(bare, "ls-tree", "-r", "--name-only", BRANCH, "tenants/zeta").split()

    report = engine.sync(parsed(customer("acme", database=True)))

    [commit] = commits_since(bare, before)
    assert outcome_of(report, "customer/zeta").reason == Reason.REMOVED
    assert touched(bare, commit) == {*files, POOL_INI, POOL_RECORD}
    assert not exists(bare, "tenants/zeta")
    assert pool_databases(bare) == ["acme"]
    assert subject(bare, commit) == "customer/zeta: removed"
    assert dict(trailers(bare, commit))["Reconciler-Action"] == "delete"


def test_removing_a_preview_removes_its_directory(bare, engine):
    """A Preview that is gone loses its directory in one commit; Customers are untouched."""
    engine.sync(parsed(customer("acme"), preview("campaigns-feat-xyz"), preview("other")))
    before = head(bare)
    engine.sync(parsed(customer("acme"), preview("campaigns-feat-xyz")))
    [commit] = commits_since(bare, before)
    assert all(p.startswith("previews/other/") for p in touched(bare, commit))
    assert not exists(bare, "previews/other") and exists(bare, "previews/campaigns-feat-xyz")


# -- what is left alone ----------------------------------------------------------------------


def test_an_object_whose_file_became_invalid_keeps_its_directory(bare, engine):
    """A refusal that names the object (its file failed validation) holds its directory and its
    pool entry; nothing is committed for it."""
    engine.sync(parsed(customer("acme", database=True), customer("zeta", database=True)))
    tip = head(bare)
    refusal = Refusal("customers/zeta.yaml", "Customer 'zeta': spec.features: bad",
                      ObjectKey("Customer", "zeta"))

    report = engine.sync(parsed(customer("acme", database=True), refusals=[refusal]))

    assert head(bare) == tip
    assert exists(bare, "tenants/zeta/namespace.yaml")
    assert pool_databases(bare) == ["acme", "zeta"]
    assert not report.ok
    assert outcome_of(report, "customer/zeta").result == Result.REFUSED


def test_nothing_is_removed_when_the_input_is_incomplete(bare, engine):
    """When some file could not be parsed at all, absent objects are held, not removed."""
    engine.sync(parsed(customer("acme"), customer("zeta"), preview("campaigns-feat-xyz")))
    tip = head(bare)
    unreadable = Refusal("customers/broken.yaml", "invalid YAML at line 3: ...")

    report = engine.sync(parsed(customer("acme"), refusals=[unreadable], incomplete=True))

    assert head(bare) == tip
    assert exists(bare, "tenants/zeta") and exists(bare, "previews/campaigns-feat-xyz")
    held = {str(o.key) for o in report.outcomes if o.reason == Reason.REMOVAL_HELD}
    assert held == {"customer/zeta", "preview/campaigns-feat-xyz"}


def test_an_unparseable_file_does_not_take_a_database_out_of_the_pool(bare, engine):
    """When zeta's file cannot be parsed, zeta keeps its directory and its pool entry."""
    engine.sync(parsed(customer("acme", database=True), customer("zeta", database=True)))
    tip = head(bare)
    unreadable = Refusal("customers/zeta.yaml", "invalid YAML at line 3: ...")
    engine.sync(parsed(customer("acme", database=True), refusals=[unreadable], incomplete=True))
    assert exists(bare, "tenants/zeta")
    assert pool_databases(bare) == ["acme", "zeta"]
    assert head(bare) == tip


@pytest.mark.parametrize("record", [None, b'{"kind": "Customer", "name": "someone-else", '
                                          b'"inputHash": "sha256:0"}\n'],
                         ids=["no-record", "record-of-another-object"])
def test_a_directory_without_its_own_source_record_is_never_removed(bare, engine, record):
    """A directory a human made under tenants/ (no source record, or one naming another
    object) is reported NOT_OWNED and kept."""
    engine.sync(parsed(customer("acme")))
    files = {"tenants/handmade/namespace.yaml": b"kind: Namespace\n"}
    if record is not None:
        files["tenants/handmade/.reconciler.json"] = record
    tip = human_commit(bare, files)

    report = engine.sync(parsed(customer("acme")))

    assert head(bare) == tip
    assert exists(bare, "tenants/handmade/namespace.yaml")
    assert outcome_of(report, "customer/handmade").reason == Reason.NOT_OWNED


def test_a_suspended_object_gets_no_commit(bare, engine):
    """While spec.suspend is true, neither a change to an existing Customer nor a new
    suspended Customer or Preview is committed."""
    engine.sync(parsed(customer("acme", workers=2)))
    tip = head(bare)

    report = engine.sync(parsed(customer("acme", workers=5, suspend=True), customer("newcomer",
                                                                               suspend=True)))

    assert head(bare) == tip
    assert outcome_of(report, "customer/acme").reason == Reason.SUSPENDED
    assert outcome_of(report, "customer/newcomer").reason == Reason.SUSPENDED
    assert "replicas: 2" in show(bare, "tenants/acme/scheduler.yaml")
    assert not exists(bare, "tenants/newcomer")

    engine.sync(parsed(customer("acme", workers=5)))
    [resumed] = commits_since(bare, tip)
    assert subject(bare, resumed) == "customer/acme: scheduler 2 -> 5 workers"


def test_a_suspended_customer_with_a_database_gets_no_commit(bare, engine):
    """A new Customer that is suspended from the start writes nothing, not even a pool line."""
    engine.sync(parsed(customer("acme", database=True)))
    tip = head(bare)
    engine.sync(parsed(customer("acme", database=True), customer("sleepy", database=True,
                                                                 suspend=True)))
    assert head(bare) == tip
    assert pool_databases(bare) == ["acme"]


def test_a_customer_whose_namespace_would_be_too_long_is_refused(bare, engine):
    """A name that is a valid label but too long once the namespace pattern is applied is
    refused with a message naming metadata.name; nothing is written for it."""
    long_name = "n" * 60
    report = engine.sync(parsed(customer("acme"), customer(long_name)))
    refused = outcome_of(report, f"customer/{long_name}")
    assert refused.result == Result.REFUSED and "metadata.name" in refused.message
    assert not exists(bare, f"tenants/{long_name}")
    assert exists(bare, "tenants/acme")


def test_a_refused_customer_with_a_database_gets_no_pool_entry(bare, engine):
    """Nothing is written for a Customer refused for its namespace length: no pool line."""
    engine.sync(parsed(customer("acme", database=True), customer("n" * 60, database=True)))
    assert pool_databases(bare) == ["acme"]


def test_another_writers_commit_between_passes_is_kept(bare, engine):
    """A human commit made between two passes stays in the history and the tree; the next
    reconciler commit is built on top of it."""
    engine.sync(parsed(customer("acme", workers=2)))
    human = human_commit(bare, {"NOTES.md": b"written by a human\n"})
    engine.sync(parsed(customer("acme", workers=3)))
    [commit] = commits_since(bare, human)
    assert git(bare, "rev-parse", f"{commit}^") == human
    assert show(bare, "NOTES.md") == "written by a human"


# -- many objects, generations, settings -----------------------------------------------------


def test_more_new_objects_than_import_batch_make_one_import_commit(bare):
    """A first pass with more new objects than import_batch adds them all in one import
    commit whose trailers name every object."""
    engine = make_engine(bare, Settings(import_batch=3))
    objects = [customer(f"c{i}", database=i % 2 == 0) for i in range(4)] + [preview("p0")]

    report = engine.sync(parsed(*objects))

    [commit] = commits_since(bare, None)
    assert set(report.commits) == {commit}
    assert subject(bare, commit) == "import: add 5 customers and previews"
    found = trailers(bare, commit)
    assert sorted(v for k, v in found if k == "Reconciler-Object") == sorted(str(o.key) for o in objects)
    assert ("Reconciler-Action", "import") in found
    assert {o.reason for o in report.outcomes if o.result == Result.COMMITTED} == {Reason.IMPORTED}
    assert pool_databases(bare) == ["c0", "c2"]
    assert all(exists(bare, o.key.directory + "/kustomization.yaml") for o in objects)
    tip = head(bare)
    assert make_engine(bare, Settings(import_batch=3)).sync(parsed(*objects)).commits == []
    assert head(bare) == tip


def test_the_report_of_an_import_lists_its_commit_once(bare):
    """PassReport.commits names each commit made in the pass once."""
    engine = make_engine(bare, Settings(import_batch=3))
    report = engine.sync(parsed(*[customer(f"c{i}") for i in range(5)]))
    assert report.commits == commits_since(bare, None)


def test_local_mode_counts_generations_across_spec_changes(bare, engine):
    """Without metadata.generation the reconciler numbers spec changes 1, 2, 3 in the
    Reconciler-Generation trailer and the source record; a pass without change adds none."""
    specs = [customer("acme", workers=1), customer("acme", workers=2), customer("acme", workers=2),
             customer("acme", workers=3)]
    for obj in specs:
        engine.sync(parsed(obj))
    generations = [dict(trailers(bare, c))["Reconciler-Generation"]
                   for c in object_commits(bare, "customer/acme")]
    assert generations == ["1", "2", "3"]
    assert '"generation": 3' in show(bare, "tenants/acme/.reconciler.json")


def test_a_resources_own_generation_is_recorded_as_is(bare, engine):
    """When metadata.generation is set (a cluster object) it is the generation recorded."""
    engine.sync(parsed(customer("acme", workers=1, generation=7)))
    engine.sync(parsed(customer("acme", workers=2, generation=9)))
    assert [dict(trailers(bare, c))["Reconciler-Generation"]
            for c in object_commits(bare, "customer/acme")] == ["7", "9"]


def test_an_imported_objects_first_change_is_generation_two(bare):
    """Generations count the same for imported objects: creation is 1, the first change 2."""
    engine = make_engine(bare, Settings(import_batch=1))
    engine.sync(parsed(customer("acme", workers=1), customer("zeta")))
    tip = head(bare)
    engine.sync(parsed(customer("acme", workers=2), customer("zeta")))
    [commit] = commits_since(bare, tip)
    assert dict(trailers(bare, commit))["Reconciler-Generation"] == "2"


def test_a_settings_change_rerenders_every_object_in_one_commit(bare, engine):
    """Changing the domain re-renders every object on the next pass in one commit whose
    subject says what changed and whose trailers name every object, with reason Rerendered
    and no new generation."""
    objects = (customer("acme", webhooks=True), customer("zeta"), preview("campaigns-feat-xyz"))
    engine.sync(parsed(*objects))
    tip = head(bare)

    report = make_engine(bare, Settings(domain="apps.example.org")).sync(parsed(*objects))

    for key in ("customer/acme", "customer/zeta", "preview/campaigns-feat-xyz"):
        outcome = outcome_of(report, key)
        assert (outcome.result, outcome.reason) == (Result.COMMITTED, Reason.RERENDERED)
    [commit] = commits_since(bare, tip)
    assert subject(bare, commit) == \
        "rerender: domain example.com -> apps.example.org (2 tenants, 1 preview)"
    found = trailers(bare, commit)
    assert ("Reconciler-Action", "rerender") in found
    assert ("Reconciler-Setting", "domain") in found
    assert {v for k, v in found if k == "Reconciler-Object"} == {
        "customer/acme", "customer/zeta", "preview/campaigns-feat-xyz"}
    assert '"generation": 1' in show(bare, "tenants/acme/.reconciler.json")
    assert "acme.hooks.apps.example.org" in show(bare, "tenants/acme/webhooks.yaml")
    assert "preview-campaigns-feat-xyz.apps.example.org" in show(bare, "previews/campaigns-feat-xyz/app.yaml")
    assert '"domain": "apps.example.org"' in show(bare, ".reconciler/settings.json")
    # the next pass finds everything up to date
    again = make_engine(bare, Settings(domain="apps.example.org")).sync(parsed(*objects))
    assert again.commits == []


def test_an_image_bump_over_many_tenants_is_one_commit_with_the_pool(bare):
    """Bumping the scheduler and pgbouncer images over many tenants (with databases) makes one
    commit naming both images, the pool included, and no commit touching only a record."""
    objects = [customer(f"t{i:03d}", workers=2, database=i % 2 == 0) for i in range(120)]
    make_engine(bare, Settings(import_batch=10)).sync(parsed(*objects))
    tip = head(bare)
    bumped = Settings(import_batch=10, images={"scheduler": "ghcr.io/ahoi/scheduler:1.4.3",
                                               "pgbouncer": "ghcr.io/cloudnative-pg/pgbouncer:1.24.2"})
    make_engine(bare, bumped).sync(parsed(*objects))
    [commit] = commits_since(bare, tip)
    assert subject(bare, commit) == ("rerender: pgbouncer image 1.24.1 -> 1.24.2; scheduler "
                                     "image 1.4.2 -> 1.4.3 (120 tenants)")
    assert any(p.startswith("platform/pgbouncer/") and not p.endswith(".reconciler.json")
               for p in touched(bare, commit))
    assert len([v for k, v in trailers(bare, commit) if k == "Reconciler-Object"]) == 120


def test_a_setting_that_changes_no_rendered_file_commits_nothing_in_any_kind_of_pass(bare):
    """A database pin for a version no tenant runs changes only the records' input hashes:
    neither a full pass, nor the grouped re-render, nor one object's own pass (the
    controller's queue) commits a record file alone."""
    objects = (customer("acme", database=True, webhooks=True), preview("campaigns-feat-xyz"))
    make_engine(bare).sync(parsed(*objects))
    tip = head(bare)
    pinned = Settings(images={"database_pins": {
        "9": "docker.io/library/postgres:9@sha256:" + "a" * 64}})

    assert make_engine(bare, pinned).sync(parsed(*objects)).commits == []
    assert all(o.result != Result.COMMITTED for o in make_engine(bare, pinned).rerender(
        list(objects)))
    for obj in objects:
        outcome = make_engine(bare, pinned).apply(obj)
        assert (outcome.result, outcome.reason) == (Result.UNCHANGED, Reason.UP_TO_DATE)
    assert head(bare) == tip


def test_a_rerender_is_cut_into_bounded_batches(bare):
    """With rerender_batch 2, five re-rendered tenants land as three commits, each saying
    which batch it is."""
    objects = [customer(f"t{i}", workers=1) for i in range(5)]
    make_engine(bare).sync(parsed(*objects))
    tip = head(bare)
    make_engine(bare, Settings(rerender_batch=2, images={
        "scheduler": "ghcr.io/ahoi/scheduler:2.0.0"})).sync(parsed(*objects))
    subjects = [subject(bare, c) for c in commits_since(bare, tip)]
    assert subjects == [f"rerender: scheduler image 1.4.2 -> 2.0.0 (2 tenants, batch {n}/3)"
                        for n in (1, 2)] + [
        "rerender: scheduler image 1.4.2 -> 2.0.0 (1 tenant, batch 3/3)"]


# -- repairing hand edits --------------------------------------------------------------------


def test_a_deleted_pool_record_is_restored_by_the_next_pass(bare, engine):
    """When someone deletes platform/pgbouncer/.reconciler.json by hand, the running
    reconciler's next pass puts it back and the pool still lists every database."""
    objects = (customer("acme", database=True), customer("zeta", database=True))
    engine.sync(parsed(*objects))
    expected = show(bare, POOL_RECORD)
    edit = human_commit(bare, {POOL_RECORD: None})

    engine.sync(parsed(*objects))

    assert len(commits_since(bare, edit)) == 1
    assert show(bare, POOL_RECORD) == expected
    assert pool_databases(bare) == ["acme", "zeta"]


def test_a_fresh_reconciler_repairs_a_deleted_pool_record_without_dropping_databases(bare, engine):
    """Every commit of the repair by a newly started reconciler lists every database."""
    objects = (customer("acme", database=True), customer("zeta", database=True))
    engine.sync(parsed(*objects))
    edit = human_commit(bare, {POOL_RECORD: None})
    make_engine(bare).sync(parsed(*objects))
    repair = commits_since(bare, edit)
    assert repair
    assert [pool_databases(bare, c) for c in repair] == [["acme", "zeta"]] * len(repair)


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
def test_a_hand_edited_pool_configuration_is_repaired_by_the_next_pass(bare, engine, fresh):
    """An edit to pgbouncer.ini made with git is replaced by the rendered file on the next pass."""
    objects = (customer("acme", database=True),)
    engine.sync(parsed(*objects))
    rendered = show(bare, POOL_INI)
    human_commit(bare, {POOL_INI: rendered.replace("acme = ", "acme = evil ").encode() + b"\n"})
    (make_engine(bare) if fresh else engine).sync(parsed(*objects))
    assert show(bare, POOL_INI) == rendered


def test_a_running_engine_forgets_directories_that_are_gone(bare, engine):
    """Across passes of one running engine (watch mode), a full snapshot holds exactly the
    resources and the directories at the head: one removed by its resource or by a person
    is forgotten, never judged again, and its memory is not kept."""
    engine.sync(parsed(customer("a"), customer("b"), customer("c")))
    engine.sync(parsed(customer("a"), customer("c")))  # b removed through its resource
    files = git(bare, "ls-tree", "-r", "--name-only", BRANCH, "tenants/c").split()
    human_commit(bare, dict.fromkeys(files))  # c's directory deleted by a person
    snapshot = engine.snapshot(parsed(customer("a")))
    assert set(snapshot.directories) == {ObjectKey("Customer", "a")}
    report = engine.sync(parsed(customer("a")))
    assert report.ok and not report.commits
    assert [str(o.key) for o in report.outcomes] == ["customer/a"]
