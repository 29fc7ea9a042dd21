"""Reading resource files: bad input gets one line naming the file and the field, and every
good object next to it is still kept."""

from __future__ import annotations

import os

import pytest
import yaml

from reconciler.adapters import filesource
from reconciler.core import sources
from reconciler.core.models import ObjectKey

ORIGIN = "customers/acme.yaml"
HEAD = "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"


def customer_yaml(name: str = "acme", spec: str = "") -> str:
    """A Customer document's text with an optional indented spec block."""
    text = f"{HEAD}metadata:\n  name: {name}\n"
    return text + (f"spec:\n{spec}" if spec else "")


def preview_yaml(**fields: str) -> str:
    """A Preview document's text; fields override the valid defaults."""
    spec = {"app": "shop", "branch": "feat/x", "commit": "ab" * 20, "image": "r.example/shop:1"}
    spec.update(fields)
    body = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    return ("apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Preview\n"
            f"metadata:\n  name: shop-x\nspec:\n{body}")


def only_refusal(parsed: sources.Parsed) -> str:
    """The one refusal of ``parsed`` as printed, after checking it is a single line."""
    assert not parsed.objects
    (refusal,) = parsed.refusals
    line = str(refusal)
    assert "\n" not in line and "\r" not in line, line
    assert line.startswith(f"{ORIGIN}"), line
    return line


def test_invalid_yaml_names_file_and_line():
    """Invalid YAML is refused with the file and the line of the problem, and the pass is
    marked incomplete so nothing is removed on the strength of the file's absence."""
    text = customer_yaml(spec="  features:\n    database: {enabled: true\n  quota: {}\n")
    parsed = sources.parse_text(ORIGIN, text)
    line = only_refusal(parsed)
    assert "invalid YAML at line 8" in line  # where the unclosed mapping is noticed
    assert parsed.incomplete
    tab = sources.parse_text(ORIGIN, f"{HEAD}metadata:\n\tname: acme\n")
    assert "invalid YAML at line 4" in only_refusal(tab)


def test_mapping_value_error_points_at_its_line():
    """A stray colon is reported on the line it is on."""
    parsed = sources.parse_text(ORIGIN, customer_yaml(name="acme: corp"))
    assert "invalid YAML at line 4" in only_refusal(parsed)


@pytest.mark.parametrize(("text", "expected"), [
    ("- apiVersion: reconciler.ahoi.dev/v1alpha1\n  kind: Customer\n", "expected a mapping"),
    ("just some text\n", "expected a mapping"),
    ("apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\n",
     "unknown kind reconciler.ahoi.dev/v1alpha1/Tenant"),
    ("apiVersion: reconciler.ahoi.dev/v1\nkind: Customer\nmetadata: {name: acme}\n",
     "unknown kind reconciler.ahoi.dev/v1/Customer"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: acme}\n", "unknown kind v1/ConfigMap"),
], ids=["list", "scalar", "unknown-kind", "unknown-version", "other-api"])
def test_documents_that_are_not_our_resources_are_refused(text, expected):
    """A list, a scalar, another kind or another apiVersion is refused with what it was."""
    assert expected in only_refusal(sources.parse_text(ORIGIN, text))


FIELD_ERRORS = [
    pytest.param(customer_yaml(spec="  features:\n    scheduler: {enabled: true, workers: 0}\n"),
                 "spec.features.scheduler.workers", "greater than or equal to 1", True, id="workers-0"),
    pytest.param(customer_yaml(spec="  features:\n    database: {enabled: true, storage: lots}\n"),
                 "spec.features.database.storage", "pattern", True, id="storage-lots"),
    pytest.param(customer_yaml(spec="  feautres:\n    database: {enabled: true}\n"),
                 "spec.feautres", "Extra inputs are not permitted", True, id="typo-feautres"),
    pytest.param(customer_yaml(spec="  quota: {pods: -1}\n"), "spec.quota.pods",
                 "greater than or equal", True, id="negative-pods"),
    pytest.param(customer_yaml(name="Acme"), "metadata.name", "DNS-1123", False, id="name-uppercase"),
    pytest.param(customer_yaml(name="'..'"), "metadata.name", "DNS-1123", False, id="name-dotdot"),
    pytest.param(customer_yaml(name="acme/evil"), "metadata.name", "DNS-1123", False, id="name-slash"),
    pytest.param(customer_yaml(name="a" * 64), "metadata.name", "at most 63", False, id="name-too-long"),
    pytest.param(f"{HEAD}metadata: {{}}\n", "metadata.name", "Field required", False, id="no-name"),
    pytest.param(preview_yaml(commit="b32bef0"), "spec.commit", "pattern", True, id="short-commit"),
    pytest.param(preview_yaml(branch="'feat..x'"), "spec.branch", "not a valid git branch name", True,
                 id="bad-branch"),
]


