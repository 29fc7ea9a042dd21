"""Render a Customer into ``tenants/<name>/``: namespace, isolation, quota and its features.

Pure. No secret material is ever rendered: the database password is only referenced from
the tenant's Secret, created out of band or (setting ``external_secrets``) by an
``ExternalSecret`` that names the store and key, never a value. Each tenant's database has
its own role (``role_of``), so the shared pool can tell tenants apart.
"""

from __future__ import annotations

from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Customer, spec_data
from reconciler.core.render import common
from reconciler.core.settings import ExternalSecrets, Settings

POSTGRES_PORT = 5432
POOL_PORT = 6432
WEBHOOKS_PORT = 8080
SCHEDULER_HEALTH_PORT = 8080
DATABASE = "app"  # the database inside each tenant's PostgreSQL
PASSWORD_KEY = "password"  # the key of the tenant's credentials Secret
EXTERNAL_SECRETS_API = "external-secrets.io/v1"


def namespace_of(name: str, settings: Settings) -> str:
    """The namespace a Customer owns."""
    return settings.namespace_pattern.replace("{name}", name)


def webhooks_host(name: str, settings: Settings) -> str:
    """Public host of a Customer's webhook endpoint."""
    return f"{name}.hooks.{settings.domain}"


def role_of(name: str) -> str:
    """The PostgreSQL role of the Customer called ``name``: its own, unique in the pool."""
    return name


def database_claim(name: str) -> str:
    """Name of the database's data PersistentVolumeClaim.

    It is the name a StatefulSet's ``data`` volumeClaimTemplate gave the claim of pod
    ``database-0``, so a tenant rendered before the claim became standalone keeps its data.
    """
    del name  # one database per tenant namespace
    return "data-database-0"


def render_customer(customer: Customer, settings: Settings) -> common.RenderedDir:
    """Return every file of ``tenants/<name>/`` for ``customer``."""
    key = customer.key
    ns = namespace_of(key.name, settings)
    features = customer.spec.features
    files: dict[str, bytes] = {
        "namespace.yaml": yamlio.dump_documents([_namespace(customer, ns)]),
        "networkpolicy.yaml": yamlio.dump_documents(_network_policies(customer, ns, settings)),
        "resourcequota.yaml": yamlio.dump_documents([_quota(customer, ns)]),
    }
    if features.database.enabled:
        files["database.yaml"] = yamlio.dump_documents(_database(customer, ns, settings))
        if settings.external_secrets is not None:
            files["externalsecret.yaml"] = yamlio.dump_documents(
                [_external_secret(customer, ns, settings, settings.external_secrets)])
    if features.scheduler.enabled:
        files["scheduler.yaml"] = yamlio.dump_documents([_scheduler(customer, ns, settings)])
    if features.webhooks.enabled:
        files["webhooks.yaml"] = yamlio.dump_documents(_webhooks(customer, ns, settings))
    files[common.KUSTOMIZATION] = common.kustomization(list(files))
    spec = spec_data(customer)  # once: pydantic's dump is a good part of rendering
    input_hash = common.object_input_hash(customer, settings, spec)
    files[common.SOURCE_FILE] = common.source_record(customer, input_hash, spec)
    return common.RenderedDir(key.directory, files, input_hash)


def _meta(customer: Customer, name: str, ns: str | None, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": common.labels_for(customer.key, component)}
    if ns is not None:
        meta["namespace"] = ns
    return meta


def _namespace(customer: Customer, ns: str) -> dict[str, Any]:
    meta = _meta(customer, ns, None, "namespace")
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    # The namespace holds the tenant's data volume: removing the tenant's directory from
    # Git must never make Argo CD or Flux delete it (delete it by hand when you mean it).
    meta["annotations"] = dict(common.KEEP_ON_PRUNE)
    if customer.spec.displayName:
        meta["annotations"]["reconciler.ahoi.dev/display-name"] = customer.spec.displayName
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _network_policies(customer: Customer, ns: str, settings: Settings) -> list[dict[str, Any]]:
    """Only the tenant's own pods reach its pods; the pool reaches only the database, the
    ingress controller only the webhooks (policies add up: a pod is reachable from the
    union of the peers of the policies selecting it)."""
    features = customer.spec.features

    def policy(name: str, pods: dict[str, Any], peers: list[dict[str, Any]],
               port: int | None = None) -> dict[str, Any]:
        rule: dict[str, Any] = {"from": peers}
        if port is not None:
            rule["ports"] = [{"protocol": "TCP", "port": port}]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(customer, name, ns, "isolation"),
            "spec": {"podSelector": pods, "policyTypes": ["Ingress"], "ingress": [rule]},
        }

    policies = [policy("tenant-isolation", {}, [{"podSelector": {}}])]
    if features.database.enabled:
        pool_pods = {**_from_namespace(settings.platform_namespace),
                     "podSelector": {"matchLabels": {"app.kubernetes.io/name": "pgbouncer"}}}
        policies.append(policy("database-from-pool",
                               {"matchLabels": {"app.kubernetes.io/name": "database"}},
                               [pool_pods], POSTGRES_PORT))
    if features.webhooks.enabled:
        policies.append(policy("webhooks-from-ingress",
                               {"matchLabels": {"app.kubernetes.io/name": "webhooks"}},
                               [_from_namespace(settings.ingress_namespace)], WEBHOOKS_PORT))
    return policies


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


