"""CustomResourceDefinitions generated from the pydantic models (the single source of truth).

Pure. Converts pydantic's JSON Schema into a structural openAPIV3Schema: references
inlined, ``title`` dropped, optional fields as plain types, ``Literal`` as ``enum``, and
the rules pydantic enforces in code (names, branch names) as CEL validation rules.
"""

from __future__ import annotations

from typing import Any

from reconciler.core import names
from reconciler.core.models import GROUP, VERSION, Customer, Preview

_KEEP = {"type", "description", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "enum", "format", "required", "items", "properties", "default"}

NAME_RULE = {
    "rule": f"self.metadata.name.matches('{names.DNS1123_LABEL.pattern}') "
            "&& size(self.metadata.name) <= 63",
    "message": "metadata.name must be a DNS-1123 label (lowercase letters, digits and '-', "
               "at most 63 characters)",
}
# mirrors models.is_valid_branch, which pydantic enforces
BRANCH_RULE = {
    "rule": "!self.matches('(\\\\.\\\\.|@\\\\{|//|[\\\\x00-\\\\x20~^:?*\\\\[\\\\\\\\\\\\x7f])') "
            "&& !self.matches('^@$') && !self.startsWith('/') && !self.startsWith('-') "
            "&& !self.startsWith('.') "
            "&& !self.endsWith('/') && !self.endsWith('.') && !self.endsWith('.lock') "
            "&& !self.contains('/.')",
    "message": "spec.branch must be a valid git branch name",
}

SPECS: dict[str, dict[str, Any]] = {
    "Customer": {
        "model": Customer,
        "plural": "customers",
        "singular": "customer",
        "shortNames": ["cust"],
        "columns": [
            {"name": "Database", "type": "boolean", "jsonPath": ".spec.features.database.enabled"},
            {"name": "Storage", "type": "string", "jsonPath": ".spec.features.database.storage"},
            {"name": "Workers", "type": "integer", "jsonPath": ".spec.features.scheduler.workers"},
        ],
    },
    "Preview": {
        "model": Preview,
        "plural": "previews",
        "singular": "preview",
        "shortNames": ["prev", "pvw"],
        "columns": [
            {"name": "App", "type": "string", "jsonPath": ".spec.app"},
            {"name": "Branch", "type": "string", "jsonPath": ".spec.branch"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
        ],
    },
}

COMMON_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Applied", "type": "string",
     "jsonPath": '.status.conditions[?(@.type=="Applied")].status'},
    {"name": "Commit", "type": "string", "jsonPath": ".status.lastCommit"},
    {"name": "Path", "type": "string", "jsonPath": ".status.renderedPath", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        merged = {**structural(options[0], defs),
                  **{k: v for k, v in schema.items() if k in ("description", "default")}}
        if merged.get("default", "") is None:
            del merged["default"]
        return merged
    if "const" in schema:
        schema = {**schema, "enum": [schema["const"]], "type": "string"}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object" and isinstance(out.get("default"), dict):
        out["default"] = {}  # nested defaults fill in the rest
    if "properties" in out:
        out["type"] = "object"
    return out


def object_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one kind."""
    model = SPECS[kind]["model"]
    raw = model.model_json_schema(mode="validation")
    defs = raw.get("$defs", {})
    props = raw["properties"]
    spec = structural(props["spec"], defs)
    if model.__name__ == "Preview":
        spec["properties"]["branch"]["x-kubernetes-validations"] = [BRANCH_RULE]
    status = structural(props["status"], defs)
    status["x-kubernetes-preserve-unknown-fields"] = True
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    for required in ("type", "status"):
        conditions["items"].setdefault("required", [])
        if required not in conditions["items"]["required"]:
            conditions["items"]["required"].append(required)
    schema: dict[str, Any] = {
        "type": "object",
        "description": (model.__doc__ or "").strip(),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [NAME_RULE],
    }
    if kind == "Preview":
        schema["required"] = ["spec"]
    return schema


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of ``kind``."""
    meta = SPECS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{meta['plural']}.{GROUP}",
                     "labels": {"app.kubernetes.io/part-of": "gitops-reconciler"}},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": meta["plural"],
                "singular": meta["singular"],
                "shortNames": meta["shortNames"],
                "categories": ["reconciler"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": meta["columns"] + COMMON_COLUMNS,
                "schema": {"openAPIV3Schema": object_schema(kind)},
            }],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for ``reconciler crds --out DIR``."""
    return {f"{meta['singular']}.yaml": crd(kind) for kind, meta in SPECS.items()}