@pytest.mark.parametrize(("text", "field", "reason", "named"), FIELD_ERRORS)
def test_schema_violation_names_file_and_dotted_field(text, field, reason, named):
    """A schema violation is one line with the file, the object, the dotted field path and
    why; the object's key is known when its name is valid."""
    parsed = sources.parse_text(ORIGIN, text)
    line = only_refusal(parsed)
    assert f": {field}: " in line, line
    assert reason in line, line
    (refusal,) = parsed.refusals
    assert (refusal.key is not None) == named
    assert not parsed.incomplete


def test_more_errors_in_one_document_are_counted_not_listed():
    """Several violations in one document still give one line, saying how many more."""
    text = customer_yaml(spec="  features:\n    scheduler: {workers: 0}\n    database: {storage: x}\n")
    assert "(and 1 more error)" in only_refusal(sources.parse_text(ORIGIN, text))


def test_one_bad_document_does_not_take_its_neighbours_down():
    """In a multi-document file the bad document is refused, named by its index, and the
    documents before and after it are kept."""
    text = "---\n".join([
        customer_yaml("first"),
        customer_yaml("second", "  features:\n    scheduler: {enabled: true, workers: 0}\n"),
        customer_yaml("third"),
    ])
    parsed = sources.parse_text(ORIGIN, text)
    assert [o.metadata.name for o in parsed.objects] == ["first", "third"]
    (refusal,) = parsed.refusals
    assert str(refusal).startswith(f"{ORIGIN}[1]: Customer 'second': spec.features.scheduler.workers")
    assert refusal.key == ObjectKey("Customer", "second")


def test_empty_documents_are_ignored():
    """Empty documents and comment-only files are neither objects nor errors."""
    parsed = sources.parse_text(ORIGIN, "# nothing yet\n---\n---\n")
    assert (list(parsed.objects), list(parsed.refusals)) == ([], [])


def test_duplicate_names_across_files_are_all_refused(tmp_path):
    """Two files defining the same Customer are both refused (neither wins); other objects
    and the same name of another kind are kept."""
    (tmp_path / "a.yaml").write_text(customer_yaml("acme"))
    (tmp_path / "b.yaml").write_text(customer_yaml("acme", "  displayName: Other\n"))
    (tmp_path / "c.yaml").write_text(customer_yaml("other"))
    parsed = filesource.read_sources([tmp_path])
    assert [o.key for o in parsed.objects] == [ObjectKey("Customer", "other")]
    assert parsed.refusals
    assert all(r.key == ObjectKey("Customer", "acme") for r in parsed.refusals)
    assert all("duplicate" in str(r) and "\n" not in str(r) for r in parsed.refusals)


def test_duplicate_name_refusal_names_both_files(tmp_path):
    """The refusal of a duplicate name tells the user which files define it."""
    (tmp_path / "a.yaml").write_text(customer_yaml("acme"))
    (tmp_path / "b.yaml").write_text(customer_yaml("acme"))
    text = "\n".join(str(r) for r in filesource.read_sources([tmp_path]).refusals)
    assert str(tmp_path / "a.yaml") in text
    assert str(tmp_path / "b.yaml") in text


@pytest.mark.parametrize("text", [
    'apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: "Cust\\nomer"\nmetadata: {name: acme}\n',
    customer_yaml(spec='  "feat\\nures": {}\n'),
], ids=["kind-with-newline", "field-with-newline"])
def test_hostile_input_still_gets_a_one_line_refusal(text):
    """A kind or field name containing a newline still yields a single-line refusal."""
    only_refusal(sources.parse_text(ORIGIN, text))


