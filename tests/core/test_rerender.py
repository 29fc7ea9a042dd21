"""The text and the branch of a settings change's pull request (pure functions)."""

from __future__ import annotations

from reconciler.core import rerender
from reconciler.core.models import ObjectKey

OLD = rerender.settings_record({"images": {"scheduler": "ghcr.io/ahoi/scheduler:1.4.2"}}, "1.0")
NEW = rerender.settings_record({"images": {"scheduler": "ghcr.io/ahoi/scheduler:1.4.3"}}, "1.0")


def test_the_branch_is_named_after_the_record_the_change_starts_from() -> None:
    """Two targets from the same start share one branch; another start gets another; a
    missing or hand-garbled record still gives a safe branch name."""
    assert rerender.rerender_branch(OLD) == rerender.rerender_branch(OLD)
    assert rerender.rerender_branch(OLD) != rerender.rerender_branch(NEW)
    for raw in (None, b"", b"\x00not json\n../..", b"{}"):
        name = rerender.rerender_branch(raw)
        assert name.startswith("reconciler/rerender/")
        assert set(name.rsplit("/", 1)[1]) <= set("0123456789abcdef")


def test_a_large_re_render_says_what_changed_and_counts_instead_of_listing() -> None:
    """3,000 tenants: the title says what changed and how many, the body counts the objects
    instead of listing them, and names the record it proposes (and only that one)."""
    keys = [ObjectKey("Customer", f"t{i:05d}") for i in range(3000)]

    title, body = rerender.pull_request_text(keys, OLD, NEW, commits=1)

    assert title == "rerender: scheduler image 1.4.2 -> 1.4.3 (3,000 tenants)"
    assert "- images.scheduler: ghcr.io/ahoi/scheduler:1.4.2 -> ghcr.io/ahoi/scheduler:1.4.3" \
        in body
    assert "re-rendered 3,000 tenants in 1 commit; no spec changed" in body
    assert "3,000 objects" in body and "t00007" not in body
    assert rerender.proposes(body, NEW) and not rerender.proposes(body, OLD)


def test_a_start_without_a_record_still_gets_a_title() -> None:
    """No settings record on the target (an older repository): the title says settings or
    the version changed."""
    title, _ = rerender.pull_request_text([ObjectKey("Preview", "p")], None, NEW, commits=2)
    assert title == "rerender: settings or reconciler version changed (1 preview)"
