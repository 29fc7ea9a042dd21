"""Fixtures for the tests against the Kubernetes API: the fake API server, a kubectl runner,
and the cluster the controller scenarios run against (the fake, or RECONCILER_TEST_KUBECONFIG's).
"""

from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    fake_apiserver,
    fake_kubeconfig,
    kube_api_client,
    kubectl,
)
from tests.kube.clusters import (  # noqa: F401 - fixtures by name
    cluster,
    clusters_with_crds,
    real_server,
)
