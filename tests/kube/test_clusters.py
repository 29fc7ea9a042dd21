"""Choosing the cluster for the scenario tests: RECONCILER_TEST_KUBECONFIG or the fake server.

The "real cluster" here is the fake server reached only through its kubeconfig written to
another directory, which is how a kind or k3d cluster is reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_apiserver import fixtures, server
from tests.kube import clusters
from tests.kube.test_controller_support import FINALIZER, customer


@pytest.fixture
def elsewhere(fake_apiserver: server.FakeApiServer,
              tmp_path: Path) -> tuple[server.FakeApiServer, Path]:
    """The fake API server, and its kubeconfig written to a directory of its own."""
    (tmp_path / "elsewhere").mkdir()
    return fake_apiserver, fake_apiserver.write_kubeconfig(tmp_path / "elsewhere" / "kubeconfig")


@pytest.fixture
def no_more_servers(elsewhere: tuple[server.FakeApiServer, Path],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any fake API server besides ``elsewhere``'s is started."""
    def refuse(self: server.FakeApiServer) -> server.FakeApiServer:
        raise AssertionError("a second fake API server was started")
    monkeypatch.setattr(server.FakeApiServer, "start", refuse)


def refuse_fake() -> tuple[server.FakeApiServer, Path]:
    raise AssertionError("the fake API server was asked for")


def names_on(kubectl: fixtures.Kubectl, plural: str) -> list[str]:
    listed = json.loads(kubectl("get", plural, "-o", "json").stdout)
    return [raw["metadata"]["name"] for raw in listed["items"]]


@pytest.mark.parametrize("environ", [{}, {clusters.ENV: ""}], ids=["unset", "empty"])
def test_without_the_variable_the_fake_server_is_started(
        environ: dict[str, str], fake_apiserver: server.FakeApiServer, fake_kubeconfig: Path,
        tmp_path: Path) -> None:
    """RECONCILER_TEST_KUBECONFIG unset or empty: the fake is started and its kubeconfig used."""
    asked: list[str] = []

    def start_fake() -> tuple[server.FakeApiServer, Path]:
        asked.append("fake")
        return fake_apiserver, fake_kubeconfig

    with clusters.open_cluster(environ=environ, start_fake=start_fake, home=tmp_path / "home",
                               clusters_with_crds=set()) as chosen:
        assert (chosen.fake, chosen.kubeconfig, chosen.real) == (fake_apiserver, fake_kubeconfig,
                                                                 False)
        assert names_on(chosen.kubectl, "customers") == []  # the CRDs are served there
    assert asked == ["fake"]


def test_the_variable_selects_that_kubeconfig_and_starts_no_server(
        elsewhere: tuple[server.FakeApiServer, Path], no_more_servers: None,
        tmp_path: Path) -> None:
    """With the variable set the fixture returns that file, starts no fake, applies the CRDs once."""
    other, kubeconfig = elsewhere
    applied: set[Path] = set()
    environ = {clusters.ENV: str(kubeconfig)}
    with clusters.open_cluster(environ=environ, start_fake=refuse_fake, home=tmp_path / "home",
                               clusters_with_crds=applied) as chosen:
        assert (chosen.kubeconfig, chosen.fake, chosen.real) == (kubeconfig, None, True)
        assert names_on(chosen.kubectl, "customers") == []  # the CRDs are served there
    assert applied == {kubeconfig}
    before = other.request_counts()
    with clusters.open_cluster(environ=environ, start_fake=refuse_fake, home=tmp_path / "home",
                               clusters_with_crds=applied):
        pass
    crd_writes = [key for key, n in (other.request_counts() - before).items()
                  if "customresourcedefinitions" in key[1] and key[0] != "GET"]
    assert crd_writes == [], "the CRDs are applied once per session on a real cluster"


