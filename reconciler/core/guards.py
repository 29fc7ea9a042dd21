"""Guards: what must never be committed, because the cluster rejects it or it destroys data.

Pure: objects, their previous spec and settings in, a refusal (or None) out; no I/O.
Three kinds of question, each answered with a stable reason and one line naming the
object and the numbers:

- ``refuse_object``: does this object's rendering make sense on its own? Every rendered
  name valid for its kind, storage within bounds, quota values positive, the rendered
  pods fit the tenant's quota, Preview hosts allowed by ``preview_host_patterns``. The
  checks walk the rendered manifests, so they stay right when the renderers change.
- ``refuse_transition``: is going from the spec the config repo holds to this one safe?
  A database volume never shrinks; PostgreSQL never goes down a major version, and up
  only when the object carries the confirmation annotation.
- ``refuse_fleet``: do objects collide? No two rendered things share a public host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reconciler.core import names, quantities, yamlio
from reconciler.core.models import Customer, ObjectKey, Preview, Resource, spec_data
from reconciler.core.outcomes import Reason
from reconciler.core.render import common, customers, previews
from reconciler.core.settings import Settings

CONFIRM_UPGRADE_ANNOTATION = "reconciler.ahoi.dev/confirm-database-upgrade"

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: a StatefulSet's pods carry a controller-revision-hash label of name + '-' + 10 characters
STATEFULSET_NAME_MAX = 52
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Pod")


@dataclass(frozen=True)
class GuardRefusal:
    """An object the guards will not let through, and why (one line)."""

    key: ObjectKey
    reason: Reason
    message: str  # one line naming the object and the numbers

    def __str__(self) -> str:
        return self.message


# -- one object ---------------------------------------------------------------------------


def refuse_object(obj: Resource, settings: Settings) -> GuardRefusal | None:
    """Why ``obj``'s rendering must not be committed, or None when it may."""
    if isinstance(obj, Customer):
        rendered = customers.render_customer(obj, settings)
    else:
        rendered = previews.render_preview(obj, settings)
    return refuse_rendered(obj, rendered, settings)


def refuse_rendered(obj: Resource, rendered: common.RenderedDir,
                    settings: Settings) -> GuardRefusal | None:
    """``refuse_object`` for a rendering the caller already has."""
    docs = list(_documents(rendered))
    for check in (_name_problem, _quantity_problem, _host_problem, _quota_problem):
        found = check(obj.key, docs, settings)
        if found is not None:
            reason, message = found
            return GuardRefusal(obj.key, reason, f"{obj.key}: {message}")
    return None


_Doc = tuple[str, dict[str, Any]]  # (file name, manifest)
_Problem = tuple[Reason, str] | None


def _documents(rendered: common.RenderedDir) -> Iterator[_Doc]:
    for name, data in sorted(rendered.files.items()):
        if name == common.KUSTOMIZATION or not name.endswith((".yaml", ".yml")):
            continue
        for doc in yamlio.dumped_documents(data):
            if isinstance(doc, dict):
                yield name, doc


