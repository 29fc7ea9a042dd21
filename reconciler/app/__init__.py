"""Composition root: builds the adapters and hands them to the reconcile logic.

Entry points (the CLI) call these functions; they hold no global state. Split by concern:
``offline`` (settings, render, crds: no Git, no cluster), ``wiring`` (the repo and the
engine), ``local`` (local mode and one-shot commands), ``readonly`` (status, history, diff),
``cluster`` (the controller process), ``logs``.

Names are resolved on first use (PEP 562), so a command imports only the modules, and the
libraries (pygit2, kubernetes, prometheus-client, APScheduler), that it needs.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.app.cluster import run_kubernetes
    from reconciler.app.layouts import Migration, migrate_layout
    from reconciler.app.local import (
        POLL_SECONDS,
        find_object,
        local_pass,
        plan_once,
        read_deployers,
        restore_spec,
        resync,
        rollback,
        run_forever,
        run_once,
    )
    from reconciler.app.logs import configure_logging
    from reconciler.app.offline import (
        check_sources,
        read_sources,
        render_to,
        settings_from,
        write_crds,
    )
    from reconciler.app.readonly import HistoryEntry, diff, history, parse_key, status
    from reconciler.app.wiring import (
        VERSION,
        ForgeOptions,
        Target,
        Wiring,
        default_state_dir,
        init_repo,
        layout_files,
        layout_root,
        local_reconciler,
        open_repo,
        pull_request_reconciler,
        seed,
        target_from,
        wire,
    )
    from reconciler.core.settings import Settings

_WHERE = {
    "run_kubernetes": "cluster",
    **dict.fromkeys(["HistoryEntry", "diff", "history", "parse_key", "status"], "readonly"),
    **dict.fromkeys(["POLL_SECONDS", "find_object", "local_pass", "plan_once", "read_deployers",
                     "restore_spec", "resync", "rollback", "run_forever", "run_once"], "local"),
    "configure_logging": "logs",
    **dict.fromkeys(["Migration", "migrate_layout"], "layouts"),
    **dict.fromkeys(["check_sources", "read_sources", "render_to", "settings_from",
                     "write_crds"], "offline"),
    **dict.fromkeys(["VERSION", "ForgeOptions", "Target", "Wiring", "default_state_dir",
                     "init_repo", "layout_files", "layout_root", "local_reconciler",
                     "open_repo", "pull_request_reconciler", "seed", "target_from", "wire"],
                    "wiring"),
}

__all__ = [
    "POLL_SECONDS",
    "VERSION",
    "ForgeOptions",
    "HistoryEntry",
    "Migration",
    "Settings",
    "Target",
    "Wiring",
    "check_sources",
    "configure_logging",
    "default_state_dir",
    "diff",
    "find_object",
    "history",
    "init_repo",
    "layout_files",
    "layout_root",
    "local_pass",
    "local_reconciler",
    "migrate_layout",
    "open_repo",
    "parse_key",
    "plan_once",
    "pull_request_reconciler",
    "read_deployers",
    "read_sources",
    "render_to",
    "restore_spec",
    "resync",
    "rollback",
    "run_forever",
    "run_kubernetes",
    "run_once",
    "seed",
    "settings_from",
    "status",
    "target_from",
    "wire",
    "write_crds",
]


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from reconciler.core.settings import Settings
        return Settings
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler.app' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"reconciler.app.{module}"), name)
    globals()[name] = value
    return value
