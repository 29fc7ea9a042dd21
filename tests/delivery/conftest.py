"""Fixtures of the delivery tests: the reconciler CLI with its own HOME and state dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.support import ReconcilerCli


@pytest.fixture
def cli(tmp_path: Path) -> ReconcilerCli:
    """``reconciler`` as a subprocess, with a fresh HOME and state dir under tmp_path."""
    return ReconcilerCli(home=tmp_path / "home", state_dir=tmp_path / "state")
