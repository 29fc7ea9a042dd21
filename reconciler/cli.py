"""The ``reconciler`` command line: parses arguments, calls the composition root, prints.

Intentionally short, and it talks to the composition root (``reconciler.app``) only. Like
kubectl and git: a user's mistake is one line on stderr and never a traceback; exit 0 on
success, 1 when something was refused or failed, 2 when the command line is wrong.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from reconciler import __version__, app
from reconciler.core import errors, names
from reconciler.core.text import one_line as text_line

if TYPE_CHECKING:  # the models (pydantic) load only for commands that print outcomes
    from reconciler.core.outcomes import Outcome

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Render Customer and Preview resources into a Git config repository that Argo CD or Flux
applies: one reviewable commit per change, never a secret, never a force-push.

examples:
  reconciler run --source examples --repo /srv/config.git --once
  reconciler run --source kubernetes --repo ssh://git@git.example.com/platform/config.git
  reconciler status --source examples --repo /srv/config.git
  reconciler history customer/acme --repo /srv/config.git
  reconciler render examples --out /tmp/rendered

exit status: 0 success, 1 something was refused or failed, 2 usage error.
Run 'reconciler COMMAND --help' for the options of one command.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``reconciler run: error: ... (see --help)``, or a
    JSON object when the command line asks for JSON logs."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        text = f"{self.prog}: error: {message} (see '{self.prog} --help')"
        if self.json_errors:
            text = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"),
                               "level": "error", "msg": text})
        print(text, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reconciler`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    json_errors = "--log-format=json" in words or any(
        a == "--log-format" and b == "json" for a, b in itertools.pairwise(words))
    args = _parser(json_errors=json_errors).parse_args(words)
    out = Output(json_lines=args.log_format == "json", verbose=args.verbose)
    # the controller's log is its record of work; local watch mode prints result lines instead
    long_running = args.func is _run and not args.once and \
        [str(s) for s in args.source] == ["kubernetes"]
    app.configure_logging(verbose=args.verbose, log_format=args.log_format,
                          long_running=long_running)
    try:
        code: int = args.func(args, out)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `reconciler history ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (errors.ReconcilerError, OSError) as exc:
        out.error(_one_line(exc))
        return _exit_code(exc)
    return code


def _exit_code(exc: Exception) -> int:
    """2 for a wrong command line or input path, 1 for anything refused or failed (an unknown
    object included, as ``kubectl get`` does)."""
    if isinstance(exc, errors.UserInputError) and not isinstance(exc, errors.NotFoundError):
        return EXIT_USAGE
    return EXIT_REFUSED


def _one_line(exc: Exception) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, errors.ReconcilerError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# -- the parser -----------------------------------------------------------------------------

def _parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="reconciler", description=DESCRIPTION, json_errors=json_errors,
                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"gitops-reconciler {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug details and print every object of a large import")
    parser.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="text (default): timestamped lines; json: one JSON object per "
                             "line, results included")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", title="commands",
                                parser_class=_Parser)

    def command(name: str, func: Callable[..., int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        p.json_errors = json_errors
        p.set_defaults(func=func)
        p.add_argument("--config", type=Path, metavar="FILE", help="settings file (YAML)")
        return p

    _add_writing_commands(command)
    _add_reading_commands(command)
    _add_decision_commands(command)
    _add_offline_commands(command)
    return parser


Command = Callable[[str, Callable[..., int], str], argparse.ArgumentParser]


def _add_writing_commands(command: Command) -> None:
    """Commands that commit: each has the repo options and how commits are made."""
    p = command("run", _run, "reconcile resources into the config repo (watching, or --once)")
    _add_source(p, kubernetes=True)
    _add_cluster(p)
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="take part in Lease leader election (kubernetes source)")
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "gitops-reconciler"),
                   help="namespace of the Lease (default: $POD_NAMESPACE or gitops-reconciler)")
    p.add_argument("--lease-name", default="gitops-reconciler", help="name of the Lease")
    p.add_argument("--identity", metavar="NAME", help="leader election identity (default: host-pid)")
    p.add_argument("--health-port", type=_port, default=8080,
                   help="port of /healthz, /readyz and /metrics (kubernetes source; default 8080)")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    _add_allow_removals(p)
    _add_repo(p, writes=True)

    p = command("resync", _resync, "write an object's rendering now, even over a human's "
                "revert or edit of its files")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    _add_source(p)
    _add_repo(p, writes=True)

    p = command("rollback", _rollback, "restore an object's rendered files to a generation "
                "or commit, as one new commit")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("--to", required=True, help="generation number or commit")
    p.add_argument("--spec", metavar="SOURCE",
                   help="also set the resource's spec back: 'kubernetes' or the manifest "
                        "directory")
    _add_cluster(p)
    _add_repo(p, writes=True)

    p = command("migrate-layout", _migrate_layout, "move every tenant directory to the "
                "flat or sharded layout in one revertible commit")
    p.add_argument("--to", choices=["flat", "sharded"],
                   help="target layout (default: the layout setting, which must agree)")
    _add_repo(p, writes=True)


def _add_reading_commands(command: Command) -> None:
    """Read-only commands: the repo options only, none of the write options."""
    p = command("status", _status, "per-object status, from the resources and the repo")
    _add_source(p)
    p.add_argument("--applied-from", type=Path, action="append", metavar="PATH",
                   help="Argo CD Application / Flux Kustomization manifests (e.g. kubectl get "
                        "-o yaml output) to tell whether each object's commit is applied")
    _add_output(p)
    _add_repo(p)

    p = command("history", _history, "audit trail of one object: reconciler commits, human "
                "reverts and edits, rollbacks, merges")
    p.add_argument("object", help="customer/NAME, preview/NAME or pool/pgbouncer")
    _add_output(p)
    _add_repo(p)

    p = command("diff", _diff, "rendered difference of one object between two generations "
                "or commits")
    p.add_argument("object", help="customer/NAME, preview/NAME or pool/pgbouncer")
    p.add_argument("a", help="generation number or commit")
    p.add_argument("b", help="generation number or commit")
    _add_repo(p)


def _add_decision_commands(command: Command) -> None:
    """Deciding before writing: ``plan`` writes nothing, ``adopt`` hands a directory over."""
    p = command("plan", _plan, "print what `run --once` would commit, refuse and hold; "
                "writes nothing (exit 0: run would succeed, 1: refusals or held removals)")
    _add_source(p)
    _add_output(p)
    _add_allow_removals(p)
    _add_repo(p)

    p = command("adopt", _adopt, "hand a directory the reconciler did not make over to it: "
                "one commit replaces its files with the object's rendering")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    _add_source(p)
    _add_repo(p, writes=True)


def _add_allow_removals(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-removals", type=_count, default=0, metavar="N",
                   help="confirm up to N removals of a kind in one pass, beyond the removal "
                        "budget (max(removal_budget_min, removal_budget_percent))")


def _add_offline_commands(command: Command) -> None:
    """Commands without a config repo to reach (``init`` creates one)."""
    p = command("render", _render, "render resource files to a directory tree, no Git")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="manifest files or directories")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory to write the rendered tree into")

    p = command("crds", _crds, "write the CustomResourceDefinitions generated from the models")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory to write customer.yaml and preview.yaml into")

    p = command("init", _init, "create a config repo seeded from repo-layout/")
    p.add_argument("--repo", type=Path, required=True, metavar="PATH",
                   help="where to create the repository (bare when new)")
    p.add_argument("--branch", help="branch to seed (default: main)")


def _add_source(p: argparse.ArgumentParser, *, kubernetes: bool = False) -> None:
    what = ("'kubernetes' to watch the cluster, or a directory (or file) of resource "
            "manifests" if kubernetes else "directory (or file) of resource manifests")
    p.add_argument("--source", type=Path, action="append", required=True, metavar="PATH",
                   help=f"{what}; repeatable")


def _add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=["table", "json"], default="table",
                   help="table (default) or json")


def _add_repo(p: argparse.ArgumentParser, *, writes: bool = False) -> None:
    """Where the config repo is and how to reach it; with ``writes``, how commits go there."""
    p.add_argument("--repo", required=True, metavar="PATH|URL",
                   help="config repo: a local path" + (" (created if missing)" if writes else "")
                        + " or a remote URL (ssh://, https://, http://, git://, file://) "
                        "mirrored in --state-dir")
    p.add_argument("--branch", help="target branch (default: main)")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="where remote mirrors live (default: $RECONCILER_STATE_DIR or "
                        "~/.local/state/gitops-reconciler)")
    p.add_argument("--ssh-key", type=Path, metavar="FILE",
                   help="SSH private key for ssh:// remotes (or $RECONCILER_GIT_SSH_KEY)")
    p.add_argument("--ssh-user", metavar="USER", help="SSH user when the URL names none (default: git)")
    p.add_argument("--known-hosts", type=Path, metavar="FILE",
                   help="pin SSH host keys to this known_hosts file")
    p.add_argument("--git-username", metavar="USER", help="HTTPS user (or $RECONCILER_GIT_USERNAME)")
    p.add_argument("--git-token-file", type=Path, metavar="FILE",
                   help="file holding the HTTPS token or password (or $RECONCILER_GIT_TOKEN)")
    if not writes:
        return
    p.add_argument("--sign", metavar="ssh:KEYFILE|gpg:KEYID",
                   help="sign every commit: ssh:KEYFILE or gpg:KEYID")
    p.add_argument("--mode", choices=["direct", "pr"], default="direct",
                   help="direct: commit to the target branch; pr: one branch and pull request "
                        "per object change")
    p.add_argument("--forge", choices=["github", "gitlab", "gitea"], help="forge for --mode pr")
    p.add_argument("--forge-url", metavar="URL",
                   help="forge API base URL, e.g. https://api.github.com")
    p.add_argument("--forge-repo", metavar="OWNER/NAME",
                   help="owner/name (GitLab: project path or id)")
    p.add_argument("--forge-token-file", type=Path, metavar="FILE",
                   help="file with the forge API token (or $RECONCILER_FORGE_TOKEN)")
    p.add_argument("--push-window", type=_seconds, metavar="SECONDS",
                   help="seconds an unpushed commit may wait for others to share its push "
                        "(default: push_window_seconds, 10)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of objects, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


# -- output ---------------------------------------------------------------------------------

class Output:
    """Result lines on stdout, problems on stderr: text, or one JSON object per line."""

    def __init__(self, *, json_lines: bool, verbose: bool) -> None:
        self.json_lines = json_lines
        self.verbose = verbose

    def line(self, text: str, *, error: bool = False, **fields: Any) -> None:
        """One result line (``fields`` only appear in JSON)."""
        stream = sys.stderr if error else sys.stdout
        if self.json_lines:
            record = {"time": datetime.now(UTC).isoformat(timespec="seconds"),
                      "level": "error" if error else "info", "msg": text, **fields}
            print(json.dumps(record, ensure_ascii=False), file=stream, flush=True)
        else:  # a name read from the repo may hold any bytes: never let it drive the terminal
            print(text_line(text), file=stream, flush=True)

    def error(self, text: str) -> None:
        """One line naming what is wrong."""
        self.line(text if self.json_lines else f"error: {text}", error=True)

    def outcome(self, o: Outcome) -> None:
        """One object's result."""
        commit = o.commit[:12] if o.commit else "-"
        self.line(f"{o.result.value:<9} {o.reason.value:<12} {commit:<12} {o.message}",
                  error=not o.ok, object=str(o.key) if o.key else None,
                  result=o.result.value, reason=o.reason.value, commit=o.commit)

    def report(self, outcomes: Sequence[Outcome], commits: int) -> None:
        """A pass: one line per outcome worth telling, then one summary line. A large import,
        and many objects held for one same reason (removals held back), are summed up in
        one line each, unless ``verbose``."""
        from reconciler.core.outcomes import Reason, Result

        told = [o for o in outcomes if o.result != Result.UNCHANGED]
        groups: dict[tuple[Reason, str], list[Outcome]] = {}
        for o in told:
            if o.reason == Reason.IMPORTED:
                groups.setdefault((o.reason, ""), []).append(o)
            elif o.reason in (Reason.REMOVAL_HELD, Reason.SOURCE_EMPTY) and o.key is not None:
                why = o.message.removeprefix(f"{o.key}: ")
                groups.setdefault((o.reason, why), []).append(o)
        grouped = {} if self.verbose else {k: v for k, v in groups.items() if len(v) > 5}
        summed = {id(o) for members in grouped.values() for o in members}
        for o in told:
            if id(o) not in summed:
                self.outcome(o)
        for (reason, why), members in grouped.items():
            first = members[0]
            if reason == Reason.IMPORTED:
                commit = first.commit or ""
                self.line(f"imported {len(members)} objects in commit {commit[:12]} (-v lists "
                          "them; git log -1 names each in its trailers)",
                          result=first.result.value, reason=reason.value, commit=commit,
                          objects=len(members))
            else:
                self.line(f"{len(members)} objects {first.result.value}: {why} (-v lists them)",
                          error=not first.ok, result=first.result.value, reason=reason.value,
                          objects=len(members))
        unchanged = sum(1 for o in outcomes if o.result == Result.UNCHANGED)
        failed = sum(1 for o in outcomes if not o.ok)
        self.line(f"{commits} commits, {unchanged} objects unchanged, {failed} refused or failed",
                  summary=True, commits=commits, unchanged=unchanged, failed=failed)

    def delivery(self, delivered: Any) -> bool:
        """What a push did; False when it failed."""
        for change in delivered.foreign:
            self.line(f"warning: commit {change.commit.id[:12]} by {change.commit.author_name} "
                      f"changed files the reconciler owns: {', '.join(change.paths[:5])}",
                      error=True, commit=change.commit.id)
        if delivered.error:
            self.line(f"push failed: {delivered.error}", error=True)
            return False
        self.line(f"pushed {delivered.pushed} commits in {delivered.pushes} push(es)"
                  + (f" after {delivered.rebases} re-render(s) on a moved remote"
                     if delivered.rebases else ""),
                  pushed=delivered.pushed, pushes=delivered.pushes)
        return True

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """Aligned columns."""
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
        for row in [header, *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


# -- commands -------------------------------------------------------------------------------

def _settings(args: argparse.Namespace) -> app.Settings:
    settings = app.settings_from(args.config)
    if getattr(args, "branch", None):
        problem = names.branch_problem(args.branch)
        if problem:  # before anything is created
            raise errors.UserInputError(f"--branch: {problem}")
        settings = settings.model_copy(update={"branch": args.branch})
    return settings


def _target(args: argparse.Namespace) -> app.Target:
    return app.target_from(
        repo=args.repo, state_dir=args.state_dir, ssh_key=args.ssh_key, ssh_user=args.ssh_user,
        known_hosts=args.known_hosts, username=args.git_username,
        token_file=args.git_token_file, sign=getattr(args, "sign", None),
        push_window=getattr(args, "push_window", None), mode=getattr(args, "mode", "direct"),
        forge=getattr(args, "forge", None), forge_url=getattr(args, "forge_url", None),
        forge_repo=getattr(args, "forge_repo", None),
        forge_token_file=getattr(args, "forge_token_file", None))


def _run(args: argparse.Namespace, out: Output) -> int:
    settings = _settings(args)
    kubernetes = [str(s) for s in args.source] == ["kubernetes"]
    if not kubernetes:
        app.check_sources(args.source)
    target = _target(args)
    if kubernetes:
        return app.run_kubernetes(
            target=target, settings=settings, kubeconfig=args.kubeconfig,
            context=args.context, once=args.once, leader_elect=args.leader_elect,
            lease_namespace=args.lease_namespace, lease_name=args.lease_name,
            identity=args.identity, health_port=args.health_port,
            allow_removals=args.allow_removals)
    progress = not out.json_lines
    if args.once:
        report, delivered = app.run_once(args.source, target, settings, args.allow_removals,
                                         show_progress=progress)
        out.report(report.outcomes, len(report.commits))
        ok = report.ok
        if delivered is not None:
            ok = out.delivery(delivered) and ok
        return EXIT_OK if ok else EXIT_REFUSED
    app.run_forever(args.source, target, settings,
                    on_report=lambda r: out.report(r.outcomes, len(r.commits)),
                    allow_removals=args.allow_removals, show_progress=progress,
                    on_start=lambda text: out.line(text, error=True))
    return EXIT_OK


def _plan(args: argparse.Namespace, out: Output) -> int:
    from reconciler.core import decide as decision  # the models: only when planning
    from reconciler.core.outcomes import Result

    app.check_sources(args.source)
    plan = app.plan_once(args.source, _target(args), _settings(args), args.allow_removals)
    if args.output == "json":
        print(json.dumps(decision.plan_document(plan), indent=2))
        return EXIT_REFUSED if plan.refusals else EXIT_OK
    for c in plan.commits:
        out.line(f"commit    {c.action:<9} {c.subject}")
        for f in c.files:
            out.line(f"          {f.status} {f.path} +{f.added} -{f.removed}")
    for v in plan.verdicts:
        if v.result not in (Result.COMMITTED, Result.UNCHANGED):
            word = "held" if v in plan.held_removals else v.result.value
            out.line(f"{word:<9} {v.reason.value:<14} {v.message}", error=not v.ok,
                     object=str(v.key) if v.key else None, result=word,
                     reason=v.reason.value)
    unchanged = sum(1 for v in plan.verdicts if v.result == Result.UNCHANGED)
    out.line(f"{len(plan.commits)} commits planned, {unchanged} objects unchanged, "
             f"{len(plan.refusals)} refused, {len(plan.held_removals)} removals held; "
             "nothing written", summary=True, commits=len(plan.commits), unchanged=unchanged,
             refused=len(plan.refusals), held=len(plan.held_removals))
    return EXIT_REFUSED if plan.refusals else EXIT_OK


def _adopt(args: argparse.Namespace, out: Output) -> int:
    key = app.parse_key(args.object)
    app.check_sources(args.source)
    outcome, delivered = app.resync(args.source, _target(args), _settings(args), key,
                                    adopt=True)
    out.line(f"{outcome.result.value}: {outcome.message}", error=not outcome.ok,
             object=str(key), result=outcome.result.value, commit=outcome.commit)
    ok = outcome.ok and (delivered is None or out.delivery(delivered))
    return EXIT_OK if ok else EXIT_REFUSED


def _status(args: argparse.Namespace, out: Output) -> int:
    rows = app.status(_target(args), _settings(args), args.source, args.applied_from)
    if args.output == "json":
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    elif args.applied_from:
        out.table(["KIND", "NAME", "STATE", "LAST COMMIT", "APPLIED", "MESSAGE"],
                  [[r.kind, r.name, r.state, (r.last_commit or "-")[:12],
                    (r.applied or "-").split(" ", 1)[0], r.message] for r in rows])
    else:
        out.table(["KIND", "NAME", "STATE", "LAST COMMIT", "MESSAGE"],
                  [[r.kind, r.name, r.state, (r.last_commit or "-")[:12], r.message]
                   for r in rows])
    return EXIT_OK if all(r.valid for r in rows) else EXIT_REFUSED


def _history(args: argparse.Namespace, out: Output) -> int:
    key = app.parse_key(args.object, shared=True)
    entries = app.history(_target(args), _settings(args), key)
    records = [{"date": _iso(e.time, e.offset_minutes), "commit": e.commit, "who": e.who,
                "kind": e.kind, "generation": e.generation, "detail": e.detail,
                "subject": e.subject} for e in entries]
    if args.output == "json":
        print(json.dumps(records, indent=2))
    else:
        out.table(["DATE", "COMMIT", "GEN", "KIND", "WHO", "SUBJECT"],
                  [[str(r["date"]), str(r["commit"])[:12],
                    "-" if r["generation"] is None else str(r["generation"]),
                    str(r["kind"]), str(r["who"]), str(r["subject"])] for r in records])
    return EXIT_OK


def _diff(args: argparse.Namespace, out: Output) -> int:
    key = app.parse_key(args.object, shared=True)
    sys.stdout.write(app.diff(_target(args), _settings(args), key, args.a, args.b))
    return EXIT_OK


def _resync(args: argparse.Namespace, out: Output) -> int:
    key = app.parse_key(args.object)
    app.check_sources(args.source)
    outcome, delivered = app.resync(args.source, _target(args), _settings(args), key)
    out.line(f"{outcome.result.value}: {outcome.message}", error=not outcome.ok,
             object=str(key), result=outcome.result.value, commit=outcome.commit)
    ok = outcome.ok and (delivered is None or out.delivery(delivered))
    return EXIT_OK if ok else EXIT_REFUSED


def _rollback(args: argparse.Namespace, out: Output) -> int:
    key = app.parse_key(args.object)
    outcome, delivered, note = app.rollback(
        _target(args), _settings(args), key, args.to, spec_source=args.spec,
        kubeconfig=args.kubeconfig, context=args.context)
    where = outcome.pull_request_url or (outcome.commit or "")[:12]
    out.line(f"{outcome.result.value}: {outcome.message} {where}".rstrip(), error=not outcome.ok,
             object=str(key), result=outcome.result.value, commit=outcome.commit)
    ok = outcome.ok and (delivered is None or out.delivery(delivered))
    if note:
        out.line(note)
    return EXIT_OK if ok else EXIT_REFUSED


def _migrate_layout(args: argparse.Namespace, out: Output) -> int:
    done = app.migrate_layout(_target(args), _settings(args), args.to)
    if done.commit is None:
        out.line(f"already {done.layout}: nothing to move", layout=done.layout, moved=0)
    elif done.pull_request is not None:
        out.line(f"proposed moving {done.moved:,} tenant directories to the {done.layout} "
                 f"layout: {done.pull_request} (commit {done.commit[:12]}); reconcilers whose "
                 "layout setting differs from the repository hold until it is merged and "
                 "the setting agrees", layout=done.layout, moved=done.moved,
                 commit=done.commit, pull_request=done.pull_request)
    else:
        out.line(f"moved {done.moved:,} tenant directories to the {done.layout} layout in "
                 f"commit {done.commit[:12]}", layout=done.layout, moved=done.moved,
                 commit=done.commit)
    ok = done.delivered is None or out.delivery(done.delivered)
    return EXIT_OK if ok else EXIT_REFUSED


def _render(args: argparse.Namespace, out: Output) -> int:
    parsed, written = app.render_to(args.paths, args.out, _settings(args))
    for refusal in parsed.refusals:
        out.line(f"refused: {refusal}", error=True, result="refused")
    out.line(f"rendered {len(parsed.objects)} objects ({len(written)} files) into {args.out}",
             objects=len(parsed.objects), files=len(written))
    return EXIT_REFUSED if parsed.refusals else EXIT_OK


def _crds(args: argparse.Namespace, out: Output) -> int:
    for path in app.write_crds(args.out):
        out.line(f"wrote {path}", path=str(path))
    return EXIT_OK


def _init(args: argparse.Namespace, out: Output) -> int:
    commit = app.init_repo(args.repo, _settings(args))
    out.line(f"seeded {args.repo} in commit {commit}" if commit else f"{args.repo} already seeded",
             commit=commit)
    return EXIT_OK


def _iso(seconds: int, offset_minutes: int) -> str:
    tz = timezone(timedelta(minutes=offset_minutes)) if offset_minutes else UTC
    return datetime.fromtimestamp(seconds, tz).isoformat()


if __name__ == "__main__":
    sys.exit(main())