# -- input hygiene (issue 8) -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "line"), [
    (customer_yaml() + "kind: Preview\n", 5),
    (customer_yaml(spec="  quota: {pods: 3, pods: 40}\n"), 6),
], ids=["kind-twice", "nested-key-twice"])
def test_a_key_given_twice_is_refused_with_its_line(text, line):
    """YAML keys are unique: a second ``kind:`` (or any key) is refused naming its line,
    never silently taking the last value, and the file counts as unparseable."""
    parsed = sources.parse_text(ORIGIN, text)
    refusal = only_refusal(parsed)
    assert f"invalid YAML at line {line}: duplicate key" in refusal
    assert parsed.incomplete


def test_yaml_merge_keys_may_still_be_overridden():
    """``<<: *base`` followed by one of its keys is ordinary YAML, not a duplicate."""
    text = ("x-base: &base {pods: 3}\n" + customer_yaml(spec="  quota:\n    <<: *base\n"
                                                         "    pods: 40\n"))
    (obj,) = sources.parse_text(ORIGIN, text).objects
    assert obj.spec.quota.pods == 40


def test_too_many_documents_make_the_file_unparseable():
    """Over ``max_documents`` the file is refused (incomplete), without keeping any object."""
    text = "---\n".join(customer_yaml(f"c{i}") for i in range(4))
    parsed = sources.parse_text(ORIGIN, text, sources.Limits(max_documents=3))
    assert "more than 3 documents" in only_refusal(parsed)
    assert parsed.incomplete
    assert len(sources.parse_text(ORIGIN, text, sources.Limits(max_documents=4)).objects) == 4


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    """A file over ``max_bytes`` is refused from its size alone (nothing parsed), names the
    setting, and marks the pass incomplete."""
    big = tmp_path / "big.yaml"
    big.write_text(customer_yaml("big") + "#" * 200 + "\n")
    parsed = filesource.read_sources([tmp_path], sources.Limits(max_bytes=100))
    (refusal,) = parsed.refusals
    assert str(refusal).startswith(str(big)) and "max_source_file_bytes" in str(refusal)
    assert parsed.incomplete and not parsed.objects


def test_unreadable_files_count_as_unparseable(tmp_path):
    """A dangling symlink, a symlink leading outside the source and a FIFO are each one
    refusal naming the file; the pass is incomplete, and good files are still read."""
    (tmp_path / "good.yaml").write_text(customer_yaml("good"))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text(customer_yaml("outside"))
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "escape.yaml").symlink_to(outside)
    (tmp_path / "inside.yaml").symlink_to(tmp_path / "good.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")
    parsed = filesource.read_sources([tmp_path])
    assert [o.metadata.name for o in parsed.objects] == []  # good.yaml twice: a duplicate
    text = {str(r).split(": ", 1)[0]: str(r) for r in parsed.refusals}
    assert "dangling symlink" in text[str(tmp_path / "dangling.yaml")]
    assert "outside the source" in text[str(tmp_path / "escape.yaml")]
    assert "not a regular file" in text[str(tmp_path / "pipe.yaml")]
    assert parsed.incomplete
    (tmp_path / "inside.yaml").unlink()
    assert [o.metadata.name for o in filesource.read_sources([tmp_path]).objects] == ["good"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file; permissions cannot be tested")
def test_an_unreadable_directory_counts_as_unparseable(tmp_path):
    """A sub-directory that cannot be listed is one refusal and marks the pass incomplete."""
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.yaml").write_text(customer_yaml("a"))
    locked.chmod(0)
    try:
        parsed = filesource.read_sources([tmp_path])
    finally:
        locked.chmod(0o755)
    assert parsed.incomplete
    assert any("cannot list directory" in str(r) for r in parsed.refusals)


def test_symlinked_directory_outside_the_source_is_refused(tmp_path):
    """A directory symlink leading out of the source is never followed and is reported."""
    source, elsewhere = tmp_path / "source", tmp_path / "elsewhere"
    source.mkdir()
    elsewhere.mkdir()
    (elsewhere / "x.yaml").write_text(customer_yaml("x"))
    (source / "linked").symlink_to(elsewhere, target_is_directory=True)
    parsed = filesource.read_sources([source])
    assert not parsed.objects
    assert parsed.incomplete
    assert "outside the source" in str(parsed.refusals[0])


def test_reconcilerignore_and_default_ignores_keep_other_files_out(tmp_path):
    """kustomization.yaml and renovate.json are skipped by default; .reconcilerignore adds
    patterns (directories, globs) and ``!`` reads a default-ignored file again."""
    (tmp_path / "acme.yaml").write_text(customer_yaml("acme"))
    (tmp_path / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\n"
                                                 "kind: Kustomization\nresources: [acme.yaml]\n")
    (tmp_path / "renovate.json").write_text('{"extends": ["config:base"]}\n')
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "pipeline.yaml").write_text("stages: [test]\n")
    (tmp_path / "values-prod.yaml").write_text("replicas: 3\n")
    (tmp_path / ".reconcilerignore").write_text("# not resources\nci/\nvalues-*.yaml\n")
    parsed = filesource.read_sources([tmp_path])
    assert (list(parsed.refusals), [o.metadata.name for o in parsed.objects]) == ([], ["acme"])
    (tmp_path / ".reconcilerignore").write_text("ci/\nvalues-*.yaml\n!renovate.json\n")
    (refusal,) = filesource.read_sources([tmp_path]).refusals
    assert str(refusal).startswith(str(tmp_path / "renovate.json"))


