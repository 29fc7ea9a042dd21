"""The metrics the held-change alert reads: ``reconciler_held_changes`` counts objects whose
change is held (a human's edit stands), ``reconciler_oldest_held_change_timestamp_seconds``
says since when, and both clear once the object is written again."""

from __future__ import annotations

from pathlib import Path

from reconciler.reconcile.delivery import DeliveryReport
from tests.fake_apiserver import fixtures
from tests.gitcli import human_commit
from tests.scheduled import support

HELD = "reconciler_held_changes"
SINCE = "reconciler_oldest_held_change_timestamp_seconds"
START = 1_800_000_000.0


def test_a_human_edit_is_counted_as_held_since_it_was_seen_until_the_spec_changes(
        kube: fixtures.Kubectl, fake_kubeconfig: Path, tmp_path: Path) -> None:
    """A hand edit of acme's files is held from the pass that saw it (the clock then), stays
    held with the same start an hour later, and is cleared when acme's spec changes."""
    clock = support.FakeClock(START)
    support.apply(kube, [support.customer("acme"), support.customer("other")])
    with support.wired(fake_kubeconfig, tmp_path / "config.git", clock=clock) as wiring:
        wiring.seed(support.customer("acme"), support.customer("other"))
        human_commit(wiring.repo_path, {"tenants/acme/scheduler.yaml": b"# by hand\n"})
        wiring.engine.invalidate()

        wiring.controller.run_once()
        assert (wiring.metric(HELD), wiring.metric(SINCE)) == (1, START)

        clock.advance(3600)
        wiring.controller.resync()
        wiring.controller.run_once()
        assert (wiring.metric(HELD), wiring.metric(SINCE)) == (1, START)

        support.apply(kube, [support.customer("acme", workers=5)])
        wiring.controller.run_once()
        assert (wiring.metric(HELD), wiring.metric(SINCE)) == (0, 0)


class ScriptedDelivery:
    """A Delivery whose pushes end as the test scripts them (the remote is tested elsewhere)."""

    def __init__(self, *reports: DeliveryReport) -> None:
        self.reports = list(reports)

    def deliver(self) -> DeliveryReport:
        return self.reports.pop(0)


def test_pushes_are_counted_by_result(fake_kubeconfig: Path, tmp_path: Path) -> None:
    """A failed push counts under result="failed" (what the pushes-failing alert reads), a
    successful one under "ok"; a delivery with nothing to push counts neither."""
    pushes = "reconciler_pushes_total"
    with support.wired(fake_kubeconfig, tmp_path / "config.git") as wiring:
        wiring.controller.delivery = ScriptedDelivery(  # type: ignore[assignment]
            DeliveryReport(error="rejected: protected branch"),
            DeliveryReport(pushed=3, pushes=1), DeliveryReport())
        for _ in range(3):
            wiring.controller.deliver()
        assert wiring.metric(pushes, result="failed") == 1
        assert wiring.metric(pushes, result="ok") == 1
