"""Render the shared connection pool (pgbouncer) into ``platform/pgbouncer/``.

Pure. The pool lists exactly one database per Customer whose database is enabled, sorted
by name, and authenticates every client against that tenant's own role: per-tenant
``userlist.txt`` lines (one role per tenant, from the tenant's Secret) and no forced
``user=``, so one tenant's credentials never open another tenant's database. It is derived
from all Customers together: ``pool_entry`` is the projection of one Customer that the pool
depends on, so a caller can tell cheaply whether a Customer change touches the pool at all.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Customer, ObjectKey
from reconciler.core.render import common, customers
from reconciler.core.settings import ExternalSecrets, Settings

POOL_PORT = customers.POOL_PORT
POOL_KEY = ObjectKey("Pool", "pgbouncer")
USERLIST_KEY = "userlist.txt"  # the key of the pool's Secret (settings.pool_auth_secret)
USERLIST_DIR = "/etc/pgbouncer/userlist"
CONFIG_PATH = "/etc/pgbouncer/pgbouncer.ini"
RELOAD_CHECK_SECONDS = 5
#: The pool container's command. pgbouncer reads auth_file only at start and on SIGHUP, and
#: the kubelet updates a mounted Secret by swapping its ``..data`` link: so a small loop
#: reloads pgbouncer when the userlist Secret changed (a new tenant, a rotated password),
#: and passes the pod's stop on as pgbouncer's safe shutdown (SIGINT). The ini file itself
#: changes only with a new ConfigMap name, i.e. a rollout.
POOL_SCRIPT = (
    f'pgbouncer {CONFIG_PATH} & pid=$!; '
    'trap \'kill -INT "$pid"; wait "$pid"; exit $?\' INT TERM; '
    f'seen=$(readlink {USERLIST_DIR}/..data); '
    'while kill -0 "$pid" 2>/dev/null; do '
    f'sleep {RELOAD_CHECK_SECONDS} & wait $!; '
    f'now=$(readlink {USERLIST_DIR}/..data); '
    'if [ "$now" != "$seen" ]; then seen=$now; kill -HUP "$pid"; fi; '
    'done; wait "$pid"'
)
#: External Secrets Operator template (Go text/template, engine v2) of userlist.txt: one
#: ``"role" "password"`` line per fetched key, in key order.
USERLIST_TEMPLATE = ('{{ range $role, $password := . }}"{{ $role }}" "{{ $password }}"'
                     '{{ "\\n" }}{{ end }}')
#: Deployed selectors are immutable: this one has been the same since the first release.
SELECTOR = {"app.kubernetes.io/name": "pgbouncer"}


@dataclass(frozen=True, order=True)
class PoolEntry:
    """One database line of the pool, and the one role allowed to use it."""

    name: str
    host: str
    role: str


def pool_entry(customer: Customer, settings: Settings) -> PoolEntry | None:
    """What the pool needs from ``customer``: None when it has no database."""
    if not customer.spec.features.database.enabled:
        return None
    return entry_for(customer.metadata.name, settings)


def entry_for(name: str, settings: Settings) -> PoolEntry:
    """The pool entry of the Customer called ``name`` (which has a database)."""
    ns = customers.namespace_of(name, settings)
    return PoolEntry(name, f"database.{ns}.svc.cluster.local", customers.role_of(name))


def pool_input_hash(entries: Iterable[PoolEntry], settings: Settings) -> str:
    """Hash of everything the pool's rendering depends on: ``common.digest`` of
    ``[RENDER_VERSION, "pool", [[name, host, role], ...], fingerprint]``, fed to the hash
    an entry at a time (the whole JSON text cost ~12 MB at 33,000 databases)."""
    return _input_hash(sorted(entries), settings)


def _input_hash(ordered: Iterable[PoolEntry], settings: Settings) -> str:
    def dump(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(b"[" + dump(common.RENDER_VERSION) + b',"pool",[')
    for index, e in enumerate(ordered):
        digest.update((b"," if index else b"") + dump([e.name, e.host, e.role]))
    digest.update(b"]," + dump(settings.fingerprint) + b"]")
    return "sha256:" + digest.hexdigest()[:32]


class _Named(Sequence[PoolEntry]):
    """The entries of Customers called ``names`` (sorted), each made when read: the pool
    of 50,000 databases would hold 10 MB of entries (a pure function of the name)."""

    def __init__(self, names: Sequence[str], settings: Settings) -> None:
        self._names, self._settings = names, settings

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [entry_for(n, self._settings) for n in self._names[index]]
        return entry_for(self._names[index], self._settings)

    def __iter__(self) -> Iterator[PoolEntry]:
        return (entry_for(n, self._settings) for n in self._names)

    def __len__(self) -> int:
        return len(self._names)


def render_ini(entries: Iterable[PoolEntry]) -> bytes:
    """The pgbouncer.ini text: one ``[databases]`` line per entry, in name order.

    No line forces a ``user=``: pgbouncer logs in to a tenant's server as the client's own
    role with the client's own password, so only that tenant's role can open its database.
    """
    return b"".join(_ini_chunks(sorted(entries)))


def _ini_chunks(ordered: Iterable[PoolEntry]) -> Iterator[bytes]:
    """``render_ini`` of entries already in order, a line at a time."""
    yield (b";; Rendered by gitops-reconciler from every Customer with a database. Do not edit:\n"
           b";; change the Customer resources instead.\n"
           b";; Each tenant logs in as its own role; userlist.txt (from the Secret) has one line per\n"
           b";; role, and the tenant's own PostgreSQL checks the same password again.\n"
           b"[databases]\n")
    for e in ordered:
        yield (f"{e.name} = host={e.host} port={customers.POSTGRES_PORT} "
               f"dbname={customers.DATABASE}\n").encode()
    yield "\n".join([
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {POOL_PORT}",
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {USERLIST_DIR}/{USERLIST_KEY}",
        "pool_mode = transaction",
        "max_client_conn = 2000",
        "default_pool_size = 20",
        "ignore_startup_parameters = extra_float_digits",
        "",
    ]).encode()


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/component": "connection-pool",
            "app.kubernetes.io/instance": "pgbouncer",
            "app.kubernetes.io/managed-by": common.MANAGED_BY,
            "app.kubernetes.io/name": "pgbouncer",
            "app.kubernetes.io/part-of": "platform"}


def render_pool(entries: Iterable[PoolEntry], settings: Settings) -> common.RenderedDir:
    """Return every file of ``platform/pgbouncer/`` for the given database entries."""
    ordered = sorted(entries)
    files = {rel: b"".join(chunks()) for rel, chunks in _producers(ordered, settings).items()}
    return common.RenderedDir(common.POOL_DIRECTORY, files, _input_hash(ordered, settings))


def pool_chunks(names: Iterable[str], settings: Settings
                ) -> dict[str, Callable[[], Iterator[bytes]]]:
    """What ``render_pool`` writes for the Customers called ``names``, each file as a
    producer of its bytes in pieces: a caller comparing blob ids hashes the pool without
    holding its text or its entries (~25 MB at 50,000 databases)."""
    return _producers(_Named(sorted(names), settings), settings)


def _producers(ordered: Sequence[PoolEntry], settings: Settings
               ) -> dict[str, Callable[[], Iterator[bytes]]]:
    """Each file of the pool (``ordered``: its entries in order) as a producer of its
    bytes; the pool's text is made a line at a time, the small files whole."""
    ns = settings.platform_namespace

    def meta(name: str = "pgbouncer") -> dict[str, Any]:
        return {"name": name, "namespace": ns, "labels": _labels()}

    manifests: dict[str, list[dict[str, Any]]] = {
        "deployment.yaml": [_deployment(meta(), settings)],
        "service.yaml": [{
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(),
            "spec": {"selector": dict(SELECTOR),
                     "ports": [{"name": "pgbouncer", "port": POOL_PORT,
                                "targetPort": "pgbouncer"}]},
        }],
        "networkpolicy.yaml": [_network_policy(meta(), settings)],
        "poddisruptionbudget.yaml": [{
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(SELECTOR)}},
        }],
    }
    files: dict[str, Callable[[], Iterator[bytes]]] = {}
    for rel, docs in manifests.items():
        files[rel] = functools.partial(iter, [yamlio.dump_documents(docs)])
    if settings.external_secrets is not None:
        store = settings.external_secrets
        files["externalsecret.yaml"] = lambda: iter([yamlio.dump_documents([
            _userlist_external_secret(meta(settings.pool_auth_secret), ordered, settings,
                                      store)])])
    files["pgbouncer.ini"] = lambda: _ini_chunks(ordered)
    files[common.SOURCE_FILE] = lambda: iter([common.canonical_json({
        "kind": "Pool", "name": "pgbouncer", "inputHash": _input_hash(ordered, settings),
        "databases": [e.name for e in ordered],
    })])
    kustomization = common.kustomization(
        [*manifests, *(["externalsecret.yaml"] if settings.external_secrets else [])],
        {"configMapGenerator": [{"name": "pgbouncer-config", "namespace": ns,
                                 "files": ["pgbouncer.ini"],
                                 "options": {"labels": _labels()}}]},
    )
    files[common.KUSTOMIZATION] = functools.partial(iter, [kustomization])
    return files


