"""The kustomize install in deploy/: it builds, validates strictly, grants least privilege,
and runs the controller the way reconciler/cli.py and reconciler/adapters/kube.py expect."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler import app, cli
from reconciler.core.settings import load_settings
from tests.deploy import manifests

NAME = manifests.NAME
LEADER_ELECTION = f"{NAME}-leader-election"
EVENTS = f"{NAME}-events"
REGENERATE = "run: reconciler crds --out crds/ && reconciler crds --out deploy/base/crds/"


def validate(objects: list[manifests.Obj], directory: Path) -> subprocess.CompletedProcess[str]:
    """``kubernetes-validate --strict`` over ``objects`` (every result on stdout)."""
    manifest = directory / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    return subprocess.run([str(manifests.BIN / "kubernetes-validate"), "--strict",
                           str(manifest)], capture_output=True, text=True, check=False)


def settings_config_map(objects: list[manifests.Obj]) -> manifests.Obj:
    """The generated ConfigMap holding settings.yaml."""
    (found,) = [o for o in objects if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith(f"{NAME}-config-")]
    return found


def crd_files(directory: Path) -> dict[str, bytes]:
    """The CRD files of a directory, by name."""
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.yaml"))}


# --- the build -----------------------------------------------------------------------------

def test_base_builds_exactly_the_expected_objects(built):
    """``deploy/`` holds the CRDs, the namespace, the service account, RBAC, the settings and
    remote ConfigMaps, the Deployment and its metrics Service, and nothing else (no volume
    claim: the repository is the remote); every namespaced object lands in gitops-reconciler."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in built
                   if o["kind"] != "ConfigMap")
    assert kinds == sorted([
        ("CustomResourceDefinition", f"customers.{manifests.GROUP}"),
        ("CustomResourceDefinition", f"previews.{manifests.GROUP}"),
        ("Namespace", manifests.NAMESPACE),
        ("ServiceAccount", NAME),
        ("ClusterRole", NAME),
        ("ClusterRoleBinding", NAME),
        ("Role", LEADER_ELECTION),
        ("RoleBinding", LEADER_ELECTION),
        ("Role", EVENTS),
        ("RoleBinding", EVENTS),
        ("Deployment", NAME),
        ("Service", f"{NAME}-metrics"),
    ])
    config_maps = sorted(o["metadata"]["name"].rsplit("-", 1)[0] for o in built
                         if o["kind"] == "ConfigMap")
    assert config_maps == [f"{NAME}-config", f"{NAME}-remote"]
    cluster_scoped = {"CustomResourceDefinition", "Namespace", "ClusterRole",
                      "ClusterRoleBinding"}
    for obj in built:
        expected = None if obj["kind"] in cluster_scoped else manifests.NAMESPACE
        if obj["metadata"]["name"] == EVENTS:
            expected = "default"  # Events about cluster-scoped objects can only go there
        assert obj["metadata"].get("namespace") == expected, obj["metadata"]["name"]


def test_deploy_is_the_ssh_overlay(built):
    """``kubectl apply -k deploy/`` installs the main path, pushing to a remote over SSH."""
    assert built == manifests.kustomize(manifests.REMOTE_OVERLAY)


@pytest.mark.parametrize("which", ["base", *manifests.OVERLAY_NAMES])
def test_every_object_passes_strict_schema_validation(tmp_path, which):
    """``kubernetes-validate --strict`` accepts every built object, the CRDs included, in the
    base and in every overlay."""
    objects = manifests.kustomize(manifests.BASE if which == "base"
                                  else manifests.OVERLAYS / which)
    proc = validate(objects, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for obj in objects:
        resource = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        assert f"passed for resource {resource} " in proc.stdout + proc.stderr, resource


def test_strict_validation_can_fail(built, tmp_path):
    """A misspelled Deployment field fails the same validation, so the check above has teeth."""
    broken = yaml.safe_load(yaml.safe_dump(manifests.deployment(built)))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    proc = validate([broken], tmp_path)
    assert proc.returncode != 0
    assert "readOnlyRootFs" in proc.stdout + proc.stderr


def test_image_is_set_through_kustomize_images(built, tmp_path):
    """The base runs ghcr.io/ahoi/gitops-reconciler:0.1.0, and an overlay's ``images:`` entry
    replaces it."""
    assert manifests.container(built)["image"] == manifests.IMAGE
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(manifests.BASE, tmp_path)],
        "images": [{"name": "ghcr.io/ahoi/gitops-reconciler",
                    "newName": "registry.example.com/reconciler", "newTag": "0.2.0"}],
    }))
    overlaid = manifests.container(manifests.kustomize(tmp_path))
    assert overlaid["image"] == "registry.example.com/reconciler:0.2.0"


