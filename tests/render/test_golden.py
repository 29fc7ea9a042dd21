"""Golden files: every renderer's bytes, compared exactly with files kept under golden/.

After an intended change to a renderer, regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_golden.py

(and bump ``RENDER_VERSION`` in reconciler/core/render/common.py when the output changed for
the same input, so that existing config repos are re-rendered).
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from reconciler.core.render import common
from tests.render import samples

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_golden.py"

CASES = [(s, c) for s in samples.SETTINGS for c in samples.CASES]


def read_tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by its relative POSIX path (hidden files included)."""
    if not directory.is_dir():
        return {}
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def write_tree(directory: Path, files: dict[str, bytes]) -> None:
    """Replace ``directory`` with exactly ``files``."""
    shutil.rmtree(directory, ignore_errors=True)
    for rel, data in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def describe_difference(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    """A readable account of how two file trees differ."""
    lines: list[str] = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            lines.append(f"missing from rendering: {rel}")
        elif rel not in expected:
            lines.append(f"not in golden files: {rel}")
        elif expected[rel] != actual[rel]:
            lines.extend(difflib.unified_diff(
                expected[rel].decode(errors="replace").splitlines(),
                actual[rel].decode(errors="replace").splitlines(),
                f"golden/{rel}", f"rendered/{rel}", lineterm=""))
    return "\n".join(lines)


def rendered_files(settings_name: str, case: str) -> tuple[common.RenderedDir, dict[str, bytes]]:
    """Render one golden case: the RenderedDir and its files as a plain dict."""
    rendered = samples.CASES[case](samples.SETTINGS[settings_name])
    return rendered, dict(rendered.files)


@pytest.mark.parametrize(("settings_name", "case"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
def test_rendering_matches_golden_files(settings_name, case):
    """Each renderer writes byte for byte the files kept in golden/<settings>/<case>/."""
    _, actual = rendered_files(settings_name, case)
    directory = GOLDEN / settings_name / case
    if UPDATE:
        write_tree(directory, actual)
    expected = read_tree(directory)
    assert expected, f"no golden files in {directory}; run {REGENERATE}"
    assert actual == expected, (
        f"rendering differs from {directory.relative_to(GOLDEN.parents[2])}; if intended, "
        f"run {REGENERATE} and review the diff\n{describe_difference(expected, actual)}")


def test_no_golden_directory_is_left_over():
    """Every directory under golden/ belongs to a current case, so none goes stale unnoticed."""
    present = {f"{p.parent.name}/{p.name}" for p in GOLDEN.glob("*/*") if p.is_dir()}
    expected = {f"{s}/{c}" for s, c in CASES}
    assert present == expected, f"delete the stale golden directories {sorted(present - expected)}"


@pytest.mark.parametrize("settings_name", list(samples.SETTINGS))
def test_golden_cases_cover_what_the_issue_asks_for(settings_name):
    """The golden cases really differ where they should: features on or off, own host or
    not, an empty pool or one listing three databases."""
    files = {case: rendered_files(settings_name, case)[1] for case in samples.CASES}
    assert {"database.yaml", "scheduler.yaml", "webhooks.yaml"} <= set(files["customer-all-features"])
    assert not {"database.yaml", "scheduler.yaml", "webhooks.yaml"} & set(files["customer-no-features"])
    assert b"cart-fix.review.example.net" in files["preview-own-host"]["app.yaml"]
    assert b"preview-shop-feat-login." in files["preview-default-host"]["app.yaml"]
    assert files["pool-empty"]["pgbouncer.ini"].count(b" = host=") == 0
    assert files["pool-three"]["pgbouncer.ini"].count(b" = host=") == 3


def test_settings_variants_render_differently():
    """The non-default Settings change the rendered bytes of every case (domain, storage
    class and namespace patterns all reach the output)."""
    for case in samples.CASES:
        default = rendered_files("default", case)[1]
        custom = rendered_files("custom", case)[1]
        assert default != custom, case
    custom_db = rendered_files("custom", "customer-all-features")[1]["database.yaml"]
    assert b"storageClassName: fast-ssd" in custom_db
    assert b"namespace: tenant-full-tenant" in custom_db
    assert b"preview-shop-feat-login.apps.corp.test" in rendered_files(
        "custom", "preview-default-host")[1]["app.yaml"]
