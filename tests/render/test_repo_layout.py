"""The config repo skeleton in repo-layout/: Argo CD and Flux build from it and it is documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ROOT / "repo-layout"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
PLACEHOLDER_URL = "https://git.example.com/platform/config.git"
FOLDERS = ("tenants", "previews", "platform")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Objects ``kubectl kustomize directory`` prints (fails the test on a build error)."""
    proc = subprocess.run([str(KUBECTL), "kustomize", str(directory)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [o for o in objects if o["kind"] == kind]


def flux_generated_kustomization(folder: Path) -> dict[str, Any]:
    """The kustomization.yaml kustomize-controller generates for a path that has none.

    Mirrors scanManifests in fluxcd/pkg kustomize/kustomize_generator.go: a subdirectory with a
    kustomization file is added as a resource and not descended into; other files count only
    when they end in .yaml or .yml.
    """
    resources: list[str] = []

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                if any((entry / name).is_file() for name in KUSTOMIZATION_FILES):
                    resources.append(entry.relative_to(folder).as_posix())
                else:
                    walk(entry)
            elif entry.suffix in (".yaml", ".yml"):
                resources.append(entry.relative_to(folder).as_posix())

    walk(folder)
    kus: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                           "kind": "Kustomization"}
    if resources:
        kus["resources"] = resources
    else:
        kus["namespace"] = "_placeholder"
    return kus


@pytest.fixture(scope="module")
def argocd() -> list[dict[str, Any]]:
    """The built argocd/ directory."""
    return kustomize(LAYOUT / "argocd")


@pytest.fixture(scope="module")
def flux() -> list[dict[str, Any]]:
    """The built flux/ directory."""
    return kustomize(LAYOUT / "flux")


def test_argocd_builds_one_project_and_one_applicationset_per_folder(argocd):
    """Applying argocd/ creates an AppProject and ApplicationSets over tenants/*, previews/*
    and platform/*, all in the argocd namespace."""
    assert Counter(o["kind"] for o in argocd) == {"AppProject": 1, "ApplicationSet": 3}
    assert {o["metadata"]["namespace"] for o in argocd} == {"argocd"}
    paths = sorted(d["path"] for s in by_kind(argocd, "ApplicationSet")
                   for g in s["spec"]["generators"] for d in g["git"]["directories"])
    assert paths == ["platform/*", "previews/*", "tenants/*", "tenants/*/*", "tenants/_*"]


def test_argocd_tenant_applications_sync_their_own_namespace(argocd):
    """Each tenant directory becomes Application tenant-<dir> deploying into customer-<dir>,
    synced automatically with prune and self-heal and cached per directory."""
    (tenants,) = [s for s in by_kind(argocd, "ApplicationSet")
                  if s["spec"]["generators"][0]["git"]["directories"][0]["path"] == "tenants/*"]
    spec = tenants["spec"]
    template = spec["template"]
    assert spec["goTemplate"] is True
    assert template["metadata"]["name"] == "tenant-{{.path.basename}}"
    assert template["spec"]["destination"]["namespace"] == "customer-{{.path.basename}}"
    assert template["spec"]["source"]["path"] == "{{.path.path}}"
    assert template["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" not in template["spec"]["syncPolicy"].get("syncOptions", [])


def test_every_argocd_application_has_manifest_generate_paths_and_the_project(argocd):
    """Every generated Application only refreshes on commits touching its own directory and
    belongs to the config-repo AppProject, which allows the namespaces it deploys into."""
    (project,) = by_kind(argocd, "AppProject")
    allowed = {d["namespace"] for d in project["spec"]["destinations"]}
    expected = {"tenants": "customer-", "previews": "preview-", "platform": "platform"}
    for appset in by_kind(argocd, "ApplicationSet"):
        template = appset["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/manifest-generate-paths"] == "."
        assert template["spec"]["project"] == project["metadata"]["name"]
        namespace = template["spec"]["destination"]["namespace"]
        folder = appset["spec"]["generators"][0]["git"]["directories"][0]["path"].split("/")[0]
        assert namespace.startswith(expected[folder])
        assert any(namespace == a or (a.endswith("*") and namespace.startswith(a[:-1]))
                   for a in allowed), namespace


def test_argocd_repo_url_and_branch_are_edited_in_one_place(tmp_path):
    """Changing url and revision in argocd/config-repo.yaml changes them in the AppProject and
    every ApplicationSet, and the settings object itself is never applied."""
    copy = tmp_path / "argocd"
    shutil.copytree(LAYOUT / "argocd", copy)
    config = copy / "config-repo.yaml"
    text = config.read_text()
    assert PLACEHOLDER_URL in text
    url = "ssh://git@git.corp.example/fleet/config.git"
    config.write_text(text.replace(PLACEHOLDER_URL, url).replace("revision: main",
                                                                 "revision: rendered"))
    objects = kustomize(copy)
    assert not by_kind(objects, "ConfigMap")
    (project,) = by_kind(objects, "AppProject")
    assert project["spec"]["sourceRepos"] == [url]
    for appset in by_kind(objects, "ApplicationSet"):
        git = appset["spec"]["generators"][0]["git"]
        source = appset["spec"]["template"]["spec"]["source"]
        assert (git["repoURL"], git["revision"]) == (url, "rendered")
        assert (source["repoURL"], source["targetRevision"]) == (url, "rendered")


def test_flux_builds_a_source_and_one_pruning_kustomization_per_folder(flux):
    """Applying flux/ creates the GitRepository and Flux Kustomizations for ./tenants,
    ./previews and ./platform that read it and prune what disappears from the repo."""
    assert Counter(o["kind"] for o in flux) == {"GitRepository": 1, "Kustomization": 3}
    (source,) = by_kind(flux, "GitRepository")
    assert source["spec"]["url"] == PLACEHOLDER_URL
    kustomizations = by_kind(flux, "Kustomization")
    assert sorted(k["spec"]["path"] for k in kustomizations) == [
        "./platform", "./previews", "./tenants"]
    for k in kustomizations:
        assert k["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert k["spec"]["prune"] is True
        assert k["spec"]["sourceRef"] == {"kind": "GitRepository",
                                          "name": source["metadata"]["name"]}
        assert k["metadata"]["namespace"] == source["metadata"]["namespace"]


def test_flux_and_argocd_folders_exist_without_a_kustomization_file(flux):
    """The folders Flux points at exist in a freshly initialised repo (Flux stops on a missing
    path) and have no kustomization.yaml, so Flux picks up every directory inside them."""
    for k in by_kind(flux, "Kustomization"):
        folder = LAYOUT / k["spec"]["path"]
        # Git stores no empty directory: the folder needs a file to exist after `reconciler init`.
        assert any(p.is_file() for p in folder.rglob("*")), folder
        assert not any((folder / name).exists() for name in KUSTOMIZATION_FILES), folder
    assert {Path(k["spec"]["path"]).name for k in by_kind(flux, "Kustomization")} == set(FOLDERS)


def test_flux_folder_build_deploys_every_rendered_tenant_but_not_its_source_record(tmp_path):
    """Built the way kustomize-controller builds ./tenants, two rendered Customers yield both
    tenant namespaces, and no .reconciler.json content reaches the cluster."""
    source = tmp_path / "customers.yaml"
    source.write_text(
        "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nmetadata: {name: acme}\n"
        "spec:\n  features:\n    database: {enabled: true, storage: 1Gi}\n---\n"
        "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nmetadata: {name: globex}\n"
        "spec: {}\n")
    repo = tmp_path / "repo"
    shutil.copytree(LAYOUT, repo)
    proc = subprocess.run([str(BIN / "reconciler"), "render", str(source), "--out", str(repo)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    tenants = repo / "tenants"
    assert (tenants / "acme" / ".reconciler.json").is_file()
    generated = flux_generated_kustomization(tenants)
    assert generated["resources"] == ["acme", "globex"]
    (tenants / "kustomization.yaml").write_text(yaml.safe_dump(generated))
    objects = kustomize(tenants)
    namespaces = {o["metadata"]["name"] for o in by_kind(objects, "Namespace")}
    assert namespaces == {"customer-acme", "customer-globex"}
    assert all(o["apiVersion"].split("/")[0] != "reconciler.ahoi.dev" for o in objects)


def test_flux_platform_folder_builds_namespace_before_pool(tmp_path):
    """After a reconciler run, ./platform built the way kustomize-controller builds it holds the
    platform Namespace and the pgbouncer pool, which deploys into that namespace."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "acme.yaml").write_text(
        "apiVersion: reconciler.ahoi.dev/v1alpha1\nkind: Customer\nmetadata: {name: acme}\n"
        "spec:\n  features:\n    database: {enabled: true, storage: 1Gi}\n")
    repo, checkout = tmp_path / "config", tmp_path / "checkout"
    proc = subprocess.run([str(BIN / "reconciler"), "run", "--source", str(source),
                           "--repo", str(repo), "--once"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
    platform = checkout / "platform"
    generated = flux_generated_kustomization(platform)
    assert generated["resources"] == ["namespace", "pgbouncer"]
    (platform / "kustomization.yaml").write_text(yaml.safe_dump(generated))
    objects = kustomize(platform)
    (namespace,) = by_kind(objects, "Namespace")
    (deployment,) = by_kind(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == namespace["metadata"]["name"] == "platform"


def test_empty_folders_build_for_flux():
    """Before the first tenant or preview exists (and after the last is deleted), Flux's
    generated kustomization for the folder builds instead of failing."""
    for folder in ("tenants", "previews"):
        assert flux_generated_kustomization(LAYOUT / folder) == {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "namespace": "_placeholder"}


def test_platform_namespace_builds_and_validates(tmp_path):
    """platform/namespace/ builds to the Namespace pgbouncer deploys into and passes strict
    Kubernetes schema validation."""
    objects = kustomize(LAYOUT / "platform" / "namespace")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("Namespace", "platform")]
    built = tmp_path / "namespace.yaml"
    built.write_text(yaml.safe_dump_all(objects))
    proc = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(built)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_documents_every_top_level_directory_and_large_fleets():
    """The config repo README names every directory the skeleton ships and says what happens
    beyond ~3,000 entries per directory, and how the sharded layout and its migration go."""
    readme = (LAYOUT / "README.md").read_text()
    directories = [p.name for p in LAYOUT.iterdir() if p.is_dir()]
    assert set(FOLDERS) <= set(directories)
    for name in directories:
        assert f"{name}/" in readme, name
    assert "## Large fleets" in readme
    fleets = readme.split("## Large fleets", 1)[1]
    assert "3,000" in fleets
    assert "45 bytes" in fleets
    assert "tenants/_<shard>/<name>/" in fleets and "migrate-layout" in fleets
    assert "git revert" in readme
    assert "Reconciler-Object" in readme


def test_gitattributes_marks_rendered_paths_generated_but_keeps_diffs(tmp_path):
    """In a config repo, rendered files are linguist-generated while human-owned files are
    not, and no file has its diff turned off."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(LAYOUT / ".gitattributes", tmp_path / ".gitattributes")
    paths = {"tenants/acme/namespace.yaml": "true", "previews/web-feat/app.yaml": "true",
             "platform/pgbouncer/pgbouncer.ini": "true",
             "platform/namespace/namespace.yaml": "unspecified",
             "argocd/kustomization.yaml": "unspecified", "README.md": "unspecified"}
    proc = subprocess.run(["git", "-C", str(tmp_path), "check-attr", "linguist-generated",
                           "diff", "--", *paths], capture_output=True, text=True, check=True)
    attrs = {}
    for line in proc.stdout.splitlines():
        path, attr, value = line.split(": ")
        attrs[path, attr] = value
    for path, generated in paths.items():
        assert attrs[path, "linguist-generated"] == generated, path
        assert attrs[path, "diff"] == "unspecified", path
