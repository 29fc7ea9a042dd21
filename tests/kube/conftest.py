"""Fixtures for the tests against the Kubernetes API: the fake API server and a kubectl runner."""

from tests.fake_apiserver.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    fake_apiserver,
    fake_kubeconfig,
    kube_api_client,
    kubectl,
)
