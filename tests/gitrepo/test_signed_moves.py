"""Signed commits move the branch by compare-and-swap, as unsigned ones do: a writer that
lands while the signature is being made is never overwritten."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.adapters.gitrepo import GitConfigRepo
from reconciler.core import errors
from reconciler.core.plan import ChangeSet
from tests.gitcli import git, human_commit

SIGNATURE = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"


@dataclass
class SlowSigner:
    """Signs, but a human's commit lands on the branch while it does (the worst moment)."""

    bare: Path
    moved_to: str | None = None

    @property
    def description(self) -> str:
        """What signs."""
        return "test:slow"

    def sign(self, payload: bytes) -> str:
        """Let a human commit land (the first time), then hand back a signature."""
        if self.moved_to is None:
            self.moved_to = human_commit(self.bare, {"NOTES": b"human\n"}, "while signing")
        return SIGNATURE


def test_a_commit_landing_while_signing_is_kept_and_ours_is_refused(tmp_path: Path) -> None:
    """The branch keeps the human's commit that landed during signing; our signed commit
    fails as a moved head (retried by the caller), and is never force-set over it."""
    bare = tmp_path / "config.git"
    seed = GitConfigRepo.open(bare, branch="main", author_name="r", author_email="r@x",
                              create=True)
    seed.commit(ChangeSet({"README": b"seed\n"}), "seed\n")
    signer = SlowSigner(bare)
    repo = GitConfigRepo.open(bare, branch="main", author_name="r", author_email="r@x",
                              signer=signer)

    with pytest.raises(errors.HeadMovedError):
        repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a: 1\n"}), "acme\n")

    assert git(bare, "rev-parse", "main") == signer.moved_to
    second = repo.commit(ChangeSet({"tenants/acme/a.yaml": b"a: 1\n"}), "acme\n")
    assert git(bare, "rev-parse", "main^") == signer.moved_to
    assert git(bare, "rev-parse", "main") == second
