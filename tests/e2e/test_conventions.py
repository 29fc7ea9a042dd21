"""The command line behaves like kubectl and git: one line per user mistake and no traceback,
exit 0/1/2, unknown objects are errors, JSON means JSON, each command shows its own options,
a large import is summed up, watch mode says what it watches, and start-up stays light."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler import cli
from tests.e2e.test_cli import (  # noqa: F401 - pytest finds fixtures by name
    EXAMPLES,
    clean_env,
    examples_run,
    reconciler,
    reconciler_command,
)

WRITE_OPTIONS = ("--sign", "--mode", "--forge", "--push-window")


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """The single stderr line of a refused command (fails on a traceback or more lines)."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "code", "words"), [
    (["run", "--source", "/typo", "--repo", "{tmp}/r.git", "--once"], 2, ["/typo"]),
    (["crds", "--out", "/proc/nope"], 2, ["/proc/nope"]),
    (["render", "/typo", "--out", "{tmp}/out"], 2, ["/typo"]),
    (["status", "--source", "/typo", "--repo", "{tmp}/r.git"], 2, ["/typo"]),
    (["run", "--source", "examples", "--repo", "{tmp}/r.git", "--push-window", "-5"], 2,
     ["--push-window", "-5"]),
    (["run", "--source", "examples"], 2, ["--repo"]),
    (["history", "nonsense", "--repo", "{tmp}/r.git"], 2, ["nonsense"]),
    (["rollback", "customer/acme", "--to", "1", "--repo", "{tmp}/r.git", "--spec", "/nope"], 2,
     ["/nope"]),
    (["bogus"], 2, ["bogus"]),
    (["run", "--sourc", "examples", "--repo", "{tmp}/r.git"], 2, ["--source"]),
    (["--config", "x", "render"], 2, ["'x'"]),
    (["run", "--source", "examples", "--repo", "{tmp}/r.git", "--config", "/nope.yaml"], 2,
     ["/nope.yaml"]),
], ids=["source-typo", "crds-out-unwritable", "render-missing-path", "status-source-typo",
        "negative-push-window", "missing-repo", "bad-object-name", "rollback-spec-typo", "unknown-command",
        "no-abbreviations", "option-in-wrong-place", "missing-config"])
