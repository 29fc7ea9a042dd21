"""Render the shared connection pool (pgbouncer) into ``platform/pgbouncer/``.

Pure. The pool lists exactly one database per Customer whose database is enabled, sorted
by name. It is derived from all Customers together: ``pool_entries`` is the projection of
one Customer that the pool depends on, so a caller can tell cheaply whether a Customer
change touches the pool at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Customer, ObjectKey
from reconciler.core.render import common, customers
from reconciler.core.settings import Settings

POOL_PORT = 6432
POOL_KEY = ObjectKey("Pool", "pgbouncer")


@dataclass(frozen=True, order=True)
class PoolEntry:
    """One database line of the pool."""

    name: str
    host: str


def pool_entry(customer: Customer, settings: Settings) -> PoolEntry | None:
    """What the pool needs from ``customer``: None when it has no database."""
    if not customer.spec.features.database.enabled:
        return None
    return entry_for(customer.metadata.name, settings)


def entry_for(name: str, settings: Settings) -> PoolEntry:
    """The pool entry of the Customer called ``name`` (which has a database)."""
    ns = customers.namespace_of(name, settings)
    return PoolEntry(name, f"database.{ns}.svc.cluster.local")


def pool_input_hash(entries: Iterable[PoolEntry], settings: Settings) -> str:
    """Hash of everything the pool's rendering depends on."""
    return common.digest([common.RENDER_VERSION, "pool",
                          [[e.name, e.host] for e in sorted(entries)],
                          settings.fingerprint])


def render_ini(entries: Iterable[PoolEntry]) -> bytes:
    """The pgbouncer.ini text: one ``[databases]`` line per entry, in name order."""
    ordered = sorted(entries)
    lines = [
        ";; Rendered by gitops-reconciler from every Customer with a database. Do not edit:",
        ";; change the Customer resources instead.",
        "[databases]",
        *(f"{e.name} = host={e.host} port={customers.POSTGRES_PORT} dbname=app" for e in ordered),
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {POOL_PORT}",
        "auth_type = scram-sha-256",
        "auth_file = /etc/pgbouncer/userlist/userlist.txt",
        "pool_mode = transaction",
        "max_client_conn = 2000",
        "default_pool_size = 20",
        "ignore_startup_parameters = extra_float_digits",
    ]
    return ("\n".join(lines) + "\n").encode()


def render_pool(entries: Iterable[PoolEntry], settings: Settings) -> common.RenderedDir:
    """Return every file of ``platform/pgbouncer/`` for the given database entries."""
    ordered = sorted(entries)
    ns = settings.platform_namespace
    labels = {"app.kubernetes.io/name": "pgbouncer",
              "app.kubernetes.io/managed-by": common.MANAGED_BY}
    meta: dict[str, Any] = {"name": "pgbouncer", "namespace": ns, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "pgbouncer"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{
                        "name": "pgbouncer",
                        "image": settings.images.pgbouncer,
                        "command": ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"],
                        "ports": [{"name": "pgbouncer", "containerPort": POOL_PORT}],
                        "readinessProbe": {"tcpSocket": {"port": "pgbouncer"}},
                        "resources": common.container_resources("200m", "256Mi"),
                        "securityContext": common.restricted_security(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/pgbouncer/pgbouncer.ini",
                             "subPath": "pgbouncer.ini"},
                            {"name": "userlist", "mountPath": "/etc/pgbouncer/userlist",
                             "readOnly": True},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "pgbouncer-config"}},
                        {"name": "userlist", "secret": {"secretName": settings.pool_auth_secret}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": {"app.kubernetes.io/name": "pgbouncer"},
                 "ports": [{"name": "pgbouncer", "port": POOL_PORT, "targetPort": "pgbouncer"}]},
    }
    input_hash = pool_input_hash(ordered, settings)
    files = {
        "deployment.yaml": yamlio.dump_documents([deployment]),
        "service.yaml": yamlio.dump_documents([service]),
        "pgbouncer.ini": render_ini(ordered),
        common.SOURCE_FILE: common.canonical_json({
            "kind": "Pool", "name": "pgbouncer", "inputHash": input_hash,
            "databases": [e.name for e in ordered],
        }),
    }
    files[common.KUSTOMIZATION] = common.kustomization(
        ["deployment.yaml", "service.yaml"],
        {"configMapGenerator": [{"name": "pgbouncer-config", "namespace": ns,
                                 "files": ["pgbouncer.ini"]}]},
    )
    return common.RenderedDir(common.POOL_DIRECTORY, files, input_hash)
