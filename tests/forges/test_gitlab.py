"""GitLab-only behaviour: project ids, comma-separated labels, X-Next-Page, the 409's ``!iid``."""

from __future__ import annotations

import pytest

from reconciler.adapters.forges import gitlab
from reconciler.core import errors
from reconciler.ports import forge
from tests.forges.conftest import ForgeEnv

SPEC = forge.PullRequestSpec(head_branch="reconciler/customer/acme", base_branch="main",
                             title="t", body="b", labels=("reconciler", "customer"))


def test_project_path_is_url_encoded(gitlab_env: ForgeEnv) -> None:
    """A ``group/project`` path is sent as one URL-encoded ``:id`` segment."""
    gitlab_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    [listing] = gitlab_env.fake.requests
    assert listing.path == "/api/v4/projects/acme%2Fconfig/merge_requests"
    assert listing.query == {"state": ["opened"], "source_branch": [SPEC.head_branch],
                             "target_branch": ["main"], "per_page": ["100"]}


def test_numeric_project_id_works(gitlab_env: ForgeEnv) -> None:
    """A numeric project id is used as is."""
    pull = gitlab_env.driver(repo="42").open_pull_request(SPEC)
    assert pull.state == "open"
    assert all(r.path.startswith("/api/v4/projects/42/") for r in gitlab_env.fake.requests)


def test_labels_are_comma_separated_and_added_not_replaced(gitlab_env: ForgeEnv) -> None:
    """Create sends ``labels`` as one comma-separated string; updates use ``add_labels``."""
    driver = gitlab_env.driver()
    pull = driver.open_pull_request(SPEC)
    assert gitlab_env.fake.calls("POST")[0].body["labels"] == "reconciler,customer"
    driver.update_pull_request(pull.number, SPEC)
    [put] = gitlab_env.fake.calls("PUT")
    assert put.body == {"title": "t", "description": "b", "add_labels": "reconciler,customer"}
    assert "labels" not in put.body


def test_conflict_names_the_existing_merge_request(gitlab_env: ForgeEnv) -> None:
    """The 409's ``!iid`` is fetched directly instead of searching again."""
    existing = gitlab_env.fake.seed_pull(SPEC.head_branch, "main")
    gitlab_env.fake.fail(200, body=[], method="GET", path_contains="/merge_requests")
    pull = gitlab_env.driver().open_pull_request(SPEC)
    assert pull.number == existing.number
    gets = [r.path for r in gitlab_env.fake.calls("GET")]
    assert gets == ["/api/v4/projects/acme%2Fconfig/merge_requests",
                    f"/api/v4/projects/acme%2Fconfig/merge_requests/{existing.number}"]


def test_pagination_by_x_next_page_alone(gitlab_env: ForgeEnv) -> None:
    """Behind a proxy that strips ``Link``, ``X-Next-Page`` still leads to the next page."""
    fake = gitlab_env.fake
    target = fake.seed_pull(SPEC.head_branch, "main")
    for i in range(30):
        fake.seed_pull(f"other-{i}", "main")
    fake.honour_filters, fake.page_size_cap = False, 10
    original = fake.link_header
    fake.link_header = lambda *args, **kwargs: ""  # type: ignore[method-assign]
    try:
        found = gitlab_env.driver().find_open_pull_request(SPEC.head_branch, "main")
    finally:
        fake.link_header = original  # type: ignore[method-assign]
    assert found is not None and found.number == target.number
    assert [r.query.get("page") for r in fake.requests] == [None, ["2"], ["3"], ["4"]]


def test_label_with_a_comma_is_refused() -> None:
    """GitLab cannot express a label name containing a comma in its comma-separated list."""
    with pytest.raises(errors.UserInputError, match="comma"):
        gitlab._comma_separated(("a,b",))


@pytest.mark.parametrize(("raw", "state", "commit"), [
    ({"state": "opened"}, "open", None),
    ({"state": "locked"}, "open", None),
    ({"state": "closed"}, "closed", None),
    ({"state": "merged", "merge_commit_sha": "m", "squash_commit_sha": "s", "sha": "h"}, "merged", "m"),
    ({"state": "merged", "merge_commit_sha": None, "squash_commit_sha": "s", "sha": "h"}, "merged", "s"),
    ({"state": "merged", "merge_commit_sha": None, "squash_commit_sha": None, "sha": "h"}, "merged", "h"),
])
def test_state_and_merge_commit_mapping(raw: dict[str, object], state: str, commit: str | None) -> None:
    """Merge commit, squash commit or (fast-forward) head: whichever landed on the target."""
    pull = gitlab.to_pull_request({"iid": 1, **raw})
    assert (pull.state, pull.merge_commit) == (state, commit)
