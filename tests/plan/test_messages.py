"""Commit messages: subjects a reviewer reads, and trailers that git itself parses the same
way the reconciler does."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from reconciler.core import messages
from reconciler.core.models import CustomerSpec, ObjectKey, PreviewSpec

ACME = ObjectKey("Customer", "acme")
PREVIEW = ObjectKey("Preview", "campaigns-feat-xyz")
SHA_OLD = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_NEW = "b32bef0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a"


def spec(**features: dict[str, Any]) -> dict[str, Any]:
    """A full Customer spec (defaults filled in, as the reconciler records it)."""
    return CustomerSpec.model_validate({"features": features}).model_dump(mode="json")


def preview_spec(commit: str, **extra: Any) -> dict[str, Any]:
    """A full Preview spec at ``commit``."""
    return PreviewSpec.model_validate({"app": "campaigns", "branch": "feat/xyz", "commit": commit,
                                       "image": f"registry.example.com/campaigns:{commit[:7]}",
                                       **extra}).model_dump(mode="json")


def subject(action: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
            key: ObjectKey = ACME) -> str:
    """The subject of one object change."""
    return messages.subject_for(messages.ObjectChange(key, action, old, new))


DB_20 = {"enabled": True, "storage": "20Gi"}


@pytest.mark.parametrize(("action", "old", "new", "expected"), [
    pytest.param("update", spec(scheduler={"enabled": True, "workers": 2}),
                 spec(scheduler={"enabled": True, "workers": 4}),
                 "customer/acme: scheduler 2 -> 4 workers", id="workers-up"),
    pytest.param("update", spec(scheduler={"enabled": True, "workers": 3}),
                 spec(scheduler={"enabled": True, "workers": 1}),
                 "customer/acme: scheduler 3 -> 1 worker", id="workers-down-to-one"),
    pytest.param("update", spec(), spec(database=DB_20),
                 "customer/acme: database 20Gi enabled", id="database-enabled"),
    pytest.param("update", spec(database=DB_20), spec(),
                 "customer/acme: database disabled", id="database-disabled"),
    pytest.param("update", spec(database=DB_20), spec(database={"enabled": True, "storage": "50Gi"}),
                 "customer/acme: database storage 20Gi -> 50Gi", id="storage-grows"),
    pytest.param("update", spec(),
                 spec(scheduler={"enabled": True, "workers": 3}, webhooks={"enabled": True}),
                 "customer/acme: scheduler 3 workers enabled; webhooks enabled", id="two-features"),
    pytest.param("update", spec(webhooks={"enabled": True}), spec(webhooks={"enabled": True, "replicas": 3}),
                 "customer/acme: webhooks replicas 1 -> 3", id="webhook-replicas"),
    pytest.param("update", spec(), {**spec(), "quota": {**spec()["quota"], "pods": 80}},
                 "customer/acme: quota.pods 50 -> 80", id="quota"),
    pytest.param("create", None, spec(database=DB_20, scheduler={"enabled": True, "workers": 2}),
                 "customer/acme: created (database 20Gi, scheduler 2 workers)", id="created"),
    pytest.param("create", None, spec(), "customer/acme: created (namespace only)",
                 id="created-bare"),
    pytest.param("delete", spec(database=DB_20), None, "customer/acme: removed", id="removed"),
    pytest.param("rerender", spec(), spec(),
                 "customer/acme: re-rendered (settings or reconciler version changed)", id="rerender"),
])
def test_customer_subjects_say_what_changed(action, old, new, expected):
    """Each typical Customer change gets the subject a reviewer expects."""
    assert subject(action, old, new) == expected


def test_changing_a_disabled_feature_is_not_reported_as_a_feature_change():
    """Storage of a disabled database changes nothing deployed; the subject says re-rendered."""
    old = spec(database={"enabled": False, "storage": "20Gi"})
    new = spec(database={"enabled": False, "storage": "50Gi"})
    assert "storage" not in subject("update", old, new)


def test_preview_subjects_name_the_commit():
    """A Preview's creation names app, branch and short commit; a new commit (with its new
    image) leads with both short SHAs."""
    assert subject("create", None, preview_spec(SHA_NEW), PREVIEW) == (
        "preview/campaigns-feat-xyz: created (campaigns feat/xyz@b32bef0)")
    moved = subject("update", preview_spec(SHA_OLD), preview_spec(SHA_NEW), PREVIEW)
    assert moved.startswith("preview/campaigns-feat-xyz: commit a1b2c3d -> b32bef0; image ")
    assert len(moved) <= messages.SUBJECT_MAX
    host = subject("update", preview_spec(SHA_NEW), preview_spec(SHA_NEW, host="x.example.com"), PREVIEW)
    assert host == "preview/campaigns-feat-xyz: host unset -> x.example.com"


def test_long_subjects_are_shortened_at_a_word():
    """A change touching many fields still gives a subject of at most 100 characters,
    cut at a word and marked with an ellipsis."""
    new = {**spec(), "displayName": "A rather long display name " * 3,
           "quota": {"cpu": "64", "memory": "256Gi", "pods": 5000}}
    text = subject("update", spec(), new, ObjectKey("Customer", "c" * 63))
    assert len(text) <= messages.SUBJECT_MAX
    assert text.endswith(" …")


def test_subject_stays_one_line_whatever_the_display_name():
    """A displayName containing newlines gives a one-line subject, and cannot plant trailers
    in the commit message."""
    new = {**spec(), "displayName": "ACME\n\nReconciler-Object: customer/other"}
    change = messages.ObjectChange(ACME, "update", spec(), new, generation=2)
    assert "\n" not in messages.subject_for(change)
    message = messages.object_message(change, ["M tenants/acme/namespace.yaml"], [], "0.1.0")
    assert messages.trailer_values(message, "Reconciler-Object") == ["customer/acme"]
    assert dict(git_trailers(message))["Reconciler-Object"] == "customer/acme"


# -- trailers ------------------------------------------------------------------------------


def full_messages() -> dict[str, str]:
    """Complete commit messages as the reconciler writes them, by case."""
    update = messages.ObjectChange(ACME, "update", spec(scheduler={"enabled": True, "workers": 2}),
                                   spec(scheduler={"enabled": True, "workers": 4}), generation=5,
                                   uid="0d9f3b1c-2f43-4c8e-9a77-4a3c1f8f1f10",
                                   spec_hash="sha256:0123456789abcdef0123456789abcdef")
    created = messages.ObjectChange(PREVIEW, "create", None, preview_spec(SHA_NEW), generation=1,
                                    spec_hash="sha256:fedcba9876543210fedcba9876543210")
    removed = messages.ObjectChange(ACME, "delete", spec(database=DB_20), None, generation=9)
    local = messages.ObjectChange(ACME, "update", spec(), spec(database=DB_20))
    files = ["M tenants/acme/scheduler.yaml", "M tenants/acme/.reconciler.json"]
    pool = ["- connection pool updated (platform/pgbouncer)"]
    return {
        "update": messages.object_message(update, files, [], "0.1.0"),
        "create-preview": messages.object_message(created, ["A previews/x/app.yaml"], [], "0.1.0"),
        "remove-with-pool": messages.object_message(removed, ["D tenants/acme/namespace.yaml"], pool,
                                                    "0.1.0"),
        "local-mode": messages.object_message(local, [], [], "0.2.0.dev1"),
        "import": messages.import_message(
            [ObjectKey("Customer", n) for n in "abc"] + [PREVIEW], pool, "0.1.0"),
    }


def git_trailers(message: str) -> list[tuple[str, str]]:
    """The trailers `git interpret-trailers --parse` reads from ``message``."""
    proc = subprocess.run(["git", "interpret-trailers", "--parse"], input=message,
                          capture_output=True, text=True, check=True)
    return [(k, v) for k, _, v in (line.partition(": ") for line in proc.stdout.splitlines())]


@pytest.mark.parametrize("case", list(full_messages()))
def test_git_and_the_reconciler_read_the_same_trailers(case):
    """git interpret-trailers --parse and messages.parse_trailers read identical trailers."""
    message = full_messages()[case]
    ours = messages.parse_trailers(message)
    assert ours
    assert git_trailers(message) == ours


def test_update_trailers_identify_the_object_generation_and_spec():
    """An update's trailers carry object, action, generation, UID, spec hash and version."""
    trailers = dict(git_trailers(full_messages()["update"]))
    assert trailers == {
        "Reconciler-Object": "customer/acme",
        "Reconciler-Action": "update",
        "Reconciler-Generation": "5",
        "Reconciler-UID": "0d9f3b1c-2f43-4c8e-9a77-4a3c1f8f1f10",
        "Reconciler-Spec-Hash": "sha256:0123456789abcdef0123456789abcdef",
        "Reconciler-Version": "0.1.0",
    }