# --- CRDs ----------------------------------------------------------------------------------

def test_deploy_crds_are_byte_identical_copies_of_crds():
    """deploy/base/crds/ holds exactly the files of crds/, byte for byte (kustomize reads no
    files outside its root, so the base keeps copies)."""
    assert crd_files(manifests.BASE / "crds") == crd_files(manifests.ROOT / "crds"), REGENERATE


def test_deploy_crds_match_the_models(tmp_path):
    """deploy/base/crds/ is what ``reconciler crds`` generates from the models today."""
    generated = {p.name: p.read_bytes() for p in app.write_crds(tmp_path)}
    assert crd_files(manifests.BASE / "crds") == generated, REGENERATE


def test_built_crds_equal_crds_directory(built):
    """The CRDs in the build are the objects in crds/, unchanged by kustomize."""
    expected = [yaml.safe_load(data) for data in crd_files(manifests.ROOT / "crds").values()]
    actual = [o for o in built if o["kind"] == "CustomResourceDefinition"]

    def by_name(obj: manifests.Obj) -> str:
        return str(obj["metadata"]["name"])

    assert sorted(actual, key=by_name) == sorted(expected, key=by_name)


# --- RBAC ----------------------------------------------------------------------------------

def test_cluster_role_grants_exactly_the_controller_calls(built):
    """The ClusterRole allows reading, watching and patching Customers and Previews,
    deleting expired Previews, patching (applying) their status, and listing Argo CD
    Applications and Flux Kustomizations: nothing more (tests/kube runs the controller as
    this account against a real API server, where a missing verb fails)."""
    group = manifests.GROUP
    expected = set()
    for plural in ("customers", "previews"):
        expected |= {(group, plural, v) for v in ("get", "list", "watch", "patch")}
        expected.add((group, f"{plural}/status", "patch"))
    expected.add((group, "previews", "delete"))
    expected.add(("argoproj.io", "applications", "list"))
    expected.add(("kustomize.toolkit.fluxcd.io", "kustomizations", "list"))
    assert manifests.grants(manifests.one(built, "ClusterRole", NAME)) == expected


def test_events_are_created_only_in_default(built):
    """Events may be created in namespace default only, where the API server files Events
    about cluster-scoped objects; no ClusterRole grants events."""
    role = manifests.one(built, "Role", EVENTS)
    assert role["metadata"]["namespace"] == "default"
    assert manifests.grants(role) == {("", "events", "create")}
    binding = manifests.one(built, "RoleBinding", EVENTS)
    assert binding["metadata"]["namespace"] == "default"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": EVENTS}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME,
                                    "namespace": manifests.NAMESPACE}]


def test_leases_are_granted_only_in_the_reconcilers_namespace(built):
    """Leader election may get, create and update Leases in gitops-reconciler only."""
    role = manifests.one(built, "Role", LEADER_ELECTION)
    assert role["metadata"]["namespace"] == manifests.NAMESPACE
    assert manifests.grants(role) == {("coordination.k8s.io", "leases", v)
                                      for v in ("get", "create", "update")}
    cluster_grants = manifests.grants(manifests.one(built, "ClusterRole", NAME))
    assert not [g for g in cluster_grants if g[1] == "leases"]


def test_no_role_uses_wildcards_secrets_or_escalation(built):
    """No rule grants '*', non-resource URLs, Secrets, or the bind, escalate or impersonate
    verbs, and no role aggregates others."""
    for role in (o for o in built if o["kind"] in ("Role", "ClusterRole")):
        assert "aggregationRule" not in role
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule
            assert "*" not in rule.get("apiGroups", []) + rule["resources"] + rule["verbs"]
            assert "secrets" not in rule["resources"]
            assert not {"bind", "escalate", "impersonate"} & set(rule["verbs"])


