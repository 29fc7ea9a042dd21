"""Render a Preview into ``previews/<name>/``: its namespace, app, service and TLS ingress.

Pure. The host is ``preview-<name>.<domain>`` unless ``spec.host`` is set: unique by
construction (object names are), so two apps or branches previewed at one commit never
share it, and stable while the Preview moves from commit to commit. Like a tenant, a
preview namespace enforces the restricted Pod Security Standard and gets a NetworkPolicy
(only its own pods and the ingress controller get in) and a quota (setting
``preview_quota``); ``spec.runAsUser`` runs images that need a specific UID.
"""

from __future__ import annotations

from typing import Any

from reconciler.core import yamlio
from reconciler.core.models import Preview, spec_data
from reconciler.core.render import common
from reconciler.core.settings import Settings

#: Pod Security Standards on every preview namespace: enforced, and reported the same way.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


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
    labels = common.labels_for(key, "preview", spec.app)
    # Deployed selectors are immutable: this one has been the same since the first release.
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

    namespace_meta = meta(ns, namespaced=False)
    namespace_meta["labels"].update(POD_SECURITY)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": namespace_meta}
    pod_security: dict[str, Any] = {"runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    if spec.runAsUser is not None:
        # For images whose USER is root or a name, which runAsNonRoot alone never starts.
        pod_security.update(runAsUser=spec.runAsUser, runAsGroup=spec.runAsUser)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(spec.app),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, **selector,
                                        "reconciler.ahoi.dev/commit": spec.commit[:7]}},
                "spec": {"securityContext": pod_security, "containers": [{
                    "name": spec.app,
                    "image": spec.image,
                    "ports": [{"name": "http", "containerPort": spec.port}],
                    "env": [
                        {"name": "PREVIEW_BRANCH", "value": spec.branch},
                        {"name": "PREVIEW_COMMIT", "value": spec.commit},
                        {"name": "PUBLIC_URL", "value": f"https://{host}"},
                    ],
                    **common.probes({"tcpSocket": {"port": "http"}}, startup_seconds=120),
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
    network_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("preview-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": settings.ingress_namespace}}},
            ]}],
        },
    }
    quota = settings.preview_quota
    resource_quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("preview-quota"),
        "spec": {"hard": {"requests.cpu": quota.cpu, "requests.memory": quota.memory,
                          "pods": str(quota.pods)}},
    }
    files = {
        "namespace.yaml": yamlio.dump_documents([namespace]),
        "networkpolicy.yaml": yamlio.dump_documents([network_policy]),
        "resourcequota.yaml": yamlio.dump_documents([resource_quota]),
        "app.yaml": yamlio.dump_documents([deployment, service, ingress]),
    }
    files[common.KUSTOMIZATION] = common.kustomization(list(files))
    raw_spec = spec_data(preview)  # once: pydantic's dump is a good part of rendering
    input_hash = common.object_input_hash(preview, settings, raw_spec)
    files[common.SOURCE_FILE] = common.source_record(preview, input_hash, raw_spec)
    return common.RenderedDir(key.directory, files, input_hash)
