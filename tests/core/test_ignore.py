"""``.reconcilerignore`` patterns: gitignore-like matching of paths under --source."""

from __future__ import annotations

import pytest

from reconciler.core import ignore


@pytest.mark.parametrize(("patterns", "path", "is_dir", "ignored"), [
    ("", "kustomization.yaml", False, True),
    ("", "tenants/kustomization.yaml", False, True),
    ("", "renovate.json", False, True),
    ("", "acme.yaml", False, False),
    ("!kustomization.yaml", "kustomization.yaml", False, False),
    ("*.json", "a/b/c.json", False, True),
    ("/top.yaml", "top.yaml", False, True),
    ("/top.yaml", "sub/top.yaml", False, False),
    ("docs/", "docs", True, True),
    ("docs/", "docs", False, False),
    ("a/*.yaml", "a/x.yaml", False, True),
    ("a/*.yaml", "a/b/x.yaml", False, False),
    ("a/**/x.yaml", "a/b/c/x.yaml", False, True),
    ("**/tmp", "deep/er/tmp", True, True),
    ("v?.yaml", "v1.yaml", False, True),
    ("v[0-9].yaml", "vx.yaml", False, False),
    ("# comment\n\n*.yaml\n!keep.yaml", "keep.yaml", False, False),
], ids=lambda v: repr(v) if isinstance(v, str) else str(v))
def test_patterns_match_like_gitignore(patterns, path, is_dir, ignored):
    """Each pattern kind matches the paths gitignore would (last match wins)."""
    assert ignore.parse_rules(patterns).ignored(path, is_dir=is_dir) is ignored
