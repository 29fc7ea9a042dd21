"""deploy/overlays/split-fleet: two reconciler instances side by side, each in its own
namespace (its own Lease), on its own branch, selecting its own team's objects."""

from __future__ import annotations

from reconciler.core.settings import load_settings
from tests.deploy import manifests

SPLIT = manifests.DEPLOY / "overlays" / "split-fleet"


def test_each_instance_has_its_own_namespace_lease_branch_and_selector() -> None:
    """Built with kubectl kustomize, team-a and team-b differ in namespace, branch and
    selector, bind their own service account, and share byte-identical CRDs."""
    seen: dict[str, tuple[str, str, str]] = {}
    crds = []
    for team in ("a", "b"):
        objects = manifests.kustomize(SPLIT / f"team-{team}")
        deployment = manifests.one(objects, "Deployment")
        namespace = deployment["metadata"]["namespace"]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        settings = load_settings(None, {k: v for k, v in env.items() if v is not None})
        seen[team] = (namespace, settings.branch, settings.selector)
        assert any(e["name"] == "POD_NAMESPACE" for e in container["env"])  # the Lease's home
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        bindings = [o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
        assert len(bindings) >= 2
        for binding in bindings:
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": account, "namespace": namespace}]
        crds.append([o for o in objects if o["kind"] == "CustomResourceDefinition"])
    assert seen == {"a": ("gitops-reconciler-team-a", "fleet-a", "team=a"),
                    "b": ("gitops-reconciler-team-b", "fleet-b", "team=b")}
    assert crds[0] == crds[1]
