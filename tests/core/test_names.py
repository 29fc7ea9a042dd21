"""Names and path confinement: a hostile name is refused, or everything rendered for the
object stays inside its own directory; paths and change sets never leave their prefixes."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.core import names, plan
from reconciler.core.models import Customer, ObjectKey, ObjectMeta, Preview
from reconciler.core.render import customers, previews
from reconciler.core.settings import Settings

HOSTILE = ["..", ".", "../etc", "a/../../b", "/abs", "a/b", "a\\b", ".git", "a\x00", "", " ",
           "Acme", "acme.", "a" * 64, "-a", "a-", "ä", "acme\n", "\nacme", "a b"]
TRICKY_BUT_VALID = ["tenants", "previews", "platform", "git", "0", "a--b", "x" * 63]
candidate_names = st.one_of(
    st.sampled_from(HOSTILE + TRICKY_BUT_VALID),
    st.text(max_size=70),
    st.text(alphabet="abc-./\\\n\x00", max_size=8),
    st.from_regex(names.DNS1123_LABEL, fullmatch=True),
)
PREVIEW_SPEC = {"app": "shop", "branch": "feat/x", "commit": "ab" * 20, "image": "r.example/shop:1"}


def render_all(name: str) -> list[tuple[str, str]]:
    """(owned prefix, path) for every file a Customer and a Preview called ``name`` render."""
    out = []
    cfg = Settings()
    customer = Customer.model_validate({"metadata": {"name": name}})
    preview = Preview.model_validate({"metadata": {"name": name}, "spec": PREVIEW_SPEC})
    for rendered, top in ((customers.render_customer(customer, cfg), "tenants"),
                          (previews.render_preview(preview, cfg), "previews")):
        out += [(f"{top}/{name}/", f"{rendered.directory}/{rel}") for rel in rendered.files]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candidate_names)
def test_a_name_is_refused_or_its_files_stay_in_its_directory(name):
    """Any text as metadata.name is either refused by the model, or every file rendered for
    that object lies directly inside tenants/<name>/ or previews/<name>/."""
    try:
        ObjectMeta(name=name)
    except ValidationError:
        return
    for prefix, path in render_all(name):
        assert path.startswith(prefix)
        assert posixpath.normpath(path) == path
        assert "/" not in path[len(prefix):]
        names.check_relative_path(path)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_by_the_model(name):
    """Names that are not DNS-1123 labels, including every way to escape a directory, are
    refused before anything is rendered."""
    with pytest.raises(ValidationError):
        Customer.model_validate({"metadata": {"name": name}})


@pytest.mark.parametrize("check", [names.is_dns1123_label, names.is_dns1123_subdomain])
def test_a_trailing_newline_is_not_part_of_a_valid_name(check):
    """A regex '$' also matches before a final newline; the name checks do not fall for it."""
    assert check("acme")
    assert not check("acme\n")
    assert not check("\nacme")


def test_longest_valid_name_is_accepted():
    """A 63-character label is a valid name and renders into its own directory."""
    name = "a" * 63
    assert ObjectKey("Customer", name).directory == f"tenants/{name}"
    assert all(path.startswith(prefix) for prefix, path in render_all(name))


@pytest.mark.parametrize("relative", [
    "..", "../x", "a/../../x", "a/..", "/etc/passwd", "", "a//b", "a/", "./a", "a/./b",
    ".git", ".git/config", "a/.git/hooks/x", ".GIT/config", "a\\b", "..\\x", "a\x00b",
])
def test_confined_path_refuses_escapes(relative):
    """confined_path refuses '..', absolute paths, empty parts, '.', .git in any case,
    backslashes and NUL."""
    with pytest.raises(names.UnsafePathError):
        names.confined_path("tenants/acme", relative)


@pytest.mark.parametrize("prefix", ["", "/tenants", "tenants/../x", ".git", "tenants//acme"])
def test_confined_path_refuses_a_bad_prefix(prefix):
    """The prefix itself must be a clean relative path."""
    with pytest.raises(names.UnsafePathError):
        names.confined_path(prefix, "file.yaml")


def test_confined_path_joins_clean_paths():
    """A clean relative path is joined under its prefix."""
    assert names.confined_path("tenants/acme", "namespace.yaml") == "tenants/acme/namespace.yaml"
    assert names.confined_path("platform/pgbouncer", "a/b.ini") == "platform/pgbouncer/a/b.ini"
    assert names.confined_path("tenants/acme", ".reconciler.json") == "tenants/acme/.reconciler.json"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab./\\\x00gGiIt", max_size=14))
def test_confined_path_result_never_leaves_the_prefix(relative):
    """Whatever the relative text, confined_path refuses it or returns a normalized path
    strictly inside the prefix."""
    try:
        joined = names.confined_path("tenants/acme", relative)
    except names.UnsafePathError:
        return
    assert joined.startswith("tenants/acme/")
    assert posixpath.normpath(joined) == joined
    assert ".." not in joined.split("/")


CUSTOMER_PREFIXES = ("tenants/", "platform/pgbouncer")


@pytest.mark.parametrize("changes", [
    plan.ChangeSet({"previews/acme/app.yaml": b""}),
    plan.ChangeSet({"tenants/../previews/x/app.yaml": b""}),
    plan.ChangeSet({"tenantsx/acme/a.yaml": b""}),
    plan.ChangeSet({"platform/pgbouncer-evil/a": b""}),
    plan.ChangeSet({"platform/pgbouncer": b""}),
    plan.ChangeSet({"tenants": b""}),
    plan.ChangeSet({"/tenants/acme/a.yaml": b""}),
    plan.ChangeSet({"tenants/acme/.git/config": b""}),
    plan.ChangeSet({"README.md": b""}),
    plan.ChangeSet({"tenants/acme/a.yaml": b""}, frozenset({"argocd/appset.yaml"})),
    plan.ChangeSet({}, frozenset({"tenants/acme/../../README.md"})),
], ids=lambda c: c.paths[-1] if c.paths else "empty")
def test_change_set_outside_its_prefixes_is_refused(changes):
    """A change set touching any path outside the owner's prefixes, by write or by delete,
    is refused."""
    with pytest.raises(names.UnsafePathError):
        changes.confined_to(CUSTOMER_PREFIXES)


def test_change_set_inside_its_prefixes_passes_unchanged():
    """A change set inside the prefixes comes back as it was."""
    changes = plan.ChangeSet({"tenants/acme/namespace.yaml": b"x", "platform/pgbouncer/pgbouncer.ini": b"y"},
                             frozenset({"tenants/acme/webhooks.yaml"}))
    assert changes.confined_to(CUSTOMER_PREFIXES) is changes
    assert plan.ChangeSet().confined_to(CUSTOMER_PREFIXES).empty


def test_renderer_refuses_a_name_that_bypassed_validation():
    """Even a name smuggled past the model (model_construct) cannot render outside tenants/:
    the rendered directory value refuses it."""
    meta = ObjectMeta.model_construct(name="../../etc")
    customer = Customer.model_construct(metadata=meta, spec=Customer.model_fields["spec"].default)
    with pytest.raises(names.UnsafePathError):
        customers.render_customer(customer, Settings())
