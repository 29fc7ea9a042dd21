"""Render a Customer into ``tenants/<name>/``: namespace, isolation, quota and its features.

Pure. No secret material is ever rendered: the database password is only referenced from
a Secret that is created out of band (External Secrets, Sealed Secrets, ...).
"""

from __future__ import annotations

from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Customer
from reconciler.core.render import common
from reconciler.core.settings import Settings

POSTGRES_PORT = 5432
WEBHOOKS_PORT = 8080


def namespace_of(name: str, settings: Settings) -> str:
    """The namespace a Customer owns."""
    return settings.namespace_pattern.replace("{name}", name)


def webhooks_host(name: str, settings: Settings) -> str:
    """Public host of a Customer's webhook endpoint."""
    return f"{name}.hooks.{settings.domain}"


def render_customer(customer: Customer, settings: Settings) -> common.RenderedDir:
    """Return every file of ``tenants/<name>/`` for ``customer``."""
    key = customer.key
    ns = namespace_of(key.name, settings)
    features = customer.spec.features
    files: dict[str, bytes] = {
        "namespace.yaml": yamlio.dump_documents([_namespace(customer, ns)]),
        "networkpolicy.yaml": yamlio.dump_documents([_network_policy(customer, ns, settings)]),
        "resourcequota.yaml": yamlio.dump_documents([_quota(customer, ns)]),
    }
    if features.database.enabled:
        files["database.yaml"] = yamlio.dump_documents(_database(customer, ns, settings))
    if features.scheduler.enabled:
        files["scheduler.yaml"] = yamlio.dump_documents([_scheduler(customer, ns, settings)])
    if features.webhooks.enabled:
        files["webhooks.yaml"] = yamlio.dump_documents(_webhooks(customer, ns, settings))
    files[common.KUSTOMIZATION] = common.kustomization(list(files))
    input_hash = common.object_input_hash(customer, settings)
    files[common.SOURCE_FILE] = common.source_record(customer, input_hash)
    return common.RenderedDir(key.directory, files, input_hash)


def _meta(customer: Customer, name: str, ns: str | None, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": common.labels_for(customer.key, component)}
    if ns is not None:
        meta["namespace"] = ns
    return meta


def _namespace(customer: Customer, ns: str) -> dict[str, Any]:
    meta = _meta(customer, ns, None, "namespace")
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    if customer.spec.displayName:
        meta["annotations"] = {"reconciler.ahoi.dev/display-name": customer.spec.displayName}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _network_policy(customer: Customer, ns: str, settings: Settings) -> dict[str, Any]:
    """Only the tenant's own pods, the connection pool and the ingress controller get in."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(customer, "tenant-isolation", ns, "isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [
                    {"podSelector": {}},
                    _from_namespace(settings.platform_namespace),
                    _from_namespace(settings.ingress_namespace),
                ]},
            ],
        },
    }


def _quota(customer: Customer, ns: str) -> dict[str, Any]:
    quota = customer.spec.quota
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(customer, "tenant-quota", ns, "quota"),
        "spec": {"hard": {
            "requests.cpu": quota.cpu,
            "requests.memory": quota.memory,
            "pods": str(quota.pods),
        }},
    }


def _database(customer: Customer, ns: str, settings: Settings) -> list[dict[str, Any]]:
    db = customer.spec.features.database
    labels = {"app.kubernetes.io/name": "database"}
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": db.storage}},
    }
    if settings.storage_class:
        claim_spec["storageClassName"] = settings.storage_class
    password = {"secretKeyRef": {"name": settings.database_secret, "key": "password"}}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(customer, "database", ns, "database"),
        "spec": {
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": POSTGRES_PORT}],
        },
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(customer, "database", ns, "database"),
        "spec": {
            "serviceName": "database",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsUser": 999, "fsGroup": 999},
                    "containers": [{
                        "name": "postgres",
                        "image": f"{settings.images.database}:{db.version}",
                        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                        "env": [
                            {"name": "POSTGRES_DB", "value": "app"},
                            {"name": "POSTGRES_USER", "value": "app"},
                            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "app"]}},
                        "resources": common.container_resources("250m", "512Mi"),
                        "securityContext": common.restricted_security(),
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels},
                "spec": claim_spec,
            }],
        },
    }
    return [service, statefulset]


def _scheduler(customer: Customer, ns: str, settings: Settings) -> dict[str, Any]:
    features = customer.spec.features
    labels = {"app.kubernetes.io/name": "scheduler"}
    env: list[dict[str, Any]] = [{"name": "TENANT", "value": customer.metadata.name}]
    if features.database.enabled:
        env += [
            {"name": "DATABASE_HOST", "value": f"pgbouncer.{settings.platform_namespace}.svc"},
            {"name": "DATABASE_NAME", "value": customer.metadata.name},
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(customer, "scheduler", ns, "scheduler"),
        "spec": {
            "replicas": features.scheduler.workers,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "worker",
                    "image": settings.images.scheduler,
                    "env": env,
                    "resources": common.container_resources("100m", "256Mi"),
                    "securityContext": common.restricted_security(),
                }]},
            },
        },
    }


def _webhooks(customer: Customer, ns: str, settings: Settings) -> list[dict[str, Any]]:
    hooks = customer.spec.features.webhooks
    labels = {"app.kubernetes.io/name": "webhooks"}
    host = webhooks_host(customer.metadata.name, settings)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(customer, "webhooks", ns, "webhooks"),
        "spec": {
            "replicas": hooks.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "webhooks",
                    "image": settings.images.webhooks,
                    "env": [{"name": "TENANT", "value": customer.metadata.name}],
                    "ports": [{"name": "http", "containerPort": WEBHOOKS_PORT}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                    "resources": common.container_resources("100m", "128Mi"),
                    "securityContext": common.restricted_security(),
                }]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(customer, "webhooks", ns, "webhooks"),
        "spec": {"selector": labels,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**_meta(customer, "webhooks", ns, "webhooks"),
                     "annotations": {"cert-manager.io/cluster-issuer": settings.cluster_issuer}},
        "spec": {
            "ingressClassName": settings.ingress_class,
            "tls": [{"hosts": [host], "secretName": "webhooks-tls"}],
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "webhooks", "port": {"name": "http"}}},
            }]}}],
        },
    }
    return [deployment, service, ingress]
