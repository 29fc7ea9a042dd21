"""Settings-change commit messages: the subject says what changed and how many objects, the
trailers name every object and setting; a missing or hand-edited record still gives a
truthful subject."""

from __future__ import annotations

from reconciler.core import messages, rerender
from reconciler.core.models import ObjectKey
from reconciler.core.settings import Settings

KEYS = [ObjectKey("Customer", f"t{i}") for i in range(3000)]


def record(settings: Settings, version: str = "1.0") -> dict[str, object] | None:
    """The settings record as the repository would hold it, read back."""
    return rerender.parse_settings_record(
        rerender.settings_record(settings.render_settings(), version))


def test_an_image_tag_bump_reads_as_old_and_new_tag() -> None:
    """Only the scheduler tag changed: ``rerender: scheduler image 1.4.2 -> 1.4.3 (3,000
    tenants)``, with a Reconciler-Setting trailer and one Reconciler-Object per tenant."""
    new = Settings(images={"scheduler": "ghcr.io/ahoi/scheduler:1.4.3"})
    changes = rerender.setting_changes(record(Settings()), new.render_settings(), "1.0")
    message = rerender.rerender_message(KEYS, changes, [], [], "1.0")
    assert message.splitlines()[0] == "rerender: scheduler image 1.4.2 -> 1.4.3 (3,000 tenants)"
    assert messages.trailer_values(message, rerender.TRAILER_SETTING) == ["images.scheduler"]
    assert len(messages.object_keys(message)) == 3000


def test_a_version_and_domain_change_are_both_named() -> None:
    """A new reconciler version and a new domain both appear in the subject."""
    changes = rerender.setting_changes(record(Settings(), "1.0"),
                                       Settings(domain="b.example").render_settings(), "1.1")
    subject = rerender.rerender_message(KEYS[:2], changes, [], [], "1.1").splitlines()[0]
    assert subject == "rerender: domain example.com -> b.example; reconciler 1.0 -> 1.1 (2 tenants)"


def test_an_unreadable_record_gives_the_generic_subject() -> None:
    """A record edited into garbage is not trusted: the subject says settings or version
    changed, without inventing a difference."""
    previous = rerender.parse_settings_record(b"{not json")
    assert previous is None
    changes = rerender.setting_changes(previous, Settings().render_settings(), "1.0")
    subject = rerender.rerender_message(KEYS[:1], changes, [], [], "1.0").splitlines()[0]
    assert subject == "rerender: settings or reconciler version changed (1 tenant)"


def test_many_changes_keep_the_subject_short_and_the_count() -> None:
    """Many changed settings shorten the subject to a count that still ends with how many
    objects; the body lists every change."""
    new = Settings(domain="x.example", platform_namespace="plat", ingress_class="traefik",
                   cluster_issuer="other", images={"webhooks": "registry.example/hooks:9"})
    changes = rerender.setting_changes(record(Settings()), new.render_settings(), "1.0")
    message = rerender.rerender_message(KEYS, changes, [], [], "1.0")
    subject = message.splitlines()[0]
    assert len(subject) <= messages.SUBJECT_MAX
    assert subject == "rerender: 5 settings changed (3,000 tenants)"
    assert "- images.webhooks: ghcr.io/ahoi/webhooks:1.4.2 -> registry.example/hooks:9" in message
