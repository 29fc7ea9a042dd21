"""Tenant isolation through the shared pool, proven with the real PostgreSQL and pgbouncer.

Two tenants with a database (A, B) and one without (C) are rendered; each
tenant's PostgreSQL is started from its rendered StatefulSet (role, database, password from
the Secret it references), the pool runs the rendered container command and the rendered
pgbouncer.ini with only host names, ports and mounted paths substituted, and psql connects
with exactly the settings the rendered scheduler receives. The Secrets are created the way
the rendered ExternalSecrets describe, from a store holding one password per tenant, and
mounted the way the kubelet mounts a Secret volume.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.core.models import Customer
from reconciler.core.render import common, pool
from reconciler.core.render.customers import render_customer
from reconciler.core.settings import ExternalSecrets, Settings
from tests.gitservers_assets import processes
from tests.pool import servers

pytestmark = pytest.mark.slow

SETTINGS = Settings(external_secrets=ExternalSecrets(store="vault"))
#: The one Go template form the renderer uses: a line per fetched key, in key order.
RANGE = re.compile(r'^\{\{ range \$(\w+), \$(\w+) := \. \}\}(.*)\{\{ end \}\}$')


def tenant(name: str, *, database: bool) -> Customer:
    """A Customer with a scheduler (the workload that connects) and maybe a database."""
    return Customer.model_validate({"metadata": {"name": name}, "spec": {"features": {
        "database": {"enabled": database}, "scheduler": {"enabled": True}}}})


#: Names as real fleets have them: a hyphen, a leading digit (roles then need quoting).
A, B, C = "alpha-01", "0815-bravo", "charlie"
CUSTOMERS = (tenant(A, database=True), tenant(B, database=True), tenant(C, database=False))


def documents(files: dict[str, bytes], *, kind: str) -> list[dict[str, Any]]:
    """Every rendered object of ``kind`` in a directory's files."""
    return [d for rel, data in sorted(files.items()) if rel.endswith(".yaml")
            for d in yaml.safe_load_all(data) if d and d.get("kind") == kind]


def materialize(external_secret: dict[str, Any], store: dict[str, dict[str, str]],
                ) -> dict[str, str]:
    """What External Secrets Operator writes into the target Secret: fetched values, or the
    template executed over them (Go's ``range`` over a map visits keys in sorted order)."""
    spec = external_secret["spec"]
    fetched = {d["secretKey"]: store[d["remoteRef"]["key"]][d["remoteRef"]["property"]]
               for d in spec["data"]}
    template = spec["target"].get("template")
    if template is None:
        return fetched
    filled = {}
    for name, text in template["data"].items():
        match = RANGE.match(text)
        assert match, f"not the template form this test executes: {text}"
        key, value, body = match.groups()
        body = body.replace('{{ "\\n" }}', "\n")
        filled[name] = "".join(body.replace(f"{{{{ ${key} }}}}", k).replace(f"{{{{ ${value} }}}}", v)
                               for k, v in sorted(fetched.items()))
        assert "{{" not in filled[name], filled[name]
    return filled


