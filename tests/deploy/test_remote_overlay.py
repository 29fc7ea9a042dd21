"""deploy/overlays/remote-ssh: once the config repository is a remote, two replicas on a
mirror cache, with the SSH credentials from the mounted Secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy import manifests


@pytest.mark.parametrize("which", ["base", "remote-ssh"])
def test_every_volume_has_exactly_one_source(built, remote_built, which):
    """Each pod volume names a single source: the overlay's emptyDir replaces the base's claim
    rather than joining it, which the API server would reject."""
    for volume in manifests.pod_spec(built if which == "base" else remote_built)["volumes"]:
        assert len(set(volume) - {"name"}) == 1, volume


def test_runs_two_replicas_on_a_cache(built, remote_built):
    """With a remote repository: two replicas rolled one at a time, the state volume an
    emptyDir, no claim; every other object is the base's."""
    deployment = manifests.deployment(remote_built)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    volumes = {v["name"]: v for v in manifests.pod_spec(remote_built)["volumes"]}
    assert "emptyDir" in volumes["state"]
    assert not [o for o in remote_built if o["kind"] == "PersistentVolumeClaim"]
    others = [o for o in built if o["kind"] not in ("Deployment", "PersistentVolumeClaim")]
    assert [o for o in remote_built if o["kind"] != "Deployment"] == others


def test_pushes_over_ssh_with_the_mounted_credentials(remote_built, monkeypatch):
    """The args parse as a kubernetes-source run against an ssh:// URL, with the key and
    known_hosts from the (now required) Secret; known_hosts is also where libgit2 checks
    host keys, $HOME/.ssh/known_hosts."""
    container = manifests.container(remote_built)
    args = manifests.parse_container_args(container, monkeypatch)
    assert [str(s) for s in args.source] == ["kubernetes"]
    assert args.repo.startswith("ssh://")
    assert args.ssh_key == Path("/etc/reconciler/git/ssh-privatekey")
    assert args.known_hosts == Path("/etc/reconciler/git/known_hosts")
    volumes = {v["name"]: v for v in manifests.pod_spec(remote_built)["volumes"]}
    assert volumes["git-credentials"]["secret"] == {
        "secretName": manifests.CREDENTIALS_SECRET, "optional": False, "defaultMode": 0o440}
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/reconciler/git"]["name"] == "git-credentials"
    home_known_hosts = mounts[f"{env['HOME']}/.ssh/known_hosts"]
    assert home_known_hosts["name"] == "git-credentials"
    assert home_known_hosts["subPath"] == "known_hosts"
    assert home_known_hosts["readOnly"] is True
    assert env["RECONCILER_STATE_DIR"] == "/var/lib/reconciler"
    assert "/var/lib/reconciler" in mounts