def test_bindings_grant_the_roles_to_the_deployments_service_account(built):
    """Both bindings name the service account the Deployment runs as, in its namespace."""
    account_name = manifests.pod_spec(built)["serviceAccountName"]
    assert manifests.one(built, "ServiceAccount", account_name)
    account = {"kind": "ServiceAccount", "name": account_name,
               "namespace": manifests.NAMESPACE}
    cluster_binding = manifests.one(built, "ClusterRoleBinding", NAME)
    assert cluster_binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                          "kind": "ClusterRole", "name": NAME}
    assert cluster_binding["subjects"] == [account]
    binding = manifests.one(built, "RoleBinding", LEADER_ELECTION)
    assert binding["metadata"]["namespace"] == manifests.NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": LEADER_ELECTION}
    assert binding["subjects"] == [account]


# --- the Deployment ------------------------------------------------------------------------

def test_one_replica_replaced_not_rolled_while_the_repo_is_local():
    """The local-volume overlay's config repo is on a ReadWriteOnce volume: one replica,
    replaced with Recreate, so two pods never hold two repositories."""
    local = manifests.kustomize(manifests.OVERLAYS / "local-volume")
    deployment = manifests.deployment(local)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    claim = manifests.one(local, "PersistentVolumeClaim", f"{NAME}-state")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in manifests.pod_spec(local)["volumes"]}
    assert volumes["state"] == {"name": "state",
                                "persistentVolumeClaim": {"claimName": f"{NAME}-state"}}


def test_args_are_accepted_by_the_cli(parsed_args):
    """The real parser reads the container args as the in-cluster controller with JSON logs,
    leader election, the pod name as identity and the Lease in the pod's namespace."""
    assert parsed_args.func is cli._run
    assert [str(s) for s in parsed_args.source] == ["kubernetes"]
    assert parsed_args.log_format == "json"
    assert parsed_args.leader_elect is True
    assert parsed_args.identity == "gitops-reconciler-7d4b9-x2x9z"
    assert parsed_args.lease_namespace == manifests.NAMESPACE
    assert parsed_args.once is False


def test_downward_api_gives_pod_name_and_namespace(container):
    """POD_NAMESPACE (the Lease namespace) and POD_NAME (the identity) come from the
    downward API."""
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "--identity=$(POD_NAME)" in container["args"]


def test_probes_hit_healthz_and_readyz_on_the_health_port(container, parsed_args):
    """Startup and liveness probe /healthz, readiness /readyz, on the port --health-port opens."""
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": parsed_args.health_port,
                    "protocol": "TCP"}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe


def test_resources_have_requests_and_limits(container):
    """CPU and memory are both requested and limited."""
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}


def test_runs_non_root_read_only_without_capabilities(built, container):
    """Pod and container run as non-root with seccomp RuntimeDefault, a read-only root, no
    privilege escalation and every capability dropped; the namespace enforces the
    restricted Pod Security level."""
    pod_security = manifests.pod_spec(built)["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    labels = manifests.one(built, "Namespace", manifests.NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_volumes_hold_state_settings_and_git_credentials(built, container, parsed_args):
    """The mirror cache is an emptyDir state volume, --config is the generated ConfigMap's
    file, the Git credentials Secret is required and read-only at /etc/reconciler/git, /tmp is
    writable."""
    volumes = {v["name"]: v for v in manifests.pod_spec(built)["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}

    state = volumes[mounts["/var/lib/reconciler"]["name"]]
    assert "emptyDir" in state
    assert parsed_args.state_dir is None  # $RECONCILER_STATE_DIR: on the state volume

    config = mounts[str(parsed_args.config.parent)]
    assert config["readOnly"] is True
    config_map = settings_config_map(built)
    assert volumes[config["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert parsed_args.config.name in config_map["data"]

    credentials = mounts["/etc/reconciler/git"]
    assert credentials["readOnly"] is True
    secret = volumes[credentials["name"]]["secret"]
    assert secret["secretName"] == manifests.CREDENTIALS_SECRET
    assert secret["optional"] is False

    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_settings_file_is_valid(built, parsed_args):
    """The settings file shipped in the ConfigMap loads with the reconciler's own loader."""
    text = settings_config_map(built)["data"][parsed_args.config.name]
    settings = load_settings(text, {})
    assert settings.branch == "main"


def test_metrics_service_targets_the_pod_and_is_scraped(built, container):
    """The Service's port named metrics (8080) reaches the container port, its selector
    matches the pod, and it carries the Prometheus scrape annotations."""
    service = manifests.one(built, "Service", f"{NAME}-metrics")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["port"] == 8080
    assert port["targetPort"] == container["ports"][0]["name"]
    pod_labels = manifests.deployment(built)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics"}