@dataclass
class Cluster:
    """What the rendered manifests became: Secrets, addresses and the running servers."""

    programs: servers.Programs
    store: dict[str, dict[str, str]]  # the external secret store: key -> properties
    external_secrets: list[dict[str, Any]]  # every rendered ExternalSecret
    secret_mounts: dict[tuple[str, str], Path]  # (namespace, Secret) -> kubelet-like volume
    addresses: dict[tuple[str, int], tuple[str, int]]  # in-cluster host:port -> loopback
    scheduler_env: dict[str, list[dict[str, Any]]]  # tenant -> rendered env
    namespaces: dict[str, str]  # tenant -> namespace
    ini: str
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    generation: int = 0

    def sync_secrets(self) -> None:
        """Do what External Secrets Operator and the kubelet do: (re)write every Secret
        from the store, and swap mounted Secret volumes to the new data atomically."""
        self.generation += 1
        for es in self.external_secrets:
            key = (es["metadata"]["namespace"], es["spec"]["target"]["name"])
            self.secrets[key] = materialize(es, self.store)
            if key in self.secret_mounts:
                servers.publish_secret(self.secret_mounts[key], self.secrets[key],
                                       generation=self.generation)

    def env_of(self, name: str) -> dict[str, str]:
        """The scheduler's environment as a pod of tenant ``name`` gets it."""
        out = {}
        for var in self.scheduler_env[name]:
            if "value" in var:
                out[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                out[var["name"]] = self.secrets[(self.namespaces[name], ref["name"])][ref["key"]]
        return out

    def connect(self, env: dict[str, str], *, database: str | None = None,
                sql: str = "select current_database() || ' ' || current_user"):
        """psql with a scheduler's settings (host and port mapped to loopback)."""
        host, port = self.addresses[(env["DATABASE_HOST"], int(env["DATABASE_PORT"]))]
        conninfo = (f"host={host} port={port} dbname={database or env['DATABASE_NAME']} "
                    f"user={env['DATABASE_USER']}")
        return servers.psql(self.programs, conninfo, password=env["DATABASE_PASSWORD"], sql=sql)


def substitute(text: str, *, addresses: dict[tuple[str, int], tuple[str, int]],
               listen_port: int, paths: dict[str, Path]) -> str:
    """The rendered text with only host names, ports and mounted paths replaced."""

    def database_line(match: re.Match[str]) -> str:
        host, port = addresses.get((match.group(1), int(match.group(2))),
                                   (match.group(1), int(match.group(2))))
        return f"host={host} port={port}"

    out = re.sub(r"host=(\S+) port=(\d+)", database_line, text)
    out = out.replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
    out = out.replace(f"listen_port = {pool.POOL_PORT}", f"listen_port = {listen_port}")
    for mount_path, local in paths.items():
        out = out.replace(mount_path, str(local))
    return out


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Both tenant databases and the pool, running as rendered; stopped afterwards."""
    programs = servers.find_programs()
    rendered = {c.metadata.name: dict(render_customer(c, SETTINGS).files) for c in CUSTOMERS}
    entries = [e for c in CUSTOMERS if (e := pool.pool_entry(c, SETTINGS)) is not None]
    pool_files = dict(pool.render_pool(entries, SETTINGS).files)
    (deployment,) = documents(pool_files, kind="Deployment")
    (pool_service,) = documents(pool_files, kind="Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pool_ns = pool_service["metadata"]["namespace"]

    running: list[servers.Server] = []
    with servers.server_workdir() as work:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        paths = {mounts[name]: work / name for name, v in volumes.items() if "secret" in v}
        paths.update({mounts[name]: work / "pgbouncer.ini" for name, v in volumes.items()
                      if "configMap" in v})
        state = Cluster(
            programs=programs,
            store={f"tenants/{c.metadata.name}/database": {"password": secrets.token_urlsafe(18)}
                   for c in CUSTOMERS},
            external_secrets=[es for files in [*rendered.values(), pool_files]
                              for es in documents(files, kind="ExternalSecret")],
            secret_mounts={(pool_ns, v["secret"]["secretName"]): work / name
                           for name, v in volumes.items() if "secret" in v},
            addresses={},
            scheduler_env={n: documents(f, kind="Deployment")[0]["spec"]["template"]["spec"]
                           ["containers"][0]["env"] for n, f in rendered.items()},
            namespaces={n: documents(f, kind="Namespace")[0]["metadata"]["name"]
                        for n, f in rendered.items()},
            ini=pool_files["pgbouncer.ini"].decode(),
        )
        state.sync_secrets()
        try:
            for name, files in rendered.items():
                for statefulset in documents(files, kind="StatefulSet"):
                    running.append(start_database(state, name, files, statefulset, work))
            pool_port = processes.pick_free_port()
            state.addresses[(f"{pool_service['metadata']['name']}.{pool_ns}.svc",
                             pool_service["spec"]["ports"][0]["port"])] = ("127.0.0.1", pool_port)
            ini = substitute(state.ini, addresses=state.addresses, listen_port=pool_port,
                             paths=paths)
            assert_only_addresses_and_paths_differ(state.ini, ini)
            servers.write_owned(work / "pgbouncer.ini", ini)
            command = [substitute(arg, addresses={}, listen_port=pool_port, paths=paths)
                       for arg in container["command"]]
            running.append(servers.Server(servers.with_program_dir(command, programs.pgbouncer),
                                          port=pool_port, log_path=work / "pgbouncer.log",
                                          cwd=work))
            yield state
        finally:
            for server in reversed(running):
                server.stop()


def start_database(state: Cluster, name: str, files: dict[str, bytes],
                   statefulset: dict[str, Any], work: Path) -> servers.Server:
    """Initialise and start tenant ``name``'s PostgreSQL the way its StatefulSet does, and
    map its Service's address to it."""
    (service,) = documents(files, kind="Service")
    env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    password = state.secrets[(state.namespaces[name], ref["name"])][ref["key"]]
    role = env["POSTGRES_USER"]["value"]
    data, log = work / name, work / f"{name}.log"
    servers.init_postgres(state.programs, data=data, superuser=role, password=password,
                          log_path=log)
    port = processes.pick_free_port()
    server = servers.start_postgres(state.programs, data=data, port=port, log_path=log)
    create = servers.psql(state.programs, f"host={data} port={port} dbname=postgres user={role}",
                          password=None, sql=f'create database "{env["POSTGRES_DB"]["value"]}"')
    assert create.returncode == 0, create.stderr
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    state.addresses[(host, service["spec"]["ports"][0]["port"])] = ("127.0.0.1", port)
    return server


def assert_only_addresses_and_paths_differ(rendered: str, used: str) -> None:
    """The ini pgbouncer runs differs from the rendered one only in addresses and paths."""
    changed = [a for a, b in zip(rendered.splitlines(), used.splitlines(), strict=True) if a != b]
    assert changed, "nothing was substituted"
    for line in changed:
        assert ("host=" in line and "port=" in line) or line.split(" =")[0] in (
            "listen_addr", "listen_port", "auth_file"), line


def test_each_tenant_opens_its_own_database_through_the_pool(cluster):
    """With exactly the settings its scheduler receives, each tenant reaches its own
    database (as its own role) through pgbouncer on port 6432."""
    for name in (A, B):
        env = cluster.env_of(name)
        assert env["DATABASE_PORT"] == "6432"
        result = cluster.connect(env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"app {name}"


def test_one_tenants_credentials_never_open_another_tenants_database(cluster):
    """A's credentials fail on B's database and B's on A's, while each still
    opens its own (so the failure is the isolation, not a server that is down)."""
    alpha, bravo = cluster.env_of(A), cluster.env_of(B)
    for own, other in ((alpha, bravo), (bravo, alpha)):
        denied = cluster.connect(own, database=other["DATABASE_NAME"])
        assert denied.returncode != 0, denied.stdout
        assert "password authentication failed" in denied.stderr, denied.stderr
        assert cluster.connect(own).returncode == 0
    stolen = cluster.connect({**alpha, "DATABASE_PASSWORD": bravo["DATABASE_PASSWORD"]})
    assert stolen.returncode != 0 and "SASL authentication failed" in stolen.stderr  # pool refuses


def test_data_written_by_one_tenant_stays_in_its_database(cluster):
    """A row A writes through the pool is read back by A and absent from B's
    database."""
    alpha, bravo = cluster.env_of(A), cluster.env_of(B)
    wrote = cluster.connect(alpha, sql="create table if not exists notes (body text); "
                                       "insert into notes values ('alpha only')")
    assert wrote.returncode == 0, wrote.stderr
    assert cluster.connect(alpha, sql="select body from notes").stdout.strip() == "alpha only"
    missing = cluster.connect(bravo, sql="select count(*) from notes")
    assert missing.returncode != 0 and 'relation "notes" does not exist' in missing.stderr


def test_a_customer_without_a_database_is_not_in_the_pool(cluster):
    """C (database disabled) has no pool line and no connection settings, and the pool
    answers its name with "no such database"."""
    assert not re.search(rf"(?m)^{C}\s*=", cluster.ini)
    assert not [k for k in cluster.env_of(C) if k.startswith("DATABASE_")]
    refused = cluster.connect(cluster.env_of(A), database=C)
    assert refused.returncode != 0
    assert f"no such database: {C}" in refused.stderr, refused.stderr


def test_the_proven_files_are_the_default_install_files():
    """Turning on external_secrets only adds ExternalSecret files: the pool, database and
    scheduler files proven above are byte for byte those of a default install."""
    default = Settings()
    for customer in CUSTOMERS:
        with_es = dict(render_customer(customer, SETTINGS).files)
        without = dict(render_customer(customer, default).files)
        for rel in ("database.yaml", "scheduler.yaml", "namespace.yaml"):
            assert with_es.get(rel) == without.get(rel), (customer.metadata.name, rel)
    entries = [e for c in CUSTOMERS if (e := pool.pool_entry(c, SETTINGS)) is not None]
    assert pool.render_ini(entries) == pool.render_pool(entries, default).files["pgbouncer.ini"]
    assert "externalsecret.yaml" not in pool.render_pool(entries, default).files


def test_a_customer_named_like_the_pools_console_is_refused():
    """pgbouncer reserves the database name "pgbouncer" and then refuses its whole config
    (every tenant would lose its database), so such a Customer with a database is refused
    with one line; without a database it is fine."""
    programs = servers.find_programs()
    with servers.server_workdir() as work:
        ini = substitute(pool.render_ini([pool.entry_for("pgbouncer", SETTINGS)]).decode(),
                         addresses={}, listen_port=processes.pick_free_port(),
                         paths={pool.USERLIST_DIR: work})
        servers.write_owned(work / pool.USERLIST_KEY, "")
        servers.write_owned(work / "pgbouncer.ini", ini)
        proc = subprocess.run(servers.as_server_user([programs.pgbouncer, str(work / "pgbouncer.ini")]),
                              capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0 and 'database name "pgbouncer" is reserved' in proc.stderr
    problem = common.namespace_problem(tenant("pgbouncer", database=True), SETTINGS)
    assert problem is not None and "reserved by the connection pool" in problem
    assert "\n" not in problem
    assert common.namespace_problem(tenant("pgbouncer", database=False), SETTINGS) is None


def test_a_rotated_password_reaches_the_running_pool(cluster):
    """A rotates its role's password and the store's value; once External Secrets and
    the kubelet update the mounted userlist, the running pool (no restart) accepts the new
    password and refuses the old one, and B is undisturbed."""
    alpha = cluster.env_of(A)
    new = secrets.token_urlsafe(18)
    rotated = cluster.connect(alpha, sql=f"alter role \"{A}\" password '{new}'")
    assert rotated.returncode == 0, rotated.stderr
    cluster.store[f"tenants/{A}/database"]["password"] = new
    cluster.sync_secrets()
    assert cluster.env_of(A)["DATABASE_PASSWORD"] == new
    deadline = time.monotonic() + 4 * pool.RELOAD_CHECK_SECONDS + 10
    while (result := cluster.connect(cluster.env_of(A))).returncode != 0:
        assert time.monotonic() < deadline, f"the pool never took the new password: {result.stderr}"
        time.sleep(0.5)
    assert result.stdout.strip() == f"app {A}"
    assert cluster.connect(alpha).returncode != 0  # the old password
    assert cluster.connect(cluster.env_of(B)).returncode == 0


def test_the_pool_container_stops_when_its_first_process_gets_sigterm():
    """A container is stopped by SIGTERM to its first process only (the rendered command's
    shell): pgbouncer then gets its safe shutdown and everything is gone within seconds."""
    programs = servers.find_programs()
    files = dict(pool.render_pool([], SETTINGS).files)
    (deployment,) = documents(files, kind="Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    with servers.server_workdir() as work:
        port = processes.pick_free_port()
        paths = {pool.CONFIG_PATH: work / "pgbouncer.ini", pool.USERLIST_DIR: work / "userlist"}
        servers.publish_secret(work / "userlist", {pool.USERLIST_KEY: ""}, generation=1)
        servers.write_owned(work / "pgbouncer.ini", substitute(
            files["pgbouncer.ini"].decode(), addresses={}, listen_port=port, paths=paths))
        command = [substitute(arg, addresses={}, listen_port=port, paths=paths)
                   for arg in container["command"]]
        server = servers.Server(servers.with_program_dir(command, programs.pgbouncer),
                                port=port, log_path=work / "pool.log", cwd=work)
        try:
            shell = server.pid_of("sh")
            assert shell is not None and server.pid_of("pgbouncer") is not None
            os.kill(shell, signal.SIGTERM)
            assert server.wait(timeout_s=10) is not None, server.log_tail()
            assert server.pid_of("pgbouncer") is None
            assert not processes.port_listening(port)
        finally:
            server.stop()
