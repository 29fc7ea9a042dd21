"""The running controller's /metrics serves every metric deploy/monitoring's alerts and
dashboard query (a real ``reconciler run --source kubernetes`` process, scraped over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.test_monitoring import queried_metrics
from tests.fake_apiserver import fixtures
from tests.kube import clusters
from tests.kube.test_controller_cli import (  # noqa: F401 - pytest finds fixtures by name
    Launch,
    apply,
    commits_of,
    customer,
    free_port,
    http_get,
    kube_fixture,
    launch,
    repo,
    wait_until,
)

pytestmark = pytest.mark.realcluster


def test_every_metric_the_alerts_and_dashboard_query_is_served(
        launch: Launch, kube: fixtures.Kubectl, repo: Path,  # noqa: F811
        cluster: clusters.Cluster) -> None:
    """After one Customer is committed, the controller's /metrics has every metric name the
    PrometheusRule and the Grafana dashboard use; its log said first what it watches."""
    acme = cluster.name("acme")
    port = free_port()
    replica = launch(health_port=port)
    wait_until(lambda: http_get(port, "/readyz") == (200, "ok\n"), timeout=30, what="/readyz")
    cluster.wait_for_watches(2)
    apply(kube, customer(acme))
    wait_until(lambda: commits_of(repo, f"customer/{acme}"), what="commit of acme")
    code, text = http_get(port, "/metrics")
    assert code == 200
    served = {sample.name for family in text_string_to_metric_families(text)
              for sample in family.samples}
    for where, names in queried_metrics().items():
        assert names <= served, f"{where} queries metrics the controller lacks: {names - served}"
    assert replica.stop() == 0
    announced = [r["msg"] for r in replica.log_lines() if r["msg"].startswith("watching ")]
    assert announced and str(repo) in announced[0] and f"port {port}" in announced[0]
