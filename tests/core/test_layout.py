"""The tenant layout function: stable shards, paths mapped both ways, migrations planned."""

from __future__ import annotations

import hashlib

import pytest

from reconciler.core import layout
from reconciler.core.models import ObjectKey


def test_shard_is_the_first_two_hex_digits_of_sha256_of_the_name():
    """The documented shard function: ``_`` + sha256(name)[:2], 256 shards, never a name."""
    assert layout.shard_of("acme") == "_" + hashlib.sha256(b"acme").hexdigest()[:2] == "_82"
    shards = {layout.shard_of(f"customer-{i:05d}") for i in range(10_000)}
    assert len(shards) == 256 and all(layout.is_shard(s) for s in shards)


def test_shards_stay_well_under_three_thousand_entries_at_100k():
    """100,000 tenants spread over 256 shards with the largest far below ~3,000 entries."""
    counts: dict[str, int] = {}
    for i in range(100_000):
        shard = layout.shard_of(f"tenant-{i:06d}")
        counts[shard] = counts.get(shard, 0) + 1
    assert max(counts.values()) < 500


def test_paths_map_to_the_shard_and_back():
    """Tenant paths gain their shard, other paths are untouched, and the mapping inverts."""
    for logical in ("tenants/acme", "tenants/acme/namespace.yaml"):
        physical = layout.physical_path(logical, layout.SHARDED)
        assert physical.startswith("tenants/_82/acme")
        assert layout.logical_path(physical, layout.SHARDED) == logical
        assert layout.physical_path(logical, layout.FLAT) == logical
    for other in ("previews/acme/app.yaml", "platform/pgbouncer/pgbouncer.ini",
                  "tenants", "tenants/.gitkeep", ".reconciler/settings.json"):
        assert layout.physical_path(other, layout.SHARDED) == other
    assert layout.directory_of(ObjectKey("Customer", "acme"), layout.SHARDED) == \
        "tenants/_82/acme"


def test_commit_messages_name_the_files_where_they_are():
    """A commit body listing tenants/acme/... lists tenants/_82/acme/... when sharded."""
    text = "customer/acme: created\n\nFiles:\ntenants/acme/namespace.yaml (+12)\n"
    assert "tenants/_82/acme/namespace.yaml" in layout.physical_text(text, layout.SHARDED)
    assert layout.physical_text(text, layout.FLAT) == text


def test_migration_moves_every_flat_tenant_into_its_shard_and_back():
    """Flat -> sharded moves each directory to its shard; sharded -> flat undoes it; a repo
    already laid out so plans nothing."""
    moves = layout.plan_migration(["acme", "globex"], {}, layout.SHARDED)
    assert moves == {"tenants/acme": "tenants/_82/acme",
                     "tenants/globex": f"tenants/{layout.shard_of('globex')}/globex"}
    shards = {"_82": ["acme"], layout.shard_of("globex"): ["globex"]}
    back = layout.plan_migration(list(shards), shards, layout.FLAT)
    assert sorted(back.values()) == ["tenants/acme", "tenants/globex"]
    assert layout.plan_migration(list(shards), shards, layout.SHARDED) == {}
    assert layout.plan_migration(["acme"], {}, layout.FLAT) == {}


def test_migration_refuses_a_repo_holding_both_layouts():
    """Flat and sharded tenant directories side by side (made by hand) are refused by name."""
    with pytest.raises(layout.MigrationConflictError, match=r"tenants/acme.*tenants/_82/x"):
        layout.plan_migration(["acme", "_82"], {"_82": ["x"]}, layout.SHARDED)


def test_a_mismatch_is_one_line_naming_the_fix():
    """Settings asking for one layout over a repo in the other name the migrate command."""
    layout.check_layout(None, layout.SHARDED)
    layout.check_layout(layout.FLAT, layout.FLAT)
    with pytest.raises(layout.LayoutMismatchError) as caught:
        layout.check_layout(layout.FLAT, layout.SHARDED)
    assert "\n" not in str(caught.value)
    assert "reconciler migrate-layout --to sharded" in str(caught.value)


def test_a_garbled_layout_record_is_refused_not_guessed():
    """A hand-edited record naming no layout is an error, an absent one means flat."""
    assert layout.parse_layout_record(None) == layout.FLAT
    assert layout.parse_layout_record(layout.layout_record(layout.SHARDED)) == layout.SHARDED
    with pytest.raises(layout.LayoutMismatchError):
        layout.parse_layout_record(b'{"layout": "spiral"}')
