"""Applied feedback: has Argo CD or Flux applied an object's last commit?

In the cluster, the running Controller's ``applied`` task reads Argo CD Applications and
Flux Kustomizations served by the fake API server (their CRDs created here) and sets the
``Applied`` condition, shown in a printer column. In local mode, ``reconciler status
--applied-from`` gives the same verdict from Application/Kustomization manifests.

The fake API server prints only Name and Age for custom resources (it ignores
``additionalPrinterColumns``), so the APPLIED column is checked as kubectl would compute it:
the column's jsonPath read from the installed CRD, evaluated by kubectl's custom-columns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_apiserver import fixtures, server
from tests.kube.test_controller_support import commits, commits_of, condition, get, git, wait_until
from tests.scheduled import support


def last_commit(kubectl: fixtures.Kubectl, kind: str, name: str) -> str:
    """Wait for the object's status.lastCommit and return it."""
    found = wait_until(
        lambda: ((get(kubectl, kind, name) or {}).get("status") or {}).get("lastCommit"),
        what=f"{kind}/{name} committed")
    return str(found)


def wait_applied(wiring: support.Wired, kubectl: fixtures.Kubectl, kind: str, name: str,
                 status: str) -> dict[str, Any]:
    """Run the controller's scheduled ``applied`` task until the object's Applied condition
    has ``status``; that condition."""
    wiring.controller.schedule("applied")
    def reached() -> dict[str, Any]:
        found = condition(get(kubectl, kind, name), "Applied")
        return found if found.get("status") == status else {}

    return wait_until(reached, what=f"{kind}/{name} Applied={status}")


def applied_column(kubectl: fixtures.Kubectl, plural: str, name: str) -> str:
    """What kubectl's APPLIED printer column shows for the object: the installed CRD's column
    jsonPath, evaluated by kubectl."""
    crd = json.loads(kubectl("get", "crd", f"{plural}.reconciler.ahoi.dev", "-o", "json").stdout)
    [column] = [c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
                if c["name"] == "Applied"]
    out = kubectl("get", plural, name, "--no-headers",
                  "-o", f"custom-columns=APPLIED:{column['jsonPath']}").stdout
    return out.strip()


# -- in the cluster ------------------------------------------------------------------------


def test_an_argo_application_at_the_last_commit_makes_applied_true_then_false_when_behind(
        kube_with_deployers: fixtures.Kubectl, fake_apiserver: server.FakeApiServer,
        fake_kubeconfig: Path, tmp_path: Path) -> None:
    """A Synced, Healthy Application for tenants/acme at the Customer's last commit sets
    Applied=True naming it (APPLIED column True); moved back to an older commit, Applied
    turns False with reason NotYetApplied."""
    kube = kube_with_deployers
    support.apply(kube, support.customer("acme"))
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring, \
            support.running(wiring, fake_apiserver):
        commit = last_commit(kube, "customer", "acme")
        older = git(wiring.repo_path, "rev-parse", f"{commit}^").strip()
        support.apply(kube, support.application("tenant-acme", "tenants/acme", revision=commit))

        applied = wait_applied(wiring, kube, "customer", "acme", "True")
        assert applied["reason"] == "Applied"
        assert "Application argocd/tenant-acme" in applied["message"]
        assert commit[:12] in applied["message"]
        assert applied_column(kube, "customers", "acme") == "True"

        support.apply(kube, support.application("tenant-acme", "tenants/acme", revision=older))
        behind = wait_applied(wiring, kube, "customer", "acme", "False")
        assert behind["reason"] == "NotYetApplied"
        assert older[:12] in behind["message"]
        assert applied_column(kube, "customers", "acme") == "False"

        raw = get(kube, "customer", "acme")
        assert condition(raw, "Ready")["status"] == "True"  # Applied does not touch Ready
        assert not wiring.controller.failures
    assert [c.action for c in commits_of(wiring.repo_path, "customer/acme")] == ["create"]


def test_in_a_sharded_repo_the_application_at_the_tenants_shard_path_makes_applied_true(
        kube_with_deployers: fixtures.Kubectl, fake_apiserver: server.FakeApiServer,
        fake_kubeconfig: Path, tmp_path: Path) -> None:
    """With layout sharded the Customer's commit lands in tenants/_82/acme/, and the
    Application the tenants ApplicationSet makes for that path sets Applied=True."""
    kube = kube_with_deployers
    support.apply(kube, support.customer("acme"))
    with support.wired(fake_kubeconfig, tmp_path / "config.git",
                       environ={"RECONCILER_LAYOUT": "sharded"}) as wiring, \
            support.running(wiring, fake_apiserver):
        commit = last_commit(kube, "customer", "acme")
        files = git(wiring.repo_path, "ls-tree", "-r", "--name-only", commit, "tenants")
        assert "tenants/_82/acme/kustomization.yaml" in files.split()
        support.apply(kube, support.application("tenant-acme", "tenants/_82/acme",
                                                revision=commit))
        applied = wait_applied(wiring, kube, "customer", "acme", "True")
        assert "Application argocd/tenant-acme" in applied["message"]
        assert not wiring.controller.failures