def _pod_templates(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod specs of a workload (with their metadata), or nothing."""
    kind = doc.get("kind")
    if kind == "Pod":
        yield doc
    elif kind in WORKLOAD_KINDS:
        template = (doc.get("spec") or {}).get("template") or {}
        if isinstance(template, dict):
            yield template


def _name_problem(key: ObjectKey, docs: Sequence[_Doc], settings: Settings) -> _Problem:
    for file, doc in docs:
        kind = str(doc.get("kind"))
        meta = doc.get("metadata") or {}
        name = str(meta.get("name", ""))
        where = f"{kind} {name!r} ({file})"
        problem = _invalid_name(kind, name)
        if problem is None and "namespace" in meta and \
                not names.is_dns1123_label(str(meta["namespace"])):
            problem = f"namespace {meta['namespace']!r} is not a DNS-1123 label"
        if problem is None:
            problem = _label_problem(meta.get("labels") or {})
        for template in _pod_templates(doc):
            problem = problem or _pod_problem(template)
        if kind == "Ingress":
            problem = problem or _ingress_name_problem(doc)
        if problem is not None:
            return Reason.INVALID_NAME, f"{where}: {problem}; the API server would reject it"
    return None


def _invalid_name(kind: str, name: str) -> str | None:
    if kind == "Service":
        if len(name) > 63 or not DNS1035_LABEL.fullmatch(name):
            return ("a Service name must be a DNS-1035 label (start with a letter; "
                    "lowercase letters, digits and '-'; at most 63 characters)")
    elif kind == "Namespace":
        if not names.is_dns1123_label(name):
            return "a Namespace name must be a DNS-1123 label (at most 63 characters)"
    elif kind == "StatefulSet":
        if len(name) > STATEFULSET_NAME_MAX or not names.is_dns1123_label(name):
            return (f"a StatefulSet name must be a DNS-1123 label of at most "
                    f"{STATEFULSET_NAME_MAX} characters (its pods' revision label adds 11)")
    elif not names.is_dns1123_subdomain(name):
        return "the name must be a DNS-1123 subdomain (at most 253 characters)"
    return None


def _label_problem(labels: Mapping[str, Any]) -> str | None:
    for label, value in labels.items():
        if len(str(value)) > 63 or not LABEL_VALUE.fullmatch(str(value)):
            return f"label {label}={value!r} is not a valid label value (at most 63 characters)"
    return None


def _pod_problem(template: Mapping[str, Any]) -> str | None:
    problem = _label_problem((template.get("metadata") or {}).get("labels") or {})
    spec = template.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        cname = str(container.get("name", ""))
        if problem is None and not names.is_dns1123_label(cname):
            problem = f"container name {cname!r} is not a DNS-1123 label"
        for port in container.get("ports") or []:
            pname = port.get("name")
            if problem is None and pname is not None and (
                    len(str(pname)) > 15 or not PORT_NAME.fullmatch(str(pname))
                    or "--" in str(pname) or not re.search("[a-z]", str(pname))):
                problem = f"port name {pname!r} is not an IANA service name (at most 15 characters)"
    return problem


def _ingress_name_problem(doc: Mapping[str, Any]) -> str | None:
    spec = doc.get("spec") or {}
    for host in _ingress_hosts(doc):
        if not _is_host(host):
            return f"host {host!r} is not a DNS name (labels of at most 63 characters)"
    for tls in spec.get("tls") or []:
        secret = str(tls.get("secretName", ""))
        if not names.is_dns1123_subdomain(secret):
            return f"TLS secret name {secret!r} is not a DNS-1123 subdomain"
    return None


def _is_host(host: str) -> bool:
    return names.is_dns1123_subdomain(host) and all(len(p) <= 63 for p in host.split("."))


def _ingress_hosts(doc: Mapping[str, Any]) -> list[str]:
    spec = doc.get("spec") or {}
    hosts = [str(r["host"]) for r in spec.get("rules") or [] if r.get("host")]
    hosts += [str(h) for tls in spec.get("tls") or [] for h in tls.get("hosts") or []]
    return list(dict.fromkeys(hosts))


def _quantity_problem(key: ObjectKey, docs: Sequence[_Doc], settings: Settings) -> _Problem:
    maximum = quantities.parse(settings.max_database_storage)
    for file, doc in docs:
        kind = doc.get("kind")
        for claim in _claims(doc):
            raw = str(((claim.get("resources") or {}).get("requests") or {}).get("storage", ""))
            size = _parse_or_none(raw)
            if size is None or size < quantities.GI:
                return (Reason.QUANTITY_INVALID,
                        f"storage {raw!r} ({file}) is below the minimum of 1Gi")
            if size > maximum:
                return (Reason.QUANTITY_INVALID,
                        f"storage {raw} ({file}) is above the maximum of "
                        f"{settings.max_database_storage} (setting max_database_storage)")
        if kind == "ResourceQuota":
            for resource, raw in ((doc.get("spec") or {}).get("hard") or {}).items():
                value = _parse_or_none(str(raw))
                if value is None or value <= 0:
                    return (Reason.QUANTITY_INVALID,
                            f"quota {resource} {str(raw)!r} ({file}) must be a positive quantity")
    return None


def _claims(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if doc.get("kind") == "PersistentVolumeClaim":
        return [doc.get("spec") or {}]
    if doc.get("kind") == "StatefulSet":
        return [t.get("spec") or {} for t in (doc.get("spec") or {}).get("volumeClaimTemplates")
                or []]
    return []


def _parse_or_none(text: str) -> Decimal | None:
    try:
        return quantities.parse(text)
    except ValueError:
        return None


def _host_problem(key: ObjectKey, docs: Sequence[_Doc], settings: Settings) -> _Problem:
    if key.kind != "Preview":
        return None  # tenants' webhook hosts come from the settings, not from the spec
    allowed = [_host_pattern(p, settings) for p in settings.preview_host_patterns]
    for file, doc in docs:
        if doc.get("kind") != "Ingress":
            continue
        for host in _ingress_hosts(doc):
            if not any(p.fullmatch(host) for p in allowed):
                shown = ", ".join(p.replace("{domain}", settings.domain)
                                  for p in settings.preview_host_patterns) or "(none)"
                return (Reason.HOST_NOT_ALLOWED,
                        f"host {host!r} ({file}) matches no allowed preview host pattern "
                        f"({shown}; setting preview_host_patterns)")
    return None


def _host_pattern(pattern: str, settings: Settings) -> re.Pattern[str]:
    parts = [re.escape(p) for p in pattern.replace("{domain}", "\x00").split("*")]
    regex = "[a-z0-9-]+".join(parts).replace("\x00", re.escape(settings.domain))
    return re.compile(regex)


@dataclass
class _Usage:
    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    limits_cpu: Decimal = Decimal(0)
    limits_memory: Decimal = Decimal(0)
    pods: int = 0


def _quota_problem(key: ObjectKey, docs: Sequence[_Doc], settings: Settings) -> _Problem:
    quotas = {str((d.get("metadata") or {}).get("namespace")): (d.get("spec") or {}).get("hard")
              or {} for _, d in docs if d.get("kind") == "ResourceQuota"}
    usage: dict[str, _Usage] = {}
    # (workload, replicas, CPU per pod): formatted only for a refusal's message
    parts: dict[str, list[tuple[Any, int, Decimal]]] = {}
    for _, doc in docs:
        meta = doc.get("metadata") or {}
        ns = str(meta.get("namespace"))
        for template in _pod_templates(doc):
            replicas = _replicas(doc)
            pod = _pod_usage(template.get("spec") or {})
            total = usage.setdefault(ns, _Usage())
            total.cpu += pod.cpu * replicas
            total.memory += pod.memory * replicas
            total.limits_cpu += pod.limits_cpu * replicas
            total.limits_memory += pod.limits_memory * replicas
            total.pods += replicas
            parts.setdefault(ns, []).append((meta.get("name"), replicas, pod.cpu))
    for ns, hard in quotas.items():
        used = usage.get(ns, _Usage())
        over = _over_quota(used, hard)
        if over:
            workloads = [f"{name} {replicas}x{quantities.describe_cpu(cpu)}"
                         for name, replicas, cpu in parts.get(ns, [])]
            return (Reason.QUOTA_EXCEEDED,
                    f"the rendered workloads need {', '.join(n for n, _ in over)} in namespace "
                    f"{ns}, over its quota of {', '.join(q for _, q in over)} "
                    f"({', '.join(workloads)}); raise spec.quota or lower replicas")
    return None


def _replicas(doc: Mapping[str, Any]) -> int:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return 1
    if doc.get("kind") == "Job":
        return int(spec.get("parallelism", 1))
    return int(spec.get("replicas", 1))


def _pod_usage(spec: Mapping[str, Any]) -> _Usage:
    """What one pod counts against a quota: the sum of its containers, or its largest
    init container when that is more."""
    def of(container: Mapping[str, Any]) -> _Usage:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}  # requests default to limits
        return _Usage(_q(requests.get("cpu")), _q(requests.get("memory")),
                      _q(limits.get("cpu")), _q(limits.get("memory")), 1)

    total = _Usage(pods=1)
    for container in spec.get("containers") or []:
        one = of(container)
        total.cpu += one.cpu
        total.memory += one.memory
        total.limits_cpu += one.limits_cpu
        total.limits_memory += one.limits_memory
    for container in spec.get("initContainers") or []:
        one = of(container)
        total.cpu, total.memory = max(total.cpu, one.cpu), max(total.memory, one.memory)
        total.limits_cpu = max(total.limits_cpu, one.limits_cpu)
        total.limits_memory = max(total.limits_memory, one.limits_memory)
    return total


def _q(value: Any) -> Decimal:
    return quantities.parse(str(value)) if value is not None else Decimal(0)


def _over_quota(used: _Usage, hard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(need, quota) for every quota resource the usage exceeds."""
    checks = (
        (("requests.cpu", "cpu"), used.cpu, quantities.describe_cpu, "CPU"),
        (("requests.memory", "memory"), used.memory, quantities.describe_bytes, "memory"),
        (("limits.cpu",), used.limits_cpu, quantities.describe_cpu, "CPU limits"),
        (("limits.memory",), used.limits_memory, quantities.describe_bytes, "memory limits"),
        (("pods",), Decimal(used.pods), lambda d: f"{d:f}", "pods"),
    )
    over: list[tuple[str, str]] = []
    for resource_names, need, show, unit in checks:
        for resource in resource_names:
            if resource in hard and need > quantities.parse(str(hard[resource])):
                over.append((f"{show(need)} {unit}",
                             f"{show(quantities.parse(str(hard[resource])))} {unit}"))
                break
    return over


# -- a change of spec ---------------------------------------------------------------------


def refuse_transition(obj: Resource, previous_spec: Mapping[str, Any] | None,
                      settings: Settings) -> GuardRefusal | None:
    """Why going from ``previous_spec`` (what the config repo holds) to ``obj``'s spec
    would destroy data, or None when it is safe."""
    return refuse_spec_transition(obj.key, spec_data(obj), previous_spec,
                                  obj.metadata.annotations)


def refuse_spec_transition(key: ObjectKey, spec: Mapping[str, Any],
                           previous_spec: Mapping[str, Any] | None,
                           annotations: Mapping[str, str]) -> GuardRefusal | None:
    """``refuse_transition`` on plain specs (rollback has no resource, only records)."""
    if key.kind != "Customer" or not previous_spec:
        return None
    old, new = _database(previous_spec), _database(spec)
    if not (old.get("enabled") and new.get("enabled")):
        return None  # only a running database's volume and data directory are at stake
    return _storage_refusal(key, old, new) or _version_refusal(key, old, new, annotations)


def _storage_refusal(key: ObjectKey, old: Mapping[str, Any],
                     new: Mapping[str, Any]) -> GuardRefusal | None:
    old_size = _parse_or_none(str(old.get("storage", "")))
    new_size = _parse_or_none(str(new.get("storage", "")))
    if old_size is None or new_size is None or new_size >= old_size:
        return None
    return GuardRefusal(key, Reason.STORAGE_SHRINK, (
        f"{key}: database storage {old['storage']} -> {new['storage']} is a shrink; "
        f"a volume cannot shrink (the cluster rejects it, or data is lost): keep at "
        f"least {old['storage']}"))


def _version_refusal(key: ObjectKey, old: Mapping[str, Any], new: Mapping[str, Any],
                     annotations: Mapping[str, str]) -> GuardRefusal | None:
    old_version, new_version = str(old.get("version", "")), str(new.get("version", ""))
    if not (old_version.isdigit() and new_version.isdigit()) or old_version == new_version:
        return None
    if int(new_version) < int(old_version):
        return GuardRefusal(key, Reason.VERSION_DOWNGRADE, (
            f"{key}: database version {old_version} -> {new_version} is a downgrade; "
            f"PostgreSQL {new_version} cannot read a {old_version} data directory: keep "
            f"{old_version}"))
    confirmation = f"{old_version}->{new_version}"
    if annotations.get(CONFIRM_UPGRADE_ANNOTATION, "").replace(" ", "") == confirmation:
        return None
    return GuardRefusal(key, Reason.UPGRADE_NOT_CONFIRMED, (
        f"{key}: database version {old_version} -> {new_version} is a major upgrade; "
        f"PostgreSQL {new_version} does not start on a {old_version} data directory. "
        f"Migrate the data first (dump/restore or pg_upgrade, see README), then annotate "
        f"{CONFIRM_UPGRADE_ANNOTATION}: \"{confirmation}\""))


def _database(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    features = spec.get("features") or {}
    database = features.get("database") if isinstance(features, Mapping) else None
    return database if isinstance(database, Mapping) else {}


# -- the whole fleet ----------------------------------------------------------------------


def host_claims(obj: Resource, settings: Settings) -> list[str]:
    """The public hosts ``obj``'s rendering serves (its Ingress hosts)."""
    if isinstance(obj, Preview):
        return [previews.preview_host(obj, settings)]
    if obj.spec.features.webhooks.enabled:
        return [customers.webhooks_host(obj.metadata.name, settings)]
    return []


def refuse_fleet(objects: Sequence[Resource], settings: Settings) -> dict[ObjectKey, GuardRefusal]:
    """Objects refused because they collide with others: a public host claimed twice.

    A tenant's webhook host always wins (it follows from the tenant's unique name); Previews
    that share a host are all refused, so a new Preview can neither take over a host nor
    be taken over: the one already rendered stays as it is until the clash is resolved.
    """
    claims: dict[str, list[Resource]] = {}
    for obj in objects:
        for host in host_claims(obj, settings):
            claims.setdefault(host, []).append(obj)
    refused: dict[ObjectKey, GuardRefusal] = {}
    for host, claimants in claims.items():
        if len(claimants) < 2:
            continue
        tenants = [o.key for o in claimants if isinstance(o, Customer)]
        for obj in claimants:
            if isinstance(obj, Customer) or obj.spec.suspend:
                continue
            others = [str(o.key) for o in claimants if o.key != obj.key]
            owner = (f"the webhook host of {', '.join(map(str, tenants))}" if tenants
                     else f"also the host of {', '.join(others)}")
            refused[obj.key] = GuardRefusal(obj.key, Reason.HOST_CONFLICT, (
                f"{obj.key}: host {host!r} is {owner}; every rendered host must be unique "
                "(set spec.host)"))
    return refused
