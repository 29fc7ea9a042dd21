"""Render a Preview into ``previews/<name>/``: its namespace, app, service and TLS ingress.

Pure. The host is ``preview-<name>.<domain>`` unless ``spec.host`` is set: unique by
construction (object names are), so two apps or branches previewed at one commit never
share it, and stable while the Preview moves from commit to commit.
"""

from __future__ import annotations

from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Preview
from reconciler.core.render import common
from reconciler.core.settings import Settings


def preview_host(preview: Preview, settings: Settings) -> str:
    """The public host of a preview."""
    return preview.spec.host or f"preview-{preview.metadata.name}.{settings.domain}"


def namespace_of(name: str, settings: Settings) -> str:
    """The namespace a Preview owns."""
    return settings.preview_namespace_pattern.replace("{name}", name)


def render_preview(preview: Preview, settings: Settings) -> common.RenderedDir:
    """Return every file of ``previews/<name>/`` for ``preview``."""
    key = preview.key
    ns = namespace_of(key.name, settings)
    spec = preview.spec
    host = preview_host(preview, settings)
    labels = common.labels_for(key, "preview")
    selector = {"app.kubernetes.io/name": spec.app, "reconciler.ahoi.dev/preview": key.name}
    annotations = {
        "reconciler.ahoi.dev/branch": spec.branch,
        "reconciler.ahoi.dev/commit": spec.commit,
    }

    def meta(name: str, namespaced: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "labels": dict(labels), "annotations": annotations}
        if namespaced:
            out["namespace"] = ns
        return out

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns, namespaced=False)}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(spec.app),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, "reconciler.ahoi.dev/commit": spec.commit[:7]}},
                "spec": {"containers": [{
                    "name": spec.app,
                    "image": spec.image,
                    "ports": [{"name": "http", "containerPort": spec.port}],
                    "env": [
                        {"name": "PREVIEW_BRANCH", "value": spec.branch},
                        {"name": "PREVIEW_COMMIT", "value": spec.commit},
                        {"name": "PUBLIC_URL", "value": f"https://{host}"},
                    ],
                    "readinessProbe": {"tcpSocket": {"port": "http"}},
                    "resources": common.container_resources("100m", "256Mi"),
                    "securityContext": common.restricted_security(),
                }]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(spec.app),
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**meta(spec.app),
                     "annotations": {**annotations,
                                     "cert-manager.io/cluster-issuer": settings.cluster_issuer}},
        "spec": {
            "ingressClassName": settings.ingress_class,
            "tls": [{"hosts": [host], "secretName": f"{spec.app}-tls"}],
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": spec.app, "port": {"name": "http"}}},
            }]}}],
        },
    }
    files = {
        "namespace.yaml": yamlio.dump_documents([namespace]),
        "app.yaml": yamlio.dump_documents([deployment, service, ingress]),
    }
    files[common.KUSTOMIZATION] = common.kustomization(list(files))
    input_hash = common.object_input_hash(preview, settings)
    files[common.SOURCE_FILE] = common.source_record(preview, input_hash)
    return common.RenderedDir(key.directory, files, input_hash)
