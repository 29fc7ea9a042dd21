"""deploy/overlays: each remote (SSH key, HTTPS token, pull requests) runs two replicas on a
mirror cache with its credentials from the mounted Secret, and its args parse with the real
CLI as the kubelet expands them; local-volume is the only one with a claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy import manifests

REMOTES = ("ssh", "https-token", "pr")


def overlay(name: str) -> list[manifests.Obj]:
    """The objects of ``kubectl kustomize deploy/overlays/NAME``."""
    return manifests.kustomize(manifests.OVERLAYS / name)


@pytest.mark.parametrize("name", manifests.OVERLAY_NAMES)
def test_every_volume_has_exactly_one_source(name):
    """Each pod volume names a single source: an overlay's replacement volume replaces the
    base's rather than joining it, which the API server would reject."""
    for volume in manifests.pod_spec(overlay(name))["volumes"]:
        assert len(set(volume) - {"name"}) == 1, volume


@pytest.mark.parametrize("name", REMOTES)
def test_remotes_run_two_replicas_on_a_cache(name):
    """With a remote repository: two replicas rolled one at a time, the state volume an
    emptyDir, no claim, the credentials Secret required."""
    objects = overlay(name)
    deployment = manifests.deployment(objects)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    volumes = {v["name"]: v for v in manifests.pod_spec(objects)["volumes"]}
    assert "emptyDir" in volumes["state"]
    assert not [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    assert volumes["git-credentials"]["secret"] == {
        "secretName": manifests.CREDENTIALS_SECRET, "optional": False, "defaultMode": 0o440}


def test_ssh_pushes_with_the_mounted_key_and_pinned_host_keys(remote_built, monkeypatch):
    """The args parse as a kubernetes-source run against the ssh:// URL of the remote
    ConfigMap, with the key and known_hosts from the Secret; known_hosts is also where libgit2
    checks host keys, $HOME/.ssh/known_hosts."""
    container = manifests.container(remote_built)
    args = manifests.parse_container_args(container, monkeypatch, remote_built)
    assert [str(s) for s in args.source] == ["kubernetes"]
    assert args.repo == "ssh://git@git.example.com/platform/config.git"
    assert args.ssh_key == Path("/etc/reconciler/git/ssh-privatekey")
    assert args.known_hosts == Path("/etc/reconciler/git/known_hosts")
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/reconciler/git"]["name"] == "git-credentials"
    home_known_hosts = mounts[f"{env['HOME']}/.ssh/known_hosts"]
    assert home_known_hosts["name"] == "git-credentials"
    assert home_known_hosts["subPath"] == "known_hosts"
    assert home_known_hosts["readOnly"] is True
    assert env["RECONCILER_STATE_DIR"] == "/var/lib/reconciler"


def test_https_token_pushes_with_the_token_file(monkeypatch):
    """The HTTPS overlay passes the user from its ConfigMap and the token as a file from the
    Secret (never as an argument or a plain env value)."""
    objects = overlay("https-token")
    container = manifests.container(objects)
    args = manifests.parse_container_args(container, monkeypatch, objects)
    assert args.repo.startswith("https://")
    assert args.git_username == "gitops-reconciler"
    assert args.git_token_file == Path("/etc/reconciler/git/token")
    assert args.mode == "direct"
    assert not any("token" in str(e.get("value", "")) for e in container["env"])


def test_pr_mode_opens_pull_requests_on_the_forge(monkeypatch):
    """The PR overlay adds --mode pr with the forge, its API URL and repository from the
    ConfigMap, and the forge token as a file, on top of the HTTPS push settings."""
    objects = overlay("pr")
    args = manifests.parse_container_args(manifests.container(objects), monkeypatch, objects)
    assert (args.mode, args.forge, args.forge_url, args.forge_repo) == (
        "pr", "github", "https://api.github.com", "platform/config")
    assert args.forge_token_file == Path("/etc/reconciler/git/forge-token")
    assert args.git_token_file == Path("/etc/reconciler/git/token")


def test_local_volume_writes_a_repository_in_the_pod(monkeypatch):
    """The try-it-out overlay writes a local bare repository on its claim; the credentials
    Secret may be absent."""
    objects = overlay("local-volume")
    args = manifests.parse_container_args(manifests.container(objects), monkeypatch, objects)
    assert args.repo == "/var/lib/reconciler/config.git"
    volumes = {v["name"]: v for v in manifests.pod_spec(objects)["volumes"]}
    assert volumes["git-credentials"]["secret"]["optional"] is True


@pytest.mark.parametrize("name", manifests.OVERLAY_NAMES)
def test_every_overlay_differs_from_the_others_only_in_the_controller(name, built):
    """Overlays change the Deployment, the remote ConfigMap (and local-volume adds its claim);
    the CRDs, RBAC, namespace and Service are the base's."""
    def shared(objects: list[manifests.Obj]) -> list[manifests.Obj]:
        return [o for o in objects if o["kind"] not in
                ("Deployment", "ConfigMap", "PersistentVolumeClaim")]
    assert shared(overlay(name)) == shared(built)


def test_argocd_applications_deploy_an_overlay_and_the_resources_from_git():
    """deploy/argocd builds two Argo CD Applications in namespace argocd: one syncing an
    overlay of this repository (the path exists) into gitops-reconciler, one syncing the
    Customer and Preview manifests (cluster-scoped: no destination namespace)."""
    apps = {o["metadata"]["name"]: o for o in manifests.kustomize(manifests.DEPLOY / "argocd")}
    assert set(apps) == {"gitops-reconciler", "gitops-reconciler-resources"}
    assert {a["metadata"]["namespace"] for a in apps.values()} == {"argocd"}
    controller = apps["gitops-reconciler"]["spec"]
    assert (manifests.ROOT / controller["source"]["path"] / "kustomization.yaml").is_file()
    assert controller["destination"]["namespace"] == manifests.NAMESPACE
    resources = apps["gitops-reconciler-resources"]["spec"]
    assert "namespace" not in resources["destination"]
    assert resources["source"]["directory"] == {"recurse": True}
    for app in apps.values():
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