def test_a_missing_kubeconfig_file_fails_with_its_name(tmp_path: Path) -> None:
    """A variable naming no file fails the test with one line instead of using the fake."""
    missing = tmp_path / "no-such-kubeconfig"
    with pytest.raises(pytest.fail.Exception, match="no-such-kubeconfig"), clusters.open_cluster(
            environ={clusters.ENV: str(missing)}, start_fake=refuse_fake,
            home=tmp_path / "home", clusters_with_crds=set()):
        pass


def test_tests_needing_the_fake_are_skipped_on_a_real_cluster_with_a_reason() -> None:
    """needs_fake skips only when the variable is set, and its reason names the control."""
    on_real = clusters.needs_fake("drop_watches()", environ={clusters.ENV: "/some/kubeconfig"})
    on_fake = clusters.needs_fake("drop_watches()", environ={})
    assert on_real.mark.args == (True,) and on_fake.mark.args == (False,)
    assert "drop_watches()" in on_real.mark.kwargs["reason"]


def test_a_real_cluster_holding_other_objects_is_refused(
        elsewhere: tuple[server.FakeApiServer, Path], tmp_path: Path) -> None:
    """A Customer nobody in this test made fails the test before the reconciler would act on it."""
    _, kubeconfig = elsewhere
    kubectl = fixtures.kubectl_for(kubeconfig, home=tmp_path / "home")
    clusters.apply_crds(kubectl)
    kubectl("apply", "--validate=false", "-f", "-", input=customer("someone-elses"))
    with pytest.raises(pytest.fail.Exception, match="customers/someone-elses"), \
            clusters.open_cluster(environ={clusters.ENV: str(kubeconfig)}, start_fake=refuse_fake,
                                  home=tmp_path / "home", clusters_with_crds=set()):
        pass


def test_teardown_removes_what_the_test_made_and_reports_strays(
        elsewhere: tuple[server.FakeApiServer, Path], tmp_path: Path) -> None:
    """Objects (finalizer stripped), their Events and the Lease namespace go; a stray fails."""
    _, kubeconfig = elsewhere
    environ = {clusters.ENV: str(kubeconfig)}
    with clusters.open_cluster(environ=environ, start_fake=refuse_fake, home=tmp_path / "home",
                               clusters_with_crds=set()) as chosen:
        acme = chosen.name("acme")
        assert chosen.name("acme") == acme != "acme"
        body = json.loads(customer(acme))
        body["metadata"]["finalizers"] = [FINALIZER]
        chosen.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(body))
        event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{acme}.1"},
                 "involvedObject": {"apiVersion": f"{clusters.GROUP}/{clusters.VERSION}",
                                    "kind": "Customer", "name": acme},
                 "reason": "Created", "message": "committed", "type": "Normal"}
        chosen.kubectl("create", "--validate=false", "-n", "default", "-f", "-",
                       input=json.dumps(event))
        namespace = chosen.lease_namespace()
    kubectl = fixtures.kubectl_for(kubeconfig, home=tmp_path / "home")
    assert names_on(kubectl, "customers") == []
    assert f"{acme}.1" not in names_on(kubectl, "events")
    assert namespace not in names_on(kubectl, "namespaces")

    with pytest.raises(AssertionError, match="customers/stray"), clusters.open_cluster(
            environ=environ, start_fake=refuse_fake, home=tmp_path / "home",
            clusters_with_crds={kubeconfig}) as chosen:
        chosen.kubectl("apply", "--validate=false", "-f", "-", input=customer("stray"))


def test_without_go_the_real_server_tests_skip_with_one_line_but_fail_in_ci() -> None:
    """No Go toolchain: a skip naming it on a developer's machine, a failure under CI=true."""
    with pytest.raises(pytest.skip.Exception, match="no Go toolchain") as skipped:
        clusters.require_go(None, environ={})
    assert "\n" not in str(skipped.value)
    with pytest.raises(pytest.fail.Exception, match="CI=true needs it"):
        clusters.require_go(None, environ={"CI": "true"})
    assert clusters.require_go(Path("/usr/bin/go"), environ={"CI": "true"}) == Path("/usr/bin/go")
