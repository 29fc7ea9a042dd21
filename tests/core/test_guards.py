"""The guards: what is never committed because the cluster rejects it or it destroys data.

Pure functions over objects and settings; each refusal is one line naming the object, the
reason and the numbers.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core import guards
from reconciler.core.models import Customer, Preview, spec_data
from reconciler.core.outcomes import Reason
from reconciler.core.settings import Settings

SETTINGS = Settings()


def customer(name: str = "acme", annotations: dict[str, str] | None = None,
             **features: dict[str, Any]) -> Customer:
    """A Customer with the given features (and quota, when passed as ``quota=``)."""
    quota = features.pop("quota", None)
    spec: dict[str, Any] = {"features": features}
    if quota is not None:
        spec["quota"] = quota
    return Customer.model_validate({"metadata": {"name": name, "annotations": annotations or {}},
                                    "spec": spec})


def preview(name: str = "shop-feat-x", app: str = "shop", host: str | None = None,
            commit: str = "4f1c2d3e4b5a69788796a5b4c3d2e1f0a9b8c7d6") -> Preview:
    """A Preview of ``app`` at ``commit``."""
    spec: dict[str, Any] = {"app": app, "branch": "feat/x", "commit": commit,
                            "image": f"registry.example.com/{app}:1"}
    if host is not None:
        spec["host"] = host
    return Preview.model_validate({"metadata": {"name": name}, "spec": spec})


def db(storage: str = "20Gi", version: str = "16") -> dict[str, Any]:
    """An enabled database feature."""
    return {"enabled": True, "storage": storage, "version": version}


def assert_one_line(refusal: guards.GuardRefusal | None, reason: Reason) -> str:
    """The refusal's message, after checking its reason and that it is one line."""
    assert refusal is not None
    assert refusal.reason == reason, refusal.message
    assert "\n" not in refusal.message
    return refusal.message


# -- quantities and the quota ---------------------------------------------------------------


def test_workloads_over_the_quota_are_refused_with_the_numbers():
    """60 workers and 20 webhook replicas need 8.25 CPU and 81 pods: over a 4 CPU / 50 pod
    quota, so the Customer is refused, and the line says both sides of the sum."""
    big = customer(database=db(), scheduler={"enabled": True, "workers": 60},
                   webhooks={"enabled": True, "replicas": 20})
    message = assert_one_line(guards.refuse_object(big, SETTINGS), Reason.QUOTA_EXCEEDED)
    assert message.startswith("customer/acme: ")
    assert "8.25 CPU" in message and "81 pods" in message
    assert "4 CPU" in message and "50 pods" in message
    assert "scheduler 60x100m" in message


def test_workloads_within_a_raised_quota_pass():
    """The same workloads pass once the quota covers them."""
    big = customer(database=db(), scheduler={"enabled": True, "workers": 60},
                   webhooks={"enabled": True, "replicas": 20},
                   quota={"cpu": "9", "memory": "32Gi", "pods": 81})
    assert guards.refuse_object(big, SETTINGS) is None


def test_storage_above_the_configured_maximum_is_refused():
    """Storage over max_database_storage (default 1Ti) is refused naming the setting."""
    message = assert_one_line(guards.refuse_object(customer(database=db("2Ti")), SETTINGS),
                              Reason.QUANTITY_INVALID)
    assert "1Ti" in message and "max_database_storage" in message
    assert guards.refuse_object(customer(database=db("2Ti")),
                                Settings(max_database_storage="4Ti")) is None


def test_storage_below_one_gi_is_refused():
    """A positive size under 1Gi (the pattern lets 0.5Gi through) is refused by the guard."""
    message = assert_one_line(guards.refuse_object(customer(database=db("0.5Gi")), SETTINGS),
                              Reason.QUANTITY_INVALID)
    assert "1Gi" in message


def test_a_rendered_zero_quota_is_refused_even_when_the_model_let_it_through():
    """The quota check reads the rendered ResourceQuota, so a zero that slipped past the
    schema (an older model, another renderer) is still refused."""
    obj = customer()
    sneaky = obj.model_copy(update={"spec": obj.spec.model_copy(update={
        "quota": obj.spec.quota.model_copy(update={"cpu": "0"})})})
    message = assert_one_line(guards.refuse_object(sneaky, SETTINGS), Reason.QUANTITY_INVALID)
    assert "requests.cpu" in message


# -- names ----------------------------------------------------------------------------------


def test_a_service_name_starting_with_a_digit_is_refused_on_the_rendering():
    """A Preview of app ``1billing`` would render a Service the API server rejects
    (DNS-1035); the guard refuses it from the rendered manifests."""
    ok = preview()
    bad = ok.model_copy(update={"spec": ok.spec.model_copy(update={"app": "1billing"})})
    message = assert_one_line(guards.refuse_object(bad, SETTINGS), Reason.INVALID_NAME)
    assert "Service '1billing'" in message and "DNS-1035" in message


def test_a_default_host_label_longer_than_63_is_refused():
    """A long Preview name makes ``preview-<name>`` longer than a DNS label may be."""
    settings = Settings(preview_namespace_pattern="pr-{name}")  # the namespace still fits
    message = assert_one_line(guards.refuse_object(preview(name="p" * 58), settings),
                              Reason.INVALID_NAME)
    assert f"host 'preview-{'p' * 58}.example.com'" in message


