"""Fixtures of the scheduled-work tests: the fake API server, kubectl, and CRDs installed."""

from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    fake_apiserver,
    fake_kubeconfig,
    kubectl,
)
from tests.scheduled.support import (  # noqa: F401 - pytest finds fixtures by name
    kube_fixture,
    kube_with_deployers_fixture,
)