def _deployment(meta: dict[str, Any], settings: Settings) -> dict[str, Any]:
    tcp = {"tcpSocket": {"port": "pgbouncer"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": settings.pool_replicas,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    # The image's user is a name (not verifiable by runAsNonRoot): say its UID.
                    "securityContext": {"runAsUser": settings.pool_run_as_user,
                                        "runAsGroup": settings.pool_run_as_group,
                                        "runAsNonRoot": True,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "pgbouncer",
                        "image": settings.images.pgbouncer,
                        "command": ["sh", "-c", POOL_SCRIPT],
                        "ports": [{"name": "pgbouncer", "containerPort": POOL_PORT}],
                        **common.probes(tcp, startup_seconds=30),
                        "resources": common.container_resources("200m", "256Mi"),
                        "securityContext": common.restricted_security(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": CONFIG_PATH,
                             "subPath": "pgbouncer.ini"},
                            {"name": "userlist", "mountPath": USERLIST_DIR, "readOnly": True},
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


def _network_policy(meta: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Only tenant namespaces (labelled by the reconciler) and the platform reach the pool.

    A label selector rather than a list of namespaces keeps the policy one size for any
    number of tenants; preview namespaces carry no Customer label, so they stay out.
    """
    tenants = {"namespaceSelector": {
        "matchLabels": {"app.kubernetes.io/managed-by": common.MANAGED_BY},
        "matchExpressions": [{"key": "reconciler.ahoi.dev/customer", "operator": "Exists"}],
    }}
    platform = {"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": settings.platform_namespace}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": dict(SELECTOR)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [tenants, platform],
                         "ports": [{"protocol": "TCP", "port": POOL_PORT}]}],
        },
    }


def _userlist_external_secret(meta: dict[str, Any], entries: Iterable[PoolEntry],
                              settings: Settings, store: ExternalSecrets) -> dict[str, Any]:
    """An ExternalSecret assembling userlist.txt from every tenant's credentials.

    Each tenant's password is fetched under its role's name, and one template (the same
    for any number of tenants) writes a ``"role" "password"`` line per fetched key; the
    object names stores and keys only, never a value.
    """
    return {
        "apiVersion": customers.EXTERNAL_SECRETS_API,
        "kind": "ExternalSecret",
        "metadata": meta,
        "spec": {
            "refreshInterval": store.refresh_interval,
            "secretStoreRef": {"kind": store.store_kind, "name": store.store},
            "target": {"name": settings.pool_auth_secret, "creationPolicy": "Owner",
                       "template": {"engineVersion": "v2",
                                    "data": {USERLIST_KEY: USERLIST_TEMPLATE}}},
            "data": [{"secretKey": e.role, "remoteRef": {
                "key": customers.remote_key(e.name, store),
                "property": customers.PASSWORD_KEY}} for e in entries],
        },
    }
