"""The Dockerfile and .dockerignore (no Docker engine here: the files are read, the CLI
arguments parsed by the real parser), and the README's "Deploying" section."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from reconciler import cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return result


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT or CMD."""
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return value


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    """Variables set by ENV key=value instructions."""
    env = {}
    for keyword, rest in steps:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))
    return env


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore patterns exclude a top-level ``path`` (last match wins)."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if fnmatch.fnmatchcase(path, pattern.lstrip("!").rstrip("/")):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    """The Dockerfile's instructions."""
    return instructions(DOCKERFILE)


def test_base_image_is_a_pinned_python_311_slim(steps):
    """The image builds on python 3.11 slim, the Python the project targets, pinned to a
    patch release and a Debian release (or a digest), so a rebuild gets the same base."""
    keyword, image = steps[0]
    assert keyword == "FROM"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image


def test_the_signing_programs_are_installed_without_recommends(steps):
    """``--sign ssh:`` runs ssh-keygen and ``--sign gpg:`` runs gpg (with its agent): the
    image installs their Debian packages, nothing recommended, and drops the apt lists."""
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    install = re.search(r"apt-get install -y --no-install-recommends ([^&]+)", runs)
    assert install is not None, runs
    assert set(install.group(1).split()) == {"openssh-client", "gpg", "gpg-agent"}
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_runs_as_the_non_root_uid_the_deployment_expects(steps):
    """The last USER is a numeric non-root uid, the one the Deployment's runAsUser names."""
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    deployment = yaml.safe_load((ROOT / "deploy" / "base" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_reconciler_and_default_args_run_the_controller(steps):
    """ENTRYPOINT runs ``reconciler``; the default CMD is the in-cluster controller with JSON
    logs, as the real CLI parser reads it."""
    (entrypoint,) = [exec_form(rest) for keyword, rest in steps if keyword == "ENTRYPOINT"]
    assert entrypoint == ["reconciler"]
    (command,) = [exec_form(rest) for keyword, rest in steps if keyword == "CMD"]
    args = cli._parser().parse_args(command)
    assert args.func is cli._run
    assert [str(s) for s in args.source] == ["kubernetes"]
    assert args.log_format == "json"
    assert Path(args.repo).is_relative_to("/var/lib/reconciler")


def test_layout_dir_points_at_the_copied_skeleton(steps):
    """RECONCILER_LAYOUT_DIR names where repo-layout/ is copied: an installed package does not
    find it next to itself, and seeding a new config repo needs it."""
    copies = {rest.split()[-1]: rest.split()[:-1] for keyword, rest in steps
              if keyword == "COPY"}
    layout_dir = env_of(steps)["RECONCILER_LAYOUT_DIR"]
    assert copies[layout_dir] == ["repo-layout"]


def test_dockerignore_keeps_what_copy_needs_and_drops_the_rest(steps):
    """Every COPY source is in the build context; .git, .venv and tests are not."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources = [s for keyword, rest in steps if keyword == "COPY" for s in rest.split()[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source, patterns), source
    for unwanted in (".git", ".venv", "tests", "bench", "deploy"):
        assert ignored(unwanted, patterns), unwanted


def test_deploy_guide_matches_the_files():
    """README's "Deploying" section links docs/deploy.md and names the compose URLs; the guide
    names the apply command, the Git credentials Secret and its keys, every overlay, the image
    override and the monitoring."""
    readme = (ROOT / "README.md").read_text()
    assert "\n## Deploying\n" in readme
    section = readme.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    for needle in ("docs/deploy.md", "kubectl apply -k deploy/", "docker compose up",
                   "http://localhost:8090/", "git://localhost/config.git"):
        assert needle in section, needle
    guide = (ROOT / "docs" / "deploy.md").read_text()
    overlays = sorted(p.name for p in (ROOT / "deploy" / "overlays").iterdir())
    for needle in ("kubectl apply -k", "gitops-reconciler-git", "ssh-privatekey", "known_hosts",
                   "forge-token", "kustomize edit set image", "docker push",
                   "kubectl apply -k deploy/monitoring/", "kind: Application", "deploy/argocd/",
                   *(f"deploy/overlays/{name}" for name in overlays)):
        assert needle in guide, needle
