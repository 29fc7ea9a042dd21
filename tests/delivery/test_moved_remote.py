"""A remote that moved during delivery makes the caller run the same pass again: what that
pass decided (an expiry, a removal) is decided again on the new head, not dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import app
from reconciler.adapters.gitremote import MirrorConfigRepo
from reconciler.ports.configrepo import PushResult
from tests import gitservers
from tests.delivery.support import HumanClone, is_ancestor, served

PREVIEW = """apiVersion: reconciler.ahoi.dev/v1alpha1
kind: Preview
metadata:
  name: p
{created}spec:
  app: campaigns
  branch: feat/xyz
  commit: b32bef0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a
  image: registry.example.com/campaigns:b32bef0
{ttl}"""


def test_an_expiry_removal_survives_a_remote_that_moved_before_the_push(
        daemon_git_server: gitservers.DaemonGitServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Preview past its ttl is removed by ``run --once``; a human push lands just before
    the reconciler's push, and the re-run pass on the new head removes it again, so the
    server ends with the human's commit and without previews/p."""
    server = daemon_git_server
    server.create_bare_repo("config")
    source = tmp_path / "src"
    source.mkdir()
    manifest = source / "p.yaml"
    manifest.write_text(PREVIEW.format(created="", ttl=""))
    settings = app.settings_from(None, environ={})
    target = app.Target(server.url_for("config"), state_dir=tmp_path / "state")
    first, delivered = app.run_once([source], target, settings)
    assert first.ok and delivered is not None and delivered.error is None
    manifest.write_text(PREVIEW.format(created="  creationTimestamp: '2020-01-01T00:00:00Z'\n",
                                       ttl="  ttl: 1h\n"))
    human = HumanClone(server, "config", tmp_path / "human")
    pushed: list[str] = []
    real_push = MirrorConfigRepo.push

    def push_after_a_human(self: MirrorConfigRepo) -> PushResult:
        if not pushed:
            pushed.append(human.commit_and_push("README.md", "by hand\n", "docs: by hand"))
        return real_push(self)
    monkeypatch.setattr(MirrorConfigRepo, "push", push_after_a_human)

    report, delivered = app.run_once([source], target, settings)

    assert delivered is not None and delivered.error is None, delivered
    assert delivered.rebases == 1
    assert is_ancestor(server, "config", pushed[0])
    assert "previews/p/" not in served(server, "config", "ls-tree", "-r", "--name-only", "main")
    assert served(server, "config", "log", "-1", "--format=%s", "main") == \
        "preview/p: expired (ttl 1h)"
    assert [o.message for o in report.outcomes if o.commit] == ["preview/p: expired (ttl 1h)"]
