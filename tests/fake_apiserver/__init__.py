"""An HTTP-level fake of kube-apiserver for tests: ``FakeApiServer`` and its pytest fixtures.

It serves discovery, namespaces, events, leases, CRDs and the custom resources they define, with
resourceVersions, generations, the status subresource, finalizers, watches and selectors, so
that the official ``kubernetes`` client and the real ``kubectl`` work against it::

    with FakeApiServer() as api:                 # 127.0.0.1, a free port
        api.write_kubeconfig(tmp_path / "kubeconfig")
        ...                                      # point kubectl / the client at it
        api.compact()                            # older resourceVersions now get 410
        api.drop_watches(abrupt=True)            # cut every open watch mid-stream

Modules: ``server`` (life cycle, kubeconfig, test controls), ``handler`` (HTTP, watch streams),
``store`` (objects, resourceVersion, cascades), ``strategies`` (what a write changes),
``watches`` (history and fan-out), ``resources``/``discovery`` (served types), ``routing``,
``selectors``, ``patches``, ``tables``, ``protobuf``, ``errors``; ``fixtures`` for pytest.
"""

from tests.fake_apiserver.handler import RequestRecord
from tests.fake_apiserver.server import FakeApiServer

__all__ = ["FakeApiServer", "RequestRecord"]
