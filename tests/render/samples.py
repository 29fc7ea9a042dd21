"""Sample resources and settings shared by the golden-file and consumer tests.

Owns: the objects rendered for golden files (a Customer with every feature, one with none,
a Preview with and without ``spec.host``, the pool with 0 and 3 entries), the two Settings
they are rendered under, and loading the bundled examples. No tests here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.core import sources
from reconciler.core.models import Customer, Preview, Resource
from reconciler.core.render import common, customers, pool, previews
from reconciler.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

DEFAULT = Settings()
CUSTOM = Settings(
    domain="apps.corp.test",
    storage_class="fast-ssd",
    namespace_pattern="tenant-{name}",
    preview_namespace_pattern="pr-{name}",
    platform_namespace="db-pool",
)
SETTINGS = {"default": DEFAULT, "custom": CUSTOM}

FULL_CUSTOMER = Customer.model_validate({
    "apiVersion": "reconciler.ahoi.dev/v1alpha1",
    "kind": "Customer",
    "metadata": {"name": "full-tenant", "uid": "5b0c1a52-8a4e-4d43-9a0b-6f1f0d0c1e01",
                 "generation": 7},
    "spec": {
        "displayName": "Full Tenant AG",
        "features": {
            "database": {"enabled": True, "storage": "256Gi", "version": "15"},
            "scheduler": {"enabled": True, "workers": 4},
            "webhooks": {"enabled": True, "replicas": 3},
        },
        "quota": {"cpu": "16", "memory": "64Gi", "pods": 200},
    },
})
BARE_CUSTOMER = Customer.model_validate({
    "apiVersion": "reconciler.ahoi.dev/v1alpha1",
    "kind": "Customer",
    "metadata": {"name": "bare-tenant"},
})
PREVIEW_DEFAULT_HOST = Preview.model_validate({
    "apiVersion": "reconciler.ahoi.dev/v1alpha1",
    "kind": "Preview",
    "metadata": {"name": "shop-feat-login", "generation": 2},
    "spec": {
        "app": "shop",
        "branch": "feat/login",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "image": "registry.example.com/shop:0123456",
        "ttl": "72h",
    },
})
PREVIEW_OWN_HOST = Preview.model_validate({
    "apiVersion": "reconciler.ahoi.dev/v1alpha1",
    "kind": "Preview",
    "metadata": {"name": "shop-fix-cart"},
    "spec": {
        "app": "shop",
        "branch": "fix/cart",
        "commit": "fedcba9876543210fedcba9876543210fedcba98",
        "image": "registry.example.com/shop:fedcba9",
        "host": "cart-fix.review.example.net",
        "port": 3000,
        "runAsUser": 1000,
    },
})


def customer(name: str, *, database: bool, storage: str = "10Gi") -> Customer:
    """A Customer that has a database (of ``storage``) or not."""
    return Customer.model_validate({
        "metadata": {"name": name},
        "spec": {"features": {"database": {"enabled": database, "storage": storage}}},
    })


#: Given in no particular order; bravo has no database, so the pool lists three.
POOL_CUSTOMERS = (
    customer("delta", database=True),
    customer("alpha", database=True, storage="1Gi"),
    customer("bravo", database=False),
    customer("charlie", database=True),
)


def render_pool(customers_: tuple[Customer, ...], settings: Settings) -> common.RenderedDir:
    """The pool directory for ``customers_`` (those without a database contribute nothing)."""
    entries = [e for c in customers_ if (e := pool.pool_entry(c, settings)) is not None]
    return pool.render_pool(entries, settings)


def render_object(obj: Resource, settings: Settings) -> common.RenderedDir:
    """Render a Customer or a Preview."""
    if isinstance(obj, Customer):
        return customers.render_customer(obj, settings)
    return previews.render_preview(obj, settings)


#: Golden case name -> how to render it.
CASES: dict[str, Callable[[Settings], common.RenderedDir]] = {
    "customer-all-features": lambda s: customers.render_customer(FULL_CUSTOMER, s),
    "customer-no-features": lambda s: customers.render_customer(BARE_CUSTOMER, s),
    "preview-default-host": lambda s: previews.render_preview(PREVIEW_DEFAULT_HOST, s),
    "preview-own-host": lambda s: previews.render_preview(PREVIEW_OWN_HOST, s),
    "pool-empty": lambda s: render_pool((), s),
    "pool-three": lambda s: render_pool(POOL_CUSTOMERS, s),
}


def example_objects() -> list[Resource]:
    """Every object under examples/, parsed the way the reconciler parses them."""
    results = [sources.parse_text(str(p.relative_to(ROOT)), p.read_bytes())
               for p in sorted(EXAMPLES.rglob("*.yaml"))]
    parsed = sources.combine(results)
    assert not parsed.refusals, [str(r) for r in parsed.refusals]
    return list(parsed.objects)
