"""What a pass keeps in memory at fleet size: structural properties, not RSS figures.

A real bare repository; a restart reads it as a freshly started process would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.core import sources, yamlio
from reconciler.core.models import ObjectKey
from reconciler.core.outcomes import Result
from reconciler.reconcile import snapshots
from reconciler.reconcile.engine import Reconciler
from tests.gitcli import git
from tests.reconcile.test_cold_start import SETTINGS, open_repo
from tests.reconcile.test_engine import BRANCH, VERSION, customer, parsed

NAMES = [f"m{i:02d}" for i in range(8)]


def manifests(workers: dict[str, int]) -> sources.Parsed:
    """The fleet as the file source parses it (one file of documents)."""
    docs = [{"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
             "metadata": {"name": name},
             "spec": {"features": {"scheduler": {"enabled": True,
                                                 "workers": workers.get(name, 1)}}}}
            for name in NAMES]
    return sources.parse_text("fleet.yaml", yamlio.dump_documents(docs))


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A repository the reconciler imported the fleet into."""
    path = tmp_path / "config.git"
    git(tmp_path, "init", "-q", "--bare", "-b", BRANCH, str(path))
    engine = Reconciler(repo=open_repo(path), settings=SETTINGS, version=VERSION)
    report = engine.sync(manifests({}))
    assert report.commits
    return path


def test_a_restart_with_a_tiny_record_cache_still_decides_right(bare, monkeypatch):
    """Source records dropped from the bounded cache are still read right: an unchanged
    fleet writes nothing, and a changed spec is committed (its old record parsed again)."""
    monkeypatch.setattr(snapshots, "RECORDS_KEPT", 2)
    engine = Reconciler(repo=open_repo(bare), settings=SETTINGS, version=VERSION)
    report = engine.sync(manifests({}))
    assert report.commits == []
    assert all(o.result == Result.UNCHANGED for o in report.outcomes), report.outcomes
    assert len(engine._reader._records) <= 2
    changed = engine.apply(customer("m03", workers=4))
    assert changed.result == Result.COMMITTED, changed
    record = json.loads(git(bare, "show", f"{BRANCH}:tenants/m03/.reconciler.json"))
    assert record["spec"]["features"]["scheduler"]["workers"] == 4
    assert engine.directory_state(ObjectKey("Customer", "m04")).own_record.spec == \
        {**engine.directory_state(ObjectKey("Customer", "m04")).record.spec}


def test_a_pass_keeps_one_string_per_tenant_name(bare):
    """The name in a parsed model, in the directory listing's key and in the source
    record read from the repository is one string object, not one copy each."""
    fleet = manifests({})
    engine = Reconciler(repo=open_repo(bare), settings=SETTINGS, version=VERSION)
    engine.sync(fleet)
    for obj in fleet.objects:
        state = engine.directory_state(ObjectKey("Customer", obj.metadata.name))
        assert state.record is not None
        assert state.record.name is obj.metadata.name
        listed = open_repo(bare).list_directories("tenants")
        assert next(n for n in listed if n == obj.metadata.name) is obj.metadata.name


def test_models_keep_no_cached_key(bare):
    """A model's key is made when asked, never stored in the model (one per tenant of a
    watched fleet)."""
    obj = manifests({}).objects[0]
    assert obj.key == ObjectKey("Customer", obj.metadata.name)
    assert "key" not in obj.__dict__
    assert parsed(obj).objects[0].key.name is obj.metadata.name
