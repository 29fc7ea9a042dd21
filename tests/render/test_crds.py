"""The generated CRDs: up to date with the models, accepted by kubernetes-validate, and their
schemas accept and refuse what the pydantic models accept and refuse.

The openAPIV3Schema is checked with jsonschema (draft 4, the dialect OpenAPI v3 schemas
derive from) after two adaptations that make it behave like the API server: unknown fields
are refused (``additionalProperties: false`` where the schema does not preserve unknown
fields; kubectl's default strict field validation refuses them rather than letting them be
pruned), and ``pattern`` uses RE2's ``$`` (end of text, not before a final newline). The
``x-kubernetes-validations`` CEL rules are evaluated by a small interpreter of the subset the
generator emits; an unknown construct fails the test rather than passing silently.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler import cli
from reconciler.core import sources

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples"
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
KINDS = {"Customer": "customer.yaml", "Preview": "preview.yaml"}


def load_crd(kind: str) -> dict[str, Any]:
    """The CRD of ``kind`` as committed in crds/."""
    crd: dict[str, Any] = yaml.safe_load((CRDS / KINDS[kind]).read_text())
    return crd


def raw_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of the only version of ``kind``'s CRD."""
    (version,) = load_crd(kind)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


# -- the schema as the API server applies it -----------------------------------------------


def as_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """Strip the x-kubernetes-* keys, and refuse unknown fields where they are not preserved."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "items" in out:
        out["items"] = as_json_schema(out["items"])
    if "properties" in out:
        out["properties"] = {k: as_json_schema(v) for k, v in out["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def re2(pattern: str) -> str:
    """The Python regex with RE2's meaning: a final ``$`` matches only at the end of text."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern


def _re2_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not re.search(re2(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ApiServerValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _re2_pattern})

_CEL_CALL = re.compile(r"^(?P<neg>!?)(?P<path>self(?:\.\w+)*)\."
                       r"(?P<fn>matches|startsWith|endsWith|contains)\('(?P<arg>(?:[^'\\]|\\.)*)'\)$")
_CEL_SIZE = re.compile(r"^size\((?P<path>self(?:\.\w+)*)\) <= (?P<n>\d+)$")
_CEL_COMPARE = re.compile(r"^(?P<path>self(?:\.\w+)*) (?P<op>==|!=) '(?P<arg>(?:[^'\\]|\\.)*)'$")


def _resolve(value: Any, path: str) -> Any:
    for part in path.split(".")[1:]:
        value = value[part]
    return value


def _cel_string(body: str) -> str:
    """The value of a single-quoted CEL string literal's body (backslash escapes)."""
    return re.sub(r"\\(.)", r"\1", body)


def cel_holds(rule: str, value: Any) -> bool:
    """Evaluate a conjunction of the CEL terms crdgen emits (string tests, comparisons with a
    string literal, and size limits)."""
    for term in (t.strip() for t in rule.split(" && ")):
        if size := _CEL_SIZE.match(term):
            holds = len(_resolve(value, size["path"])) <= int(size["n"])
        elif compare := _CEL_COMPARE.match(term):
            equal = _resolve(value, compare["path"]) == _cel_string(compare["arg"])
            holds = equal == (compare["op"] == "==")
        elif call := _CEL_CALL.match(term):
            subject = _resolve(value, call["path"])
            arg = _cel_string(call["arg"])
            holds = {
                "matches": lambda s, a: re.search(re2(a), s) is not None,
                "startsWith": str.startswith,
                "endsWith": str.endswith,
                "contains": str.__contains__,
            }[call["fn"]](subject, arg)
            holds = holds != bool(call["neg"])
        else:
            raise AssertionError(f"CEL term {term!r} is not understood by this test; extend cel_holds")
        if not holds:
            return False
    return True


