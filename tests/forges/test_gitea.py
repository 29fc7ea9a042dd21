"""Gitea-only behaviour: label IDs (looked up, created when missing) and its list pagination."""

from __future__ import annotations

from reconciler.ports import forge
from tests.forges.conftest import ForgeEnv

SPEC = forge.PullRequestSpec(head_branch="reconciler/customer/acme", base_branch="main",
                             title="t", body="b", labels=("reconciler", "customer"))


def test_missing_labels_are_created_and_sent_as_ids(gitea_env: ForgeEnv) -> None:
    """Labels the repository lacks are created, then passed to the create call by ID."""
    fake = gitea_env.fake
    known = fake.store.ensure_label("reconciler")
    gitea_env.driver().open_pull_request(SPEC)
    [created_label] = fake.calls("POST", "/labels")
    assert created_label.body == {"name": "customer", "color": "#ededed"}
    [create] = [r for r in fake.calls("POST") if r.path.endswith("/pulls")]
    assert create.body["labels"] == [known, fake.store.labels["customer"]]
    assert sorted(fake.pulls()[0].labels) == ["customer", "reconciler"]


def test_existing_labels_are_found_across_pages(gitea_env: ForgeEnv) -> None:
    """A label on the second page of the repository's labels is reused, not created again."""
    fake = gitea_env.fake
    for i in range(60):
        fake.store.ensure_label(f"area-{i:02}")
    fake.store.ensure_label("reconciler")
    fake.store.ensure_label("customer")
    gitea_env.driver().open_pull_request(SPEC)
    assert [r.method for r in fake.calls(contains="/labels")] == ["GET", "GET"]
    assert sorted(fake.pulls()[0].labels) == ["customer", "reconciler"]


def test_list_asks_for_open_pulls_of_the_base_branch(gitea_env: ForgeEnv) -> None:
    """The search filters by state and ``base_branch`` and pages 50 at a time."""
    gitea_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    [listing] = gitea_env.fake.requests
    assert listing.path == "/api/v1/repos/acme/config/pulls"
    assert listing.query == {"state": ["open"], "base_branch": ["main"], "limit": ["50"],
                             "page": ["1"]}


def test_conflict_names_the_existing_pull_request(gitea_env: ForgeEnv) -> None:
    """The 409's ``issue_id`` is the existing pull request's number, fetched directly."""
    existing = gitea_env.fake.seed_pull(SPEC.head_branch, "main", title="old")
    gitea_env.fake.fail(200, body=[], method="GET", path_contains="/pulls")
    pull = gitea_env.driver().open_pull_request(SPEC)
    assert pull.number == existing.number and pull.title == "t"
    assert f"/api/v1/repos/acme/config/pulls/{existing.number}" in [
        r.path for r in gitea_env.fake.calls("GET")]


def test_links_built_from_another_root_url_keep_the_token_home(gitea_env: ForgeEnv) -> None:
    """Gitea builds ``Link`` from its ROOT_URL; a foreign origin's page number is reused here."""
    fake = gitea_env.fake
    target = fake.seed_pull(SPEC.head_branch, "main")
    for i in range(60):
        fake.seed_pull(f"other-{i}", "main")
    fake.link_header = lambda request, page, last, **kw: (  # type: ignore[method-assign]
        f'<https://git.example.invalid{request.path}?limit=50&page={page + 1}&state=open>; '
        f'rel="next"' if page < last else "")
    found = gitea_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    assert found is not None and found.number == target.number
    assert [r.query["page"] for r in fake.requests] == [["1"], ["2"]]
    assert all(r.query["base_branch"] == ["main"] for r in fake.requests)