def password_ref(settings: Settings) -> dict[str, Any]:
    """Where a tenant's database password comes from: its Secret, never a value."""
    return {"secretKeyRef": {"name": settings.database_secret, "key": PASSWORD_KEY}}


def _database(customer: Customer, ns: str, settings: Settings) -> list[dict[str, Any]]:
    db = customer.spec.features.database
    name = customer.metadata.name
    role = role_of(name)
    # Deployed selectors are immutable: this one has been the same since the first release.
    selector = {"app.kubernetes.io/name": "database"}
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": db.storage}},
    }
    if settings.storage_class:
        claim_spec["storageClassName"] = settings.storage_class
    # A standalone claim, not a volumeClaimTemplate: templates are immutable, a claim's
    # storage request may grow (with a StorageClass that allows expansion).
    claim_meta = _meta(customer, database_claim(name), ns, "database")
    claim_meta["annotations"] = dict(common.KEEP_ON_PRUNE)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_meta,
             "spec": claim_spec}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(customer, "database", ns, "database"),
        "spec": {
            "clusterIP": "None",
            "selector": selector,
            "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": POSTGRES_PORT}],
        },
    }
    uid = settings.database_run_as_user
    ready = {"exec": {"command": ["pg_isready", "-U", role, "-d", DATABASE,
                                  "-h", "127.0.0.1", "-p", str(POSTGRES_PORT)]}}
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(customer, "database", ns, "database"),
        "spec": {
            "serviceName": "database",
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": common.labels_for(customer.key, "database")},
                "spec": {
                    "securityContext": {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                                        "runAsNonRoot": True,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 60,
                    "containers": [{
                        "name": "postgres",
                        "image": settings.images.database_image(db.version),
                        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT}],
                        "env": [
                            {"name": "POSTGRES_DB", "value": DATABASE},
                            {"name": "POSTGRES_USER", "value": role},
                            {"name": "POSTGRES_PASSWORD", "valueFrom": password_ref(settings)},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        **common.probes(ready, startup_seconds=600),
                        "resources": common.container_resources("250m", "512Mi"),
                        "securityContext": common.restricted_security(),
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {
                        "claimName": database_claim(name)}}],
                },
            },
        },
    }
    return [claim, service, statefulset]


def _external_secret(customer: Customer, ns: str, settings: Settings,
                     store: ExternalSecrets) -> dict[str, Any]:
    """An ExternalSecret creating the tenant's credentials Secret from the configured store."""
    return {
        "apiVersion": EXTERNAL_SECRETS_API,
        "kind": "ExternalSecret",
        "metadata": _meta(customer, settings.database_secret, ns, "database"),
        "spec": {
            "refreshInterval": store.refresh_interval,
            "secretStoreRef": {"kind": store.store_kind, "name": store.store},
            "target": {"name": settings.database_secret, "creationPolicy": "Owner"},
            "data": [{"secretKey": PASSWORD_KEY, "remoteRef": {
                "key": remote_key(customer.metadata.name, store), "property": PASSWORD_KEY}}],
        },
    }


def remote_key(name: str, store: ExternalSecrets) -> str:
    """The key of the Customer called ``name``'s credentials in the external store."""
    return store.key_pattern.replace("{name}", name)


def _scheduler(customer: Customer, ns: str, settings: Settings) -> dict[str, Any]:
    features = customer.spec.features
    selector = {"app.kubernetes.io/name": "scheduler"}
    name = customer.metadata.name
    env: list[dict[str, Any]] = [{"name": "TENANT", "value": name}]
    if features.database.enabled:
        env += [
            {"name": "DATABASE_HOST", "value": pool_host(settings)},
            {"name": "DATABASE_PORT", "value": str(POOL_PORT)},
            {"name": "DATABASE_NAME", "value": name},
            {"name": "DATABASE_USER", "value": role_of(name)},
            {"name": "DATABASE_PASSWORD", "valueFrom": password_ref(settings)},
        ]
    health = {"httpGet": {"path": "/healthz", "port": "health"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(customer, "scheduler", ns, "scheduler"),
        "spec": {
            "replicas": features.scheduler.workers,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": common.labels_for(customer.key, "scheduler")},
                "spec": {"containers": [{
                    "name": "worker",
                    "image": settings.images.scheduler,
                    "env": env,
                    "ports": [{"name": "health", "containerPort": SCHEDULER_HEALTH_PORT}],
                    **common.probes(health),
                    "resources": common.container_resources("100m", "256Mi"),
                    "securityContext": common.restricted_security(),
                }]},
            },
        },
    }


def pool_host(settings: Settings) -> str:
    """The host name of the shared connection pool, as tenants' workloads reach it."""
    return f"pgbouncer.{settings.platform_namespace}.svc"


def _webhooks(customer: Customer, ns: str, settings: Settings) -> list[dict[str, Any]]:
    hooks = customer.spec.features.webhooks
    selector = {"app.kubernetes.io/name": "webhooks"}
    host = webhooks_host(customer.metadata.name, settings)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(customer, "webhooks", ns, "webhooks"),
        "spec": {
            "replicas": hooks.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": common.labels_for(customer.key, "webhooks")},
                "spec": {"containers": [{
                    "name": "webhooks",
                    "image": settings.images.webhooks,
                    "env": [{"name": "TENANT", "value": customer.metadata.name}],
                    "ports": [{"name": "http", "containerPort": WEBHOOKS_PORT}],
                    **common.probes({"httpGet": {"path": "/healthz", "port": "http"}}),
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
        "spec": {"selector": selector,
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