def cel_violations(schema: dict[str, Any], value: Any, path: str = "<root>") -> Iterator[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks, anywhere inside it."""
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            holds = cel_holds(rule["rule"], value)
        except (KeyError, TypeError, AttributeError):  # the API server refuses on type first
            holds = False
        if not holds:
            yield f"{path}: {rule['message']}"
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from cel_violations(sub, value[key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from cel_violations(schema["items"], item, f"{path}[{index}]")


def schema_problems(doc: dict[str, Any]) -> list[str]:
    """Why the API server would refuse ``doc`` under the committed CRD (empty: accepted)."""
    schema = raw_schema(doc["kind"])
    validator = ApiServerValidator(as_json_schema(schema))
    problems = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    return problems + list(cel_violations(schema, doc))


def model_accepts(doc: dict[str, Any]) -> bool:
    """Whether the reconciler accepts ``doc`` (the pydantic model, through the real parser)."""
    return not isinstance(sources.parse_document("case.yaml", copy.deepcopy(doc)), sources.Refusal)


# -- up to date ----------------------------------------------------------------------------


def test_crds_directory_is_up_to_date(tmp_path, capsys):
    """crds/ holds exactly what `reconciler crds --out DIR` writes from the current models."""
    assert cli.main(["crds", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    generated = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in CRDS.iterdir() if p.is_file()}
    assert generated == committed, (
        "crds/ is stale: run `reconciler crds --out crds/` and commit the result")


def test_crds_pass_strict_kubernetes_validation():
    """kubernetes-validate --strict knows CustomResourceDefinition and accepts both CRDs."""
    files = [str(CRDS / name) for name in KINDS.values()]
    proc = subprocess.run([str(KUBERNETES_VALIDATE), "--strict", *files],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len([line for line in lines if " passed for resource customresourcedefinition/" in line]) == 2
    assert not [line for line in lines if not line.startswith("INFO ")], proc.stdout


# -- API shape -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_crd_is_cluster_scoped_with_status_subresource(kind):
    """Both resources are cluster-scoped in reconciler.ahoi.dev/v1alpha1 with a status
    subresource, so the reconciler's status writes never bump the generation."""
    crd = load_crd(kind)
    assert crd["metadata"]["name"] == f"{kind.lower()}s.reconciler.ahoi.dev"
    assert crd["spec"]["group"] == "reconciler.ahoi.dev"
    assert crd["spec"]["scope"] == "Cluster"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_short_names_are_unique_and_do_not_shadow_persistent_volumes():
    """`kubectl get pv` still means PersistentVolume: no short name is pv, and the two kinds
    share none."""
    short = {kind: load_crd(kind)["spec"]["names"].get("shortNames", []) for kind in KINDS}
    everything = [s for names in short.values() for s in names]
    assert "pv" not in everything
    assert not {"pvc", "po", "ns", "svc", "deploy", "cm", "ing"} & set(everything)
    assert len(everything) == len(set(everything))
    assert all(short.values())


@pytest.mark.parametrize("kind", list(KINDS))
def test_printer_columns_show_readiness(kind):
    """`kubectl get` shows a Ready column read from the Ready condition, and an Age column."""
    (version,) = load_crd(kind)["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path or "<root>", node
    for key, sub in node.get("properties", {}).items():
        yield from _schema_nodes(sub, f"{path}.{key}")
    if "items" in node:
        yield from _schema_nodes(node["items"], f"{path}[]")


@pytest.mark.parametrize("kind", list(KINDS))
def test_schema_is_structural_and_defaults_are_valid(kind):
    """Every schema node has a type (a structural schema, or the API server rejects the CRD)
    and every default validates against its own node."""
    for path, node in _schema_nodes(raw_schema(kind)):
        assert "type" in node, path
        if "default" in node:
            problems = list(ApiServerValidator(as_json_schema(node)).iter_errors(node["default"]))
            assert not problems, (path, [p.message for p in problems])


# -- examples and the schema ---------------------------------------------------------------


EXAMPLE_FILES = sorted(p.relative_to(ROOT).as_posix() for p in EXAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_example_validates_against_its_crd(path):
    """Every example is accepted by the schema of its CRD, as the API server would."""
    docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]
    assert docs
    for doc in docs:
        assert schema_problems(doc) == []
        assert model_accepts(doc)


def customer(spec: dict[str, Any] | None = None, name: str = "acme") -> dict[str, Any]:
    """A Customer document."""
    doc: dict[str, Any] = {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
                           "metadata": {"name": name}}
    if spec is not None:
        doc["spec"] = spec
    return doc


def preview(**changes: Any) -> dict[str, Any]:
    """A Preview document; a change of None removes that spec field."""
    spec = {"app": "shop", "branch": "feat/login", "commit": "0123456789abcdef" * 2 + "01234567",
            "image": "registry.example.com/shop:0123456"}
    spec.update(changes)
    return {"apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Preview",
            "metadata": {"name": "shop-feat-login"},
            "spec": {k: v for k, v in spec.items() if v is not None}}


def feature(name: str, **fields: Any) -> dict[str, Any]:
    """A Customer spec with one feature's fields."""
    return {"features": {name: fields}}


AGREEMENT = [
    # accepted by both
    pytest.param(customer(), True, id="customer-without-spec"),
    pytest.param(customer({"features": {"database": {"enabled": True, "storage": "1.5Ti"}}}), True,
                 id="fractional-storage"),
    pytest.param(customer(feature("scheduler", enabled=True, workers=100)), True, id="workers-100"),
    pytest.param(preview(ttl="7d", host="a.b.example.com", port=1), True, id="preview-all-optionals"),
    pytest.param(customer({"displayName": "x" * 128}), True, id="display-name-128"),
    # refused by both
    pytest.param(customer({"feautres": {}}), False, id="typo-field"),
    pytest.param(customer(feature("database", enabled=True, size="1Gi")), False, id="unknown-nested"),
    pytest.param(customer(feature("scheduler", enabled=True, workers=0)), False, id="workers-0"),
    pytest.param(customer(feature("scheduler", workers=101)), False, id="workers-101"),
    pytest.param(customer(feature("scheduler", workers=2.5)), False, id="workers-fraction"),
    pytest.param(customer(feature("database", storage="lots")), False, id="storage-lots"),
    pytest.param(customer(feature("database", storage="10 Gi")), False, id="storage-space"),
    pytest.param(customer(feature("database", storage="10Gi\n")), False, id="storage-newline"),
    pytest.param(customer(feature("database", storage=10)), False, id="storage-number"),
    pytest.param(customer(feature("database", version="13")), False, id="db-version-13"),
    pytest.param(customer(feature("webhooks", replicas=21)), False, id="webhook-replicas-21"),
    pytest.param(customer({"quota": {"pods": 0}}), False, id="quota-pods-0"),
    pytest.param(customer({"quota": {"memory": "8 GB"}}), False, id="quota-memory"),
    pytest.param(customer({"displayName": "x" * 129}), False, id="display-name-129"),
    pytest.param(customer(name="Acme"), False, id="name-uppercase"),
    pytest.param(customer(name="a" * 64), False, id="name-64"),
    pytest.param(customer(name="-acme"), False, id="name-leading-dash"),
    pytest.param(customer(name="a.b"), False, id="name-dot"),
    pytest.param(preview(commit="b32bef0"), False, id="short-commit"),
    pytest.param(preview(image=None), False, id="no-image"),
    pytest.param(preview(host="Bad_Host.example.com"), False, id="bad-host"),
    pytest.param(preview(ttl="3 days"), False, id="bad-ttl"),
    # guards carried by the schema too (issue 8): no zero or milli storage, no zero quota,
    # a Preview's app names a Service, so it is a DNS-1035 label
    pytest.param(customer(feature("database", storage="0")), False, id="storage-zero"),
    pytest.param(customer(feature("database", storage="1m")), False, id="storage-milli"),
    pytest.param(customer(feature("database", storage="0.0Gi")), False, id="storage-zero-gi"),
    pytest.param(customer({"quota": {"cpu": "0"}}), False, id="quota-cpu-0"),
    pytest.param(customer({"quota": {"memory": "0Gi"}}), False, id="quota-memory-0"),
    pytest.param(preview(app="1billing"), False, id="app-starts-with-digit"),
    pytest.param(preview(port=70000), False, id="port-70000"),
    pytest.param(preview(app="Shop"), False, id="app-uppercase"),
    pytest.param(preview(branch="feat..x"), False, id="branch-dotdot"),
    pytest.param(preview(branch="feat/x.lock"), False, id="branch-lock"),
    pytest.param(preview(branch="feat x"), False, id="branch-space"),
    pytest.param(preview(branch="/feat"), False, id="branch-leading-slash"),
    pytest.param({**preview(), "spec": None}, False, id="preview-null-spec"),
    # where a lax model or a hand-written CEL rule once let the two drift apart
    pytest.param(customer(feature("scheduler", enabled=True, workers="4")), False,
                 id="workers-as-string"),
    pytest.param(customer(feature("database", enabled="true")), False, id="enabled-as-string"),
    pytest.param(customer({"quota": {"pods": "7"}}), False, id="pods-as-string"),
    pytest.param(customer({"suspend": "yes"}), False, id="suspend-as-string"),
    pytest.param(customer(name="acme\n"), False, id="name-trailing-newline"),
    pytest.param(preview(branch="feat\tx"), False, id="branch-tab"),
    pytest.param(preview(branch="feat\x7fx"), False, id="branch-delete-char"),
    pytest.param(preview(branch="@"), False, id="branch-at"),
    pytest.param(preview(branch="@x"), True, id="branch-at-prefix"),
]


@pytest.mark.parametrize(("doc", "valid"), AGREEMENT)
def test_schema_and_model_agree(doc, valid):
    """The CRD schema accepts a document exactly when the reconciler's model does."""
    problems = schema_problems(doc)
    assert (problems == []) == valid, problems
    assert model_accepts(doc) == valid