def test_applied_from_still_reads_a_flux_kustomization_yaml(tmp_path):
    """The resource ignore defaults do not apply to ``--applied-from``: a Flux Kustomization
    kept in kustomization.yaml is read."""
    from reconciler import app

    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        "metadata: {name: tenants, namespace: flux-system}\nspec: {path: ./tenants}\n")
    apps, kustomizations = app.read_deployers([tmp_path])
    assert (apps, [k["metadata"]["name"] for k in kustomizations]) == ([], ["tenants"])


def test_objects_without_labels_share_nothing_they_could_change():
    """Objects with no labels or annotations share one empty mapping to save memory; one
    with labels keeps its own, and the shared one stays empty through a decision."""
    from reconciler.core import decide
    from reconciler.core.settings import Settings
    from reconciler.core.snapshot import Request, Snapshot

    text = "".join(
        "---\napiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\n"
        f"metadata:\n  name: t{i}\n" + ("  labels: {team: a}\n" if i == 2 else "")
        + f"spec:\n  displayName: T{i}\n" for i in range(4))
    objects = list(sources.parse_text("c.yaml", text).objects)
    bare = [o for o in objects if o.metadata.name != "t2"]
    assert all(o.metadata.labels == {} and o.metadata.annotations == {} for o in bare)
    assert objects[2].metadata.labels == {"team": "a"}
    decide.decide(Snapshot(objects=objects), Settings(), None, Request(version="t"))
    assert bare[0].metadata.labels == {} and bare[1].metadata.annotations == {}
    assert objects[2].metadata.labels == {"team": "a"}


def test_a_parsed_object_behaves_as_the_model_pydantic_validates():
    """Parsed objects are kept lean (fields in the instance, parts shared) yet equal, dump,
    copy and refuse assignment exactly as the model pydantic validated from the same text."""
    import pydantic

    from reconciler.core.models import Customer

    doc = ("apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nmetadata:\n  name: acme\n"
           "  labels: {team: a}\nspec:\n  displayName: Acme\n  features:\n"
           "    database: {enabled: true, storage: 20Gi}\n")
    (parsed,) = sources.parse_text("c.yaml", doc).objects
    validated = Customer.model_validate(yaml.safe_load(doc))
    assert parsed == validated and validated == parsed
    assert parsed.model_dump() == validated.model_dump()
    assert parsed.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert parsed.metadata.name == "acme" and parsed.metadata.labels == {"team": "a"}
    copied = parsed.model_copy(update={"metadata": parsed.metadata.model_copy(
        update={"generation": 4})})
    assert copied.metadata.generation == 4 and parsed.metadata.generation is None
    with pytest.raises(pydantic.ValidationError):
        parsed.metadata.name = "other"  # type: ignore[misc]
    assert parsed.metadata.name == "acme" and hash(parsed.spec.features) == \
        hash(validated.spec.features)
