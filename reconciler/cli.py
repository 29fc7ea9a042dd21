"""The ``reconciler`` command line: parses arguments, calls the composition root, prints.

Intentionally short: a user's mistake becomes one line on stderr and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from reconciler import __version__, app
from reconciler.adapters.observability import JsonFormatter
from reconciler.core import decide as decision
from reconciler.core import errors
from reconciler.core.models import ObjectKey
from reconciler.core.outcomes import Result
from reconciler.core.settings import Settings
from reconciler.reconcile import queries
from reconciler.reconcile import rollback as rollback_logic
from reconciler.reconcile.delivery import DeliveryReport
from reconciler.reconcile.engine import PassReport
from reconciler.reconcile.ownership import Ownership

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reconciler`` console script."""
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose, args.log_format)
    try:
        code: int = args.func(args)
    except errors.UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `reconciler history ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gitops-reconciler {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, func: object, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--config", type=Path, help="settings file (YAML)")
        return p

    p = command("render", _render, "render resource files to a directory tree, no Git")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)

    _add_run_arguments(command("run", _run, "reconcile resources into the config repo"))

    _add_decision_commands(command)

    p = command("status", _status, "per-object status, from the resources and the repo")
    p.add_argument("--source", type=Path, action="append", required=True)
    p.add_argument("--applied-from", type=Path, action="append",
                   help="Argo CD Application / Flux Kustomization manifests (e.g. kubectl get "
                        "-o yaml output) to tell whether each object's commit is applied")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    _add_target_arguments(p)

    p = command("history", _history, "audit trail of one object: reconciler commits, human "
                "reverts and edits, rollbacks, merges")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    _add_target_arguments(p)

    p = command("diff", _diff, "rendered difference of one object between two generations "
                "or commits")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("a", help="generation number or commit")
    p.add_argument("b", help="generation number or commit")
    _add_target_arguments(p)

    p = command("resync", _resync, "write an object's rendering now, even over a human's "
                "revert or edit of its files")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("--source", type=Path, action="append", required=True)
    _add_target_arguments(p)

    p = command("rollback", _rollback, "restore an object's rendered files to a generation "
                "or commit, as one new commit")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("--to", required=True, help="generation number or commit")
    p.add_argument("--spec", metavar="SOURCE",
                   help="also set the resource's spec back: 'kubernetes' or the manifest "
                        "directory")
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    _add_target_arguments(p)

    p = command("crds", _crds, "write the CustomResourceDefinitions generated from the models")
    p.add_argument("--out", type=Path, required=True)

    p = command("init", _init, "create a config repo seeded from repo-layout/")
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--branch")
    return parser


def _add_decision_commands(command: Callable[[str, object, str], argparse.ArgumentParser]
                           ) -> None:
    p = command("plan", _plan, "print what `run --once` would commit, refuse and hold; "
                "writes nothing (exit 0: run would succeed, 1: refusals or held removals)")
    p.add_argument("--source", type=Path, action="append", required=True)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    _add_allow_removals(p)
    _add_target_arguments(p)

    p = command("adopt", _adopt, "hand a directory the reconciler did not make over to it: "
                "one commit replaces its files with the object's rendering")
    p.add_argument("object", help="customer/NAME or preview/NAME")
    p.add_argument("--source", type=Path, action="append", required=True)
    _add_target_arguments(p)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, action="append", required=True,
                   help="'kubernetes' to watch the cluster, or a directory (or file) of "
                        "resource manifests; repeatable")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                   help="take part in Lease leader election (kubernetes source)")
    p.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE", "gitops-reconciler"))
    p.add_argument("--lease-name", default="gitops-reconciler")
    p.add_argument("--identity", help="leader election identity (default: host-pid)")
    p.add_argument("--health-port", type=int, default=8080,
                   help="port of /healthz, /readyz and /metrics (kubernetes source)")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    _add_allow_removals(p)
    _add_target_arguments(p)


def _add_allow_removals(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-removals", type=_count, default=0, metavar="N",
                   help="confirm up to N removals of a kind in one pass, beyond the removal "
                        "budget (max(removal_budget_min, removal_budget_percent))")


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True,
                   help="config repo: a local path (created if missing) or a remote URL "
                        "(ssh://, https://, http://, git://, file://) mirrored in --state-dir")
    p.add_argument("--branch", help="target branch (default: main)")
    p.add_argument("--state-dir", type=Path,
                   help="where remote mirrors live (default: $RECONCILER_STATE_DIR or "
                        "~/.local/state/gitops-reconciler)")
    p.add_argument("--ssh-key", type=Path, help="SSH private key for ssh:// remotes "
                   "(or $RECONCILER_GIT_SSH_KEY)")
    p.add_argument("--ssh-user", help="SSH user when the URL names none (default: git)")
    p.add_argument("--known-hosts", type=Path, help="pin SSH host keys to this known_hosts file")
    p.add_argument("--git-username", help="HTTPS user (or $RECONCILER_GIT_USERNAME)")
    p.add_argument("--git-token-file", type=Path,
                   help="file holding the HTTPS token or password (or $RECONCILER_GIT_TOKEN)")
    p.add_argument("--sign", help="sign every commit: ssh:KEYFILE or gpg:KEYID")
    p.add_argument("--mode", choices=["direct", "pr"], default="direct",
                   help="direct: commit to the target branch; pr: one branch and pull request "
                        "per object change")
    p.add_argument("--forge", choices=["github", "gitlab", "gitea"], help="forge for --mode pr")
    p.add_argument("--forge-url", help="forge API base URL, e.g. https://api.github.com")
    p.add_argument("--forge-repo", help="owner/name (GitLab: project path or id)")
    p.add_argument("--forge-token-file", type=Path,
                   help="file with the forge API token (or $RECONCILER_FORGE_TOKEN)")
    p.add_argument("--push-window", type=float,
                   help="seconds an unpushed commit may wait for others to share its push "
                        "(default: push_window_seconds, 10)")


def _configure_logging(verbose: bool, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO if log_format == "json"
                        else logging.WARNING, handlers=[handler], force=True)
    for noisy in ("urllib3", "kubernetes", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the phases of a large pass (only passes over thousands of objects log them)
    logging.getLogger("reconciler.progress").setLevel(logging.DEBUG if verbose else logging.INFO)


def _settings(args: argparse.Namespace) -> Settings:
    settings = app.settings_from(args.config)
    if getattr(args, "branch", None):
        settings = settings.model_copy(update={"branch": args.branch})
    return settings


def _render(args: argparse.Namespace) -> int:
    parsed, written = app.render_to(args.paths, args.out, _settings(args))
    for refusal in parsed.refusals:
        print(f"refused: {refusal}", file=sys.stderr)
    print(f"rendered {len(parsed.objects)} objects ({len(written)} files) into {args.out}")
    return EXIT_REFUSED if parsed.refusals else EXIT_OK


def print_report(report: PassReport) -> None:
    """One line per outcome worth telling."""
    for outcome in report.outcomes:
        if outcome.result == Result.UNCHANGED:
            continue
        commit = outcome.commit[:12] if outcome.commit else "-"
        stream = sys.stdout if outcome.ok else sys.stderr
        print(f"{outcome.result.value:<9} {outcome.reason.value:<12} {commit:<12} {outcome.message}",
              file=stream)
    unchanged = sum(1 for o in report.outcomes if o.result == Result.UNCHANGED)
    print(f"{len(report.commits)} commits, {unchanged} objects unchanged, "
          f"{sum(1 for o in report.outcomes if not o.ok)} refused or failed")


def _target(args: argparse.Namespace) -> app.Target:
    return app.target_from(
        repo=args.repo, state_dir=args.state_dir, ssh_key=args.ssh_key, ssh_user=args.ssh_user,
        known_hosts=args.known_hosts, username=args.git_username,
        token_file=args.git_token_file, sign=args.sign, push_window=args.push_window,
        mode=args.mode, forge=args.forge, forge_url=args.forge_url, forge_repo=args.forge_repo,
        forge_token_file=args.forge_token_file)


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    target = _target(args)
    if [str(s) for s in args.source] == ["kubernetes"]:
        return app.run_kubernetes(
            target=target, settings=settings, kubeconfig=args.kubeconfig,
            context=args.context, once=args.once, leader_elect=args.leader_elect,
            lease_namespace=args.lease_namespace, lease_name=args.lease_name,
            identity=args.identity, health_port=args.health_port,
            allow_removals=args.allow_removals)
    if args.once:
        report, delivered = app.run_once(args.source, target, settings, args.allow_removals)
        print_report(report)
        if delivered is not None:
            _print_delivery(delivered)
        ok = report.ok and (delivered is None or delivered.error is None)
        return EXIT_OK if ok else EXIT_REFUSED
    app.run_forever(args.source, target, settings, on_report=print_report,
                    allow_removals=args.allow_removals)
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    plan = app.plan_once(args.source, _target(args), _settings(args), args.allow_removals)
    if args.output == "json":
        print(json.dumps(decision.plan_document(plan), indent=2))
        return EXIT_REFUSED if plan.refusals else EXIT_OK
    for c in plan.commits:
        print(f"commit    {c.action:<9} {c.subject}")
        for f in c.files:
            print(f"          {f.status} {f.path} +{f.added} -{f.removed}")
    for v in plan.verdicts:
        if v.result not in (Result.COMMITTED, Result.UNCHANGED):
            word = "held" if v in plan.held_removals else v.result.value
            print(f"{word:<9} {v.reason.value:<14} {v.message}",
                  file=sys.stdout if v.ok else sys.stderr)
    unchanged = sum(1 for v in plan.verdicts if v.result == Result.UNCHANGED)
    print(f"{len(plan.commits)} commits planned, {unchanged} objects unchanged, "
          f"{len(plan.refusals)} refused, {len(plan.held_removals)} removals held; "
          "nothing written")
    return EXIT_REFUSED if plan.refusals else EXIT_OK


def _adopt(args: argparse.Namespace) -> int:
    outcome, delivered = app.resync(args.source, _target(args), _settings(args),
                                    _key(args.object), adopt=True)
    print(f"{outcome.result.value}: {outcome.message}")
    if delivered is not None:
        _print_delivery(delivered)
    return EXIT_OK if outcome.ok and (delivered is None or not delivered.error) else EXIT_REFUSED


def _print_delivery(delivered: DeliveryReport) -> None:
    for change in delivered.foreign:
        print(f"warning: commit {change.commit.id[:12]} by {change.commit.author_name} changed "
              f"files the reconciler owns: {', '.join(change.paths[:5])}", file=sys.stderr)
    if delivered.error:
        print(f"push failed: {delivered.error}", file=sys.stderr)
    else:
        print(f"pushed {delivered.pushed} commits in {delivered.pushes} push(es)"
              + (f" after {delivered.rebases} re-render(s) on a moved remote"
                 if delivered.rebases else ""))


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of objects, got {text!r}")
    return int(text)


def _key(text: str) -> ObjectKey:
    try:
        return ObjectKey.parse(text)
    except ValueError as exc:
        raise errors.UserInputError(str(exc)) from exc


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    repo = app.wire(_target(args), settings, create=False).repo
    deployed = app.read_deployers(args.applied_from) if args.applied_from else None
    rows = queries.object_status(repo, settings, app.read_sources(args.source, settings), time.time(),
                                 deployed)
    if args.output == "json":
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    elif deployed is not None:
        _table(["KIND", "NAME", "STATE", "LAST COMMIT", "APPLIED", "MESSAGE"],
               [[r.kind, r.name, r.state, (r.last_commit or "-")[:12],
                 (r.applied or "-").split(" ", 1)[0], r.message] for r in rows])
    else:
        _table(["KIND", "NAME", "STATE", "LAST COMMIT", "MESSAGE"],
               [[r.kind, r.name, r.state, (r.last_commit or "-")[:12], r.message] for r in rows])
    return EXIT_OK if all(r.valid for r in rows) else EXIT_REFUSED


def _history(args: argparse.Namespace) -> int:
    key = _key(args.object)
    settings = _settings(args)
    wiring = app.wire(_target(args), settings, create=False)
    ownership = Ownership(repo=wiring.repo, author_email=settings.author_email)
    records: list[dict[str, str]] = [{
        "date": _iso(e.commit.time, e.commit.offset_minutes),
        "commit": e.commit.id,
        "who": f"{e.commit.author_name} <{e.commit.author_email}>",
        "kind": e.kind,
        "generation": str(e.generation or "-"),
        "detail": e.detail,
        "subject": e.commit.subject,
    } for e in rollback_logic.audit(wiring.repo, key, ownership)]
    if args.output == "json":
        print(json.dumps(records, indent=2))
    else:
        _table(["DATE", "COMMIT", "GEN", "KIND", "WHO", "SUBJECT"],
               [[r["date"], r["commit"][:12], r["generation"], r["kind"], r["who"],
                 r["subject"]] for r in records])
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    key = _key(args.object)
    repo = app.wire(_target(args), _settings(args), create=False).repo
    sys.stdout.write(rollback_logic.diff(repo, key, args.a, args.b))
    return EXIT_OK


def _resync(args: argparse.Namespace) -> int:
    outcome, delivered = app.resync(args.source, _target(args), _settings(args), _key(args.object))
    print(f"{outcome.result.value}: {outcome.message}")
    if delivered is not None:
        _print_delivery(delivered)
    return EXIT_OK if outcome.ok and (delivered is None or not delivered.error) else EXIT_REFUSED


def _rollback(args: argparse.Namespace) -> int:
    outcome, delivered, note = app.rollback(
        _target(args), _settings(args), _key(args.object), args.to, spec_source=args.spec,
        kubeconfig=args.kubeconfig, context=args.context)
    where = outcome.pull_request_url or (outcome.commit or "")[:12]
    print(f"{outcome.result.value}: {outcome.message} {where}".rstrip())
    if delivered is not None:
        _print_delivery(delivered)
    if note:
        print(note)
    return EXIT_OK if outcome.ok and (delivered is None or not delivered.error) else EXIT_REFUSED


def _crds(args: argparse.Namespace) -> int:
    for path in app.write_crds(args.out):
        print(f"wrote {path}")
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    commit = app.init_repo(args.repo, _settings(args))
    print(f"seeded {args.repo} in commit {commit}" if commit else f"{args.repo} already seeded")
    return EXIT_OK


def _iso(seconds: int, offset_minutes: int) -> str:
    tz = timezone(timedelta(minutes=offset_minutes)) if offset_minutes else UTC
    return datetime.fromtimestamp(seconds, tz).isoformat()


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
