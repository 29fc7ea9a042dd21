"""``reconciler run --source kubernetes --once --mode pr``: the Customer's status tells the pull
request's URL and state, and a merged pull request counts as committed (issue 4, section 3).

The resources live in the fake API server (CRDs from ``crds/``, applied with the real kubectl);
the config repo is a ``git daemon`` remote whose main holds ``examples/``; GitHub is a fake.
The fake API server's fixtures come in through this directory's ``conftest.py``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apiserver import fixtures
from tests.pullrequests import support
from tests.pullrequests.support import ForgeUnderTest, Workspace

ROOT = Path(__file__).resolve().parents[2]
ACME_BRANCH = "reconciler/customer/acme"


def run_in_cluster(kubeconfig: Path, workspace: Workspace,
                   forge: ForgeUnderTest) -> subprocess.CompletedProcess[str]:
    """One in-cluster pass: ``reconciler run --source kubernetes --once --mode pr``."""
    return support.reconciler("run", "--source", "kubernetes", "--kubeconfig", kubeconfig,
                              "--once", "--repo", workspace.remote.url,
                              "--state-dir", workspace.state_dir, *forge.args(),
                              home=workspace.home)


def customer(kube: fixtures.Kubectl, name: str) -> dict[str, Any]:
    """The Customer as ``kubectl get -o json`` shows it."""
    raw: dict[str, Any] = json.loads(kube("get", "customer", name, "-o", "json").stdout)
    return raw


def condition(raw: dict[str, Any], ctype: str) -> tuple[str, str]:
    """(status, reason) of one condition of the object's status."""
    for cond in raw.get("status", {}).get("conditions", []):
        if cond["type"] == ctype:
            return cond["status"], cond["reason"]
    raise AssertionError(f"no {ctype} condition in {raw.get('status')}")


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_status_shows_the_open_pull_request_then_committed_once_it_is_merged(
        kubectl: fixtures.Kubectl, fake_kubeconfig: Path, workspace: Workspace,
        forge: ForgeUnderTest, tmp_path: Path) -> None:
    """acme asks for 3 workers: its status carries the PR URL, state open, Committed=False
    (PullRequestOpen); once the PR is merged, the next pass sets Committed and Ready True and
    the pull request's state to merged."""
    kubectl("apply", "--validate=false", "-f", str(ROOT / "crds"))
    workspace.set_feature("acme", "scheduler", workers=3)
    kubectl("apply", "--validate=false", "-R", "-f", str(workspace.source))

    support.ok(run_in_cluster(fake_kubeconfig, workspace, forge))

    [pull] = forge.pulls()
    assert pull.head == ACME_BRANCH
    acme = customer(kubectl, "acme")
    pull_request = acme["status"]["pullRequest"]
    assert pull_request["state"] == "open"
    assert pull_request["url"].endswith(str(pull.number))
    assert condition(acme, "Committed") == ("False", "PullRequestOpen")
    assert condition(acme, "Ready")[0] == "False"
    assert condition(customer(kubectl, "small-shop"), "Ready")[0] == "True"

    merge = workspace.remote.merge(ACME_BRANCH, tmp_path / "forge", f"Merge pull request #{pull.number}")
    forge.fake.merge(pull.number, merge)
    support.ok(run_in_cluster(fake_kubeconfig, workspace, forge))

    acme = customer(kubectl, "acme")
    assert condition(acme, "Committed")[0] == "True"
    assert condition(acme, "Ready")[0] == "True"
    assert acme["status"]["pullRequest"]["state"] == "merged"
    assert acme["status"]["pullRequest"]["url"] == pull_request["url"]
    assert [p.state for p in forge.open_pulls()] == []


@pytest.mark.parametrize("forge", ["github"], indirect=True)
def test_a_settings_change_in_the_cluster_is_one_pull_request_named_in_each_status(
        kubectl: fixtures.Kubectl, fake_kubeconfig: Path, workspace: Workspace,
        forge: ForgeUnderTest, tmp_path: Path) -> None:
    """The controller started with a new domain opens one re-render pull request (no PR of
    any object's own), and each re-rendered Customer's status names that pull request."""
    kubectl("apply", "--validate=false", "-f", str(ROOT / "crds"))
    kubectl("apply", "--validate=false", "-R", "-f", str(workspace.source))
    settings = tmp_path / "settings.yaml"
    settings.write_text("domain: apps.example.org\n"
                        "preview_host_patterns: ['preview-*.{domain}', '*.example.com']\n")

    support.ok(support.reconciler(
        "run", "--source", "kubernetes", "--kubeconfig", fake_kubeconfig, "--once",
        "--repo", workspace.remote.url, "--state-dir", workspace.state_dir,
        "--config", settings, *forge.args(), home=workspace.home))

    [pull] = forge.pulls()
    assert pull.head.startswith("reconciler/rerender/") and pull.state == "open"
    assert pull.title.startswith("rerender: domain example.com -> apps.example.org")
    assert not any(b.startswith("reconciler/customer/") for b in workspace.remote.branches())
    acme = customer(kubectl, "acme")
    assert acme["status"]["pullRequest"]["url"].endswith(str(pull.number))
    assert condition(acme, "Committed") == ("False", "PullRequestOpen")