def test_the_examples_and_defaults_pass_every_guard():
    """Nothing the project ships as an example is refused."""
    from tests.render import samples

    for obj in samples.example_objects():
        assert guards.refuse_object(obj, SETTINGS) is None, obj.key
    assert guards.refuse_fleet(samples.example_objects(), SETTINGS) == {}


# -- preview hosts --------------------------------------------------------------------------


def test_a_preview_host_outside_the_patterns_is_refused():
    """spec.host www.example.com matches no preview-*.<domain> pattern: refused."""
    message = assert_one_line(guards.refuse_object(preview(host="www.example.com"), SETTINGS),
                              Reason.HOST_NOT_ALLOWED)
    assert "preview-*.example.com" in message and "preview_host_patterns" in message


def test_configured_host_patterns_allow_other_hosts():
    """With ``*.review.example.net`` configured, such a host passes; ``*`` is one label."""
    settings = Settings(preview_host_patterns=("*.review.example.net", "preview-*.{domain}"))
    assert guards.refuse_object(preview(host="cart.review.example.net"), settings) is None
    assert guards.refuse_object(preview(host="a.b.review.example.net"), settings) is not None
    assert guards.refuse_object(preview(), settings) is None


def test_a_preview_taking_a_tenant_webhook_host_is_refused_and_the_tenant_is_not():
    """A Preview may not take over ``acme.hooks.<domain>``; the tenant keeps it."""
    tenant = customer(webhooks={"enabled": True})
    thief = preview(host="acme.hooks.example.com")
    refused = guards.refuse_fleet([tenant, thief], SETTINGS)
    assert set(refused) == {thief.key}
    message = assert_one_line(refused[thief.key], Reason.HOST_CONFLICT)
    assert "customer/acme" in message


def test_previews_sharing_a_host_are_all_refused():
    """Two Previews with one host: neither is written (the one already rendered stays as it
    is), so a newcomer cannot take a host over."""
    a, b = preview("a", host="preview-x.example.com"), preview("b", host="preview-x.example.com")
    c = preview("c")
    assert set(guards.refuse_fleet([a, b, c], SETTINGS)) == {a.key, b.key}


def test_two_apps_previewed_at_one_commit_get_distinct_default_hosts():
    """Default hosts follow the Preview's unique name, not only the commit."""
    billing, shop = preview("billing-fix", app="billing"), preview("shop-fix", app="shop")
    assert guards.host_claims(billing, SETTINGS) != guards.host_claims(shop, SETTINGS)
    assert guards.refuse_fleet([billing, shop], SETTINGS) == {}


# -- transitions ----------------------------------------------------------------------------


def test_a_storage_shrink_is_refused_and_growth_is_not():
    """20Gi -> 10Gi is refused with both sizes; 20Gi -> 30Gi passes."""
    before = spec_data(customer(database=db("20Gi")))
    message = assert_one_line(
        guards.refuse_transition(customer(database=db("10Gi")), before, SETTINGS),
        Reason.STORAGE_SHRINK)
    assert "20Gi -> 10Gi" in message
    assert guards.refuse_transition(customer(database=db("30Gi")), before, SETTINGS) is None
    # different units compare by value: 1Ti is more than 1000Gi
    assert guards.refuse_transition(customer(database=db("1000Gi")),
                                    spec_data(customer(database=db("1Ti"))), SETTINGS) is not None


def test_a_database_version_downgrade_is_refused():
    """16 -> 15 is refused: PostgreSQL cannot read a newer data directory."""
    before = spec_data(customer(database=db(version="16")))
    assert_one_line(guards.refuse_transition(customer(database=db(version="15")), before,
                                             SETTINGS), Reason.VERSION_DOWNGRADE)


def test_an_upgrade_needs_the_exact_confirmation_annotation():
    """16 -> 17 is refused until the object is annotated with "16->17" (a different
    transition's confirmation does not count)."""
    before = spec_data(customer(database=db(version="16")))
    message = assert_one_line(
        guards.refuse_transition(customer(database=db(version="17")), before, SETTINGS),
        Reason.UPGRADE_NOT_CONFIRMED)
    assert guards.CONFIRM_UPGRADE_ANNOTATION in message and '"16->17"' in message
    wrong = customer(annotations={guards.CONFIRM_UPGRADE_ANNOTATION: "15->17"},
                     database=db(version="17"))
    assert guards.refuse_transition(wrong, before, SETTINGS) is not None
    confirmed = customer(annotations={guards.CONFIRM_UPGRADE_ANNOTATION: "16->17"},
                         database=db(version="17"))
    assert guards.refuse_transition(confirmed, before, SETTINGS) is None


@pytest.mark.parametrize("previous", [None, {}, {"features": {"database": {"enabled": False,
                                                                              "storage": "99Gi",
                                                                              "version": "17"}}}])
def test_a_new_database_has_nothing_to_protect(previous):
    """Without a running database before, any size and version may be chosen."""
    assert guards.refuse_transition(customer(database=db("1Gi", "14")), previous,
                                    SETTINGS) is None
