"""In the cluster: ``reconciler run --source kubernetes --once`` against the fake API server,
with kubectl and the git CLI as the human (issue 5, section 1: condition, Event, annotation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.audit import support
from tests.fake_apiserver import fixtures

CRDS = support.ROOT / "crds"


@pytest.fixture
def kube(kubectl: fixtures.Kubectl) -> fixtures.Kubectl:
    """kubectl, after applying the generated Customer and Preview CRDs."""
    kubectl("apply", "--validate=false", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=5s",
            "crd/customers.reconciler.ahoi.dev", "crd/previews.reconciler.ahoi.dev")
    return kubectl


def apply_customer(kube: fixtures.Kubectl, doc: dict[str, Any]) -> None:
    """``kubectl apply`` one Customer."""
    kube("apply", "--validate=false", "-f", "-", input=json.dumps(doc))


def run_once(kubeconfig: Path, repo: Path, home: Path) -> str:
    """One in-cluster pass; its output (fails the test on a non-zero exit)."""
    done = support.reconciler("run", "--source", "kubernetes", "--kubeconfig", kubeconfig,
                              "--repo", repo, "--once", env={"HOME": str(home)})
    return support.ok(done) + done.stderr


def customer_json(kube: fixtures.Kubectl, name: str) -> dict[str, Any]:
    """The Customer as ``kubectl get -o json`` shows it."""
    raw: dict[str, Any] = json.loads(kube("get", "customer", name, "-o", "json").stdout)
    return raw


def condition(raw: dict[str, Any], ctype: str) -> dict[str, Any]:
    """One condition of the object's status ({} when absent)."""
    found = [c for c in (raw.get("status") or {}).get("conditions") or [] if c["type"] == ctype]
    return found[0] if found else {}


def event_reasons(kube: fixtures.Kubectl, name: str) -> list[str]:
    """Reasons of the Events recorded about ``name``."""
    listed = json.loads(kube("get", "events", "-A", "-o", "json").stdout)
    return [e["reason"] for e in listed["items"] if e["involvedObject"].get("name") == name]


def test_a_revert_sets_in_sync_false_with_the_reason_and_records_an_event(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """After a human reverts the reconciler's update in the repo, the next pass commits
    nothing, sets InSync=False (RevertedInGit, naming the commit and author) and Ready=False,
    and records an Event with that reason."""
    repo = tmp_path / "config.git"
    apply_customer(kube, support.customer("acme", workers=2))
    run_once(fake_kubeconfig, repo, tmp_path)
    apply_customer(kube, support.customer("acme", workers=4))
    run_once(fake_kubeconfig, repo, tmp_path)
    human = support.Human(repo, tmp_path / "human")
    revert = human.revert("HEAD")
    human.push()

    run_once(fake_kubeconfig, repo, tmp_path)

    assert support.head(repo) == revert
    raw = customer_json(kube, "acme")
    in_sync, ready = condition(raw, "InSync"), condition(raw, "Ready")
    assert (in_sync["status"], in_sync["reason"]) == ("False", "RevertedInGit")
    assert revert[:12] in in_sync["message"] and support.HUMAN in in_sync["message"]
    assert (ready["status"], ready["reason"]) == ("False", "RevertedInGit")
    assert "RevertedInGit" in event_reasons(kube, "acme")


def test_the_resync_annotation_restores_the_rendering_in_one_commit(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """Annotating a held Customer with ``reconciler.ahoi.dev/resync`` makes the next pass
    restore its rendering in one commit, set InSync=True and take the annotation off."""
    repo = tmp_path / "config.git"
    apply_customer(kube, support.customer("acme", workers=2))
    run_once(fake_kubeconfig, repo, tmp_path)
    human = support.Human(repo, tmp_path / "human")
    revert = human.revert("HEAD")
    human.push()
    kube("annotate", "customer", "acme", f"{support.RESYNC_ANNOTATION}=now")

    run_once(fake_kubeconfig, repo, tmp_path)

    [commit] = support.new_commits(repo, revert)
    assert commit.trailers["Reconciler-Object"] == "customer/acme"
    assert commit.trailers["Reconciler-Supersedes"] == revert
    assert support.replicas(repo, "acme") == 2
    raw = customer_json(kube, "acme")
    assert condition(raw, "InSync")["status"] == "True"
    assert support.RESYNC_ANNOTATION not in (raw["metadata"].get("annotations") or {})
