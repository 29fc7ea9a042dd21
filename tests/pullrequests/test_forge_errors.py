"""The forge answering badly during ``run --mode pr --once`` (issue 4, section 3): a rejected
token fails the run in plain words without leaking the token; transient errors are retried
and never leave a duplicate pull request behind.
"""

from __future__ import annotations

import pytest

from tests.pullrequests import support
from tests.pullrequests.support import BRANCH, ForgeUnderTest, Remote, Workspace

ACME_BRANCH = "reconciler/customer/acme"
BAD_TOKEN = "ghp-wrong-7d1e5c0a9b3f"
#: where each host's "create a pull request" endpoint lives
CREATE_PATH = {"github": "/pulls", "gitlab": "/merge_requests", "gitea": "/pulls"}


def test_a_rejected_token_fails_the_run_in_one_line_per_object_without_the_token(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """A token the forge answers 401 to: exit non-zero, each failure is one line naming the
    401 and never the token, no traceback, no pull request, main untouched."""
    main_before = remote.head()
    workspace.set_feature("acme", "scheduler", workers=3)
    forge.use_token(BAD_TOKEN)

    done = workspace.run(forge)

    assert done.returncode != 0
    assert BAD_TOKEN not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = done.stderr.splitlines()
    assert any("customer/acme" in line for line in errors), done.stderr
    for line in errors:
        assert line.startswith("failed") and "401" in line and "token was rejected" in line, line
    assert forge.pulls() == []
    assert remote.head() == main_before


def test_a_burst_of_server_errors_and_a_lost_answer_still_open_exactly_one_pull_request(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """The forge creates the PR but its answer is lost, then the retries meet two 503s: the
    next retry finds the existing PR, so there is one open PR, labelled, and the run succeeds."""
    create = CREATE_PATH[forge.kind]
    forge.fake.fail(502, method="POST", path_contains=create, drop_connection=True,
                    after_handling=True)
    forge.fake.fail(503, times=2, method="POST", path_contains=create,
                    headers={"Retry-After": "0"}, body={"message": "Service Unavailable"})
    workspace.set_feature("acme", "scheduler", workers=3)

    support.ok(workspace.run(forge))

    assert len(forge.fake.calls("POST", create)) >= 4  # lost, 503, 503, "already exists"
    [pull] = forge.pulls()
    assert (pull.state, pull.head, pull.base) == ("open", ACME_BRANCH, BRANCH)
    assert set(pull.labels) == {"gitops-reconciler", "customer"}
    assert pull.title == remote.subject(ACME_BRANCH)


@pytest.mark.parametrize("forge", ["github", "gitlab"], indirect=True)
def test_a_rate_limit_answer_is_waited_out_and_the_pull_request_opened(
        workspace: Workspace, remote: Remote, forge: ForgeUnderTest) -> None:
    """The forge's documented rate-limit answer (asking for no wait) on the first calls: the
    run retries and opens the one PR."""
    forge.fake.rate_limited(0, times=2)
    workspace.set_feature("acme", "scheduler", workers=3)

    support.ok(workspace.run(forge))

    assert [(p.state, p.head) for p in forge.pulls()] == [("open", ACME_BRANCH)]
