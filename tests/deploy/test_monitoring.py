"""deploy/monitoring: the ServiceMonitor scrapes the metrics Service, the alert rules pass
``promtool check rules`` and their unit tests, and every metric the alerts and the Grafana
dashboard query is served by the real /metrics endpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reconciler.adapters.observability import HealthServer, PrometheusMetrics
from tests.deploy import manifests

MONITORING = manifests.DEPLOY / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboards" / "gitops-reconciler.json"
UNIT_TESTS = Path(__file__).parent / "monitoring" / "alerts_test.yaml"
METRIC = re.compile(r"\breconciler_[a-z_]+\b")


def promtool() -> str:
    """The promtool binary (Debian package prometheus, installed by scripts/setup.sh)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: scripts/setup.sh installs the prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def rule_spec(*, annotations: bool = True) -> dict[str, Any]:
    """The PrometheusRule's spec: a Prometheus rule file."""
    spec: dict[str, Any] = yaml.safe_load(RULES.read_text())["spec"]
    if not annotations:
        for group in spec["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    return spec


def queried_metrics() -> dict[str, set[str]]:
    """Metric names each file queries."""
    rules = " ".join(r["expr"] for g in rule_spec()["groups"] for r in g["rules"])
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    return {"alerts": set(METRIC.findall(rules)), "dashboard": set(METRIC.findall(exprs))}


def test_monitoring_builds_with_kustomize():
    """``kubectl kustomize deploy/monitoring`` gives the ServiceMonitor, the PrometheusRule and
    the dashboard ConfigMap Grafana's sidecar picks up, all in gitops-reconciler."""
    objects = manifests.kustomize(MONITORING)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    dashboard = manifests.one(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["gitops-reconciler.json"])["uid"] == "gitops-reconciler"
    assert {o["metadata"]["namespace"] for o in objects} == {manifests.NAMESPACE}


def test_service_monitor_selects_the_metrics_service(built):
    """The ServiceMonitor's selector matches the metrics Service and names its port."""
    monitor = manifests.one(manifests.kustomize(MONITORING), "ServiceMonitor")
    service = manifests.one(built, "Service", f"{manifests.NAME}-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [manifests.NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"


def test_alert_rules_pass_promtool_check(tmp_path):
    """``promtool check rules`` accepts the rules (expressions and annotation templates)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_spec()))
    proc = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_promtool_check_can_fail(tmp_path):
    """A broken expression fails the same check, so the check above has teeth."""
    spec = rule_spec()
    spec["groups"][0]["rules"][0]["expr"] = "max(reconciler_queue_depth"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(spec))
    proc = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0


def test_alerts_fire_when_they_should_and_not_before(tmp_path):
    """``promtool test rules``: no sync for 15 minutes, pushes all failing, a change held for
    over an hour, a growing queue and failing reconciles each fire, and their quiet cases
    (a standby replica that never syncs, a draining queue) do not."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_spec(annotations=False)))
    shutil.copy(UNIT_TESTS, tmp_path / "alerts_test.yaml")
    proc = subprocess.run([promtool(), "test", "rules", "alerts_test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_queried_metric_is_served_by_metrics_endpoint():
    """Each metric name the alerts and the dashboard query is in what the controller's
    /metrics endpoint serves (over HTTP, from the adapter the controller uses)."""
    metrics = PrometheusMetrics()
    metrics.reconciled("Customer", "committed", 0.01)
    server = HealthServer(port=0, metrics=metrics, ready=lambda: True, host="127.0.0.1")
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
    finally:
        server.stop()
    served = {sample.name for family in text_string_to_metric_families(text)
              for sample in family.samples}
    for where, names in queried_metrics().items():
        assert names, where
        assert names <= served, f"{where} queries metrics /metrics lacks: {names - served}"
    assert {"reconciler_pushes_total", "reconciler_held_changes",
            "reconciler_oldest_held_change_timestamp_seconds"} <= queried_metrics()["alerts"]