def test_unknown_trailers_are_left_out_not_left_empty():
    """Without a generation, UID or spec hash those trailers are absent rather than empty."""
    trailers = git_trailers(full_messages()["local-mode"])
    assert [k for k, _ in trailers] == ["Reconciler-Object", "Reconciler-Action", "Reconciler-Version"]
    assert all(v for _, v in trailers)


def test_import_names_every_object():
    """An import commit has one Reconciler-Object trailer per imported object."""
    message = full_messages()["import"]
    assert message.splitlines()[0] == "import: add 4 customers and previews"
    assert messages.trailer_values(message, "reconciler-object") == [
        "customer/a", "customer/b", "customer/c", "preview/campaigns-feat-xyz"]


def test_message_layout_is_subject_body_trailers():
    """Subject, blank line, body with the changes and files, blank line, trailers."""
    message = full_messages()["update"]
    subject_line, blank, *rest = message.splitlines()
    assert subject_line == "customer/acme: scheduler 2 -> 4 workers"
    assert blank == ""
    assert rest[:4] == ["- scheduler 2 -> 4 workers", "", "Files:", "M tenants/acme/scheduler.yaml"]
    assert message.endswith("Reconciler-Version: 0.1.0\n")


def test_a_message_without_trailers_has_none():
    """A plain message, or one whose last paragraph is prose, has no trailers for either."""
    for message in ("just a subject\n", "subject\n\nSome prose: with a colon in it.\n"):
        assert messages.parse_trailers(message) == []
        assert git_trailers(message) == []