def test_a_ready_flux_kustomization_containing_the_commit_makes_a_preview_applied(
        kube_with_deployers: fixtures.Kubectl, fake_apiserver: server.FakeApiServer,
        fake_kubeconfig: Path, tmp_path: Path) -> None:
    """A Ready Kustomization for ./previews whose lastAppliedRevision is a later commit than
    the Preview's sets Applied=True on the Preview; a Customer under tenants/, which it does
    not cover, gets Unknown NoDeployer."""
    kube = kube_with_deployers
    support.apply(kube, support.preview("pr-7"))
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring, \
            support.running(wiring, fake_apiserver):
        preview_commit = last_commit(kube, "preview", "pr-7")
        support.apply(kube, support.customer("later"))
        head = last_commit(kube, "customer", "later")
        assert head != preview_commit
        support.apply(kube, support.kustomization("previews", "./previews", revision=head))

        applied = wait_applied(wiring, kube, "preview", "pr-7", "True")
        assert "Kustomization flux-system/previews" in applied["message"]
        assert preview_commit[:12] in applied["message"]
        assert applied_column(kube, "previews", "pr-7") == "True"
        other = wait_until(lambda: condition(get(kube, "customer", "later"), "Applied"),
                           what="customer/later Applied")
        assert (other["status"], other["reason"]) == ("Unknown", "NoDeployer")


def test_without_argo_or_flux_installed_applied_is_unknown_and_nothing_fails(
        kube: fixtures.Kubectl, fake_apiserver: server.FakeApiServer, fake_kubeconfig: Path,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With neither CRD served, the applied task sets Applied=Unknown (NoDeployer) and logs
    no warning or error."""
    support.apply(kube, support.customer("acme"))
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring, \
            support.running(wiring, fake_apiserver):
        last_commit(kube, "customer", "acme")
        with caplog.at_level(logging.WARNING, logger="reconciler"):
            applied = wait_applied(wiring, kube, "customer", "acme", "Unknown")
        assert applied["reason"] == "NoDeployer"
        assert "tenants/acme/" in applied["message"]
        assert not wiring.controller.failures
    assert not [r for r in caplog.records if r.name.startswith("reconciler")
                and r.levelno >= logging.WARNING]


def test_the_generated_crds_have_an_applied_printer_column() -> None:
    """crds/ gives Customer and Preview an Applied column reading the Applied condition."""
    for name in ("customer.yaml", "preview.yaml"):
        crd = yaml.safe_load((support.CRDS / name).read_text())
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        assert {"name": "Applied", "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Applied")].status'} in columns


# -- local mode ----------------------------------------------------------------------------


def test_local_status_applied_from_manifests_shows_true_false_and_unknown(
        tmp_path: Path) -> None:
    """``status --applied-from`` with an Application file and a ``kind: List`` of
    Kustomizations shows APPLIED True for acme (Application at a later commit), False for
    the Preview (Kustomization at an older commit) and Unknown for beta (nothing deploys
    it), with the reasons in ``-o json``."""
    source, repo = tmp_path / "resources", tmp_path / "config.git"
    support.write_manifests(source, support.customer("acme"), support.customer("beta"),
                            support.preview("pr-7"))
    support.ok(support.reconciler("run", "--source", source, "--repo", repo, "--once"))
    history = commits(repo)
    head, seed = history[0].id, history[-1].id
    assert {"customer/acme", "customer/beta", "preview/pr-7"} <= {c.object for c in history}

    apps = tmp_path / "applications.yaml"
    apps.write_text(yaml.safe_dump_all([
        support.application("tenant-acme", "tenants/acme", revision=head),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}]))
    listed = tmp_path / "kustomizations.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        support.kustomization("previews", "./previews", revision=seed)]}))
    applied_from: list[str | Path] = ["--applied-from", apps, "--applied-from", listed]

    rows = support.table(support.ok(support.reconciler(
        "status", "--source", source, "--repo", repo, *applied_from)))
    assert {key: row["APPLIED"] for key, row in rows.items()} == {
        "customer/acme": "True", "customer/beta": "Unknown", "preview/pr-7": "False"}

    records = json.loads(support.ok(support.reconciler(
        "status", "--source", source, "--repo", repo, *applied_from, "-o", "json")))
    why = {f"{r['kind'].lower()}/{r['name']}": r["applied"] for r in records}
    assert why["customer/acme"].startswith("True (Applied: Application argocd/tenant-acme")
    assert why["customer/beta"].startswith("Unknown (NoDeployer:")
    assert why["preview/pr-7"].startswith("False (NotYetApplied: Kustomization "
                                          "flux-system/previews")