def test_usage_mistakes_are_one_line_and_exit_2(tmp_path, args, code, words):
    """Each mistake on the command line gets exactly one line naming it and exit 2."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    one_error_line(reconciler(*argv, cwd=Path(EXAMPLES).parent), code, *words)
    assert not (tmp_path / "r.git").exists()


def test_unknown_objects_are_errors_and_pool_is_known(examples_run):  # noqa: F811
    """``history``/``diff``/``resync`` of an object nobody has exit 1 with one line; the pool,
    named ``pool/pgbouncer`` in trailers, has a history of reconciler commits."""
    repo = examples_run.repo
    one_error_line(reconciler("history", "customer/doesnotexist", "--repo", repo), 1,
                   "customer/doesnotexist")
    one_error_line(reconciler("diff", "preview/nope", "1", "2", "--repo", repo), 1,
                   "preview/nope")
    one_error_line(reconciler("resync", "customer/nope", "--source", examples_run.source,
                              "--repo", repo), 1, "customer/nope")
    proc = reconciler("history", "pool/pgbouncer", "--repo", repo, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert entries and {e["kind"] for e in entries} == {"reconciler"}
    acme = json.loads(reconciler("history", "customer/acme", "--repo", repo, "-o", "json").stdout)
    assert [type(e["generation"]) for e in acme] == [int]


def test_read_only_commands_show_only_their_own_options():
    """``status``, ``history`` and ``diff`` list no write options; ``run`` does; every option
    of every command has a help text."""
    for command in ("status", "history", "diff"):
        text = reconciler(command, "--help").stdout
        assert not [o for o in WRITE_OPTIONS if o in text], command
    assert all(o in reconciler("run", "--help").stdout for o in WRITE_OPTIONS)
    parser = cli._parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, sub in [("reconciler", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            if action is subparsers:
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_top_level_help_is_for_users():
    """``reconciler --help`` shows examples and the exit codes, no internal docstring."""
    text = reconciler("--help").stdout
    assert "exit status: 0 success, 1 something was refused or failed, 2 usage error" in text
    assert "reconciler run --source examples" in text
    assert "``" not in text and "composition root" not in text


def test_json_log_format_makes_every_line_json(tmp_path):
    """With ``--log-format json`` the result lines, the summary and errors (usage errors too)
    are JSON objects."""
    proc = reconciler("--log-format", "json", "run", "--source", EXAMPLES, "--repo",
                      tmp_path / "r.git", "--once")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (proc.stdout + proc.stderr).splitlines() if line]
    assert {r["object"] for r in records if r.get("result") == "committed"} >= {
        "customer/acme", "preview/campaigns-feat-xyz"}
    assert next(r for r in records if r.get("summary"))["commits"] == 5
    assert all("time" in r for r in records)
    for mistake in (["run", "--source", "x"], ["history", "customer/nope", "--repo",
                                               str(tmp_path / "r.git")]):
        proc = reconciler("--log-format", "json", *mistake)
        line = one_error_line(proc, 2 if mistake[0] == "run" else 1)
        assert json.loads(line)["level"] == "error"


def fleet(directory: Path, count: int) -> Path:
    """``count`` Customers in one file each."""
    directory.mkdir()
    for i in range(count):
        (directory / f"c{i}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "reconciler.ahoi.dev/v1alpha1", "kind": "Customer",
            "metadata": {"name": f"tenant-{i}"}, "spec": {"displayName": f"Tenant {i}"}}))
    return directory


def test_a_large_import_prints_a_summary_not_a_line_per_object(tmp_path):
    """Above import_batch, ``run --once`` prints one import line and one summary line;
    ``-v`` lists every object."""
    source = fleet(tmp_path / "fleet", 12)
    env = {"RECONCILER_IMPORT_BATCH": "3"}
    proc = reconciler("run", "--source", source, "--repo", tmp_path / "r.git", "--once", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("imported 12 objects in commit ")
    assert lines[-1].startswith("1 commits")  # the import (no database: no pool)
    assert len(lines) <= 3, lines
    verbose = reconciler("-v", "run", "--source", source, "--repo", tmp_path / "v.git", "--once",
                         env=env)
    assert sum("Imported" in line for line in verbose.stdout.splitlines()) == 12


def test_watch_mode_announces_what_it_watches(tmp_path):
    """``run`` without ``--once`` says which sources, how often and which repo, first thing."""
    repo = tmp_path / "r.git"
    process = subprocess.Popen([*reconciler_command(), "run", "--source", str(EXAMPLES),
                                "--repo", str(repo)], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
    finally:
        process.terminate()
        try:
            rest = process.communicate(timeout=20)[1]  # SIGTERM ends it, even while starting
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert first.startswith(f"watching {EXAMPLES}"), first + rest
    assert str(repo) in first and "every 2 s" in first


@pytest.mark.parametrize(("argv", "also_absent"), [
    (["--help"], ["pydantic", "yaml"]),
    (["render", str(EXAMPLES), "--out", "{tmp}"], []),
    (["crds", "--out", "{tmp}"], []),
], ids=["help", "render", "crds"])
def test_light_commands_import_no_heavy_library(tmp_path, argv, also_absent):
    """``--help``, ``render`` and ``crds`` start without pygit2, kubernetes,
    prometheus-client, APScheduler, requests or rich (``--help`` even without pydantic)."""
    args = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    heavy = {"pygit2", "kubernetes", "prometheus_client", "apscheduler", "requests", "rich",
             *also_absent}
    code = (f"import sys\nfrom reconciler import cli\ntry:\n    cli.main({args!r})\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(set({sorted(heavy)!r}) & set(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env=clean_env())
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_log_line_carries_a_timestamp(log_format):
    """Log lines as the CLI configures them start with (text) or hold (JSON) an ISO time."""
    code = ("import logging\nfrom reconciler import app\n"
            f"app.configure_logging(verbose=False, log_format={log_format!r})\n"
            "logging.getLogger('reconciler.test').warning('push failed: %s', 'rejected',"
            " extra={'object': 'customer/acme'})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env=clean_env())
    (line,) = proc.stderr.splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}")
    if log_format == "json":
        record = json.loads(line)
        assert stamp.match(record["time"]) and record["object"] == "customer/acme"
    else:
        assert stamp.match(line), line
        assert line.endswith("WARNING reconciler.test: push failed: rejected [customer/acme]")


def test_a_long_pass_shows_progress_on_a_terminal_and_not_in_a_pipe(tmp_path):
    """With stderr on a terminal, a pass over 60 objects shows what it is doing (rich: reading,
    then reconciling 60 objects, with the time elapsed), and stdout still ends in the one
    summary line; with stderr piped nothing of that is drawn."""
    source = fleet(tmp_path / "fleet", 60)
    primary, secondary = os.openpty()
    process = subprocess.Popen([*reconciler_command(), "run", "--source", str(source), "--repo",
                                str(tmp_path / "r.git"), "--once"], stdout=subprocess.PIPE,
                               stderr=secondary, text=True, env=clean_env())
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = process.communicate(timeout=120)
    os.close(primary)
    assert process.returncode == 0, drawn.decode(errors="replace")
    assert b"reading " in drawn and b"reconciling 60 objects" in drawn
    assert out.splitlines()[-1] == "60 commits, 0 objects unchanged, 0 refused or failed"
    piped = reconciler("run", "--source", source, "--repo", tmp_path / "p.git", "--once")
    assert "reconciling" not in piped.stderr and piped.stderr == ""
