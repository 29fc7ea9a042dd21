"""Composition root: builds the adapters and hands them to the reconcile logic.

Entry points (the CLI) call these functions; they hold no global state. Split by concern:
``wiring`` (settings, repo, engine), ``local`` (local mode and one-shot commands),
``cluster`` (the controller process).
"""

from reconciler.app.cluster import run_kubernetes
from reconciler.app.local import (
    POLL_SECONDS,
    find_object,
    local_pass,
    plan_once,
    read_deployers,
    read_sources,
    render_to,
    restore_spec,
    resync,
    rollback,
    run_forever,
    run_once,
    write_crds,
)
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
    settings_from,
    target_from,
    wire,
)
from reconciler.core.settings import Settings

__all__ = [
    "POLL_SECONDS", "VERSION", "ForgeOptions", "Settings", "Target", "Wiring",
    "default_state_dir", "find_object", "init_repo", "layout_files", "layout_root",
    "local_pass", "local_reconciler", "open_repo", "plan_once", "pull_request_reconciler", "read_deployers",
    "read_sources", "render_to", "restore_spec", "resync", "rollback", "run_forever",
    "run_kubernetes", "run_once", "seed", "settings_from", "target_from", "wire",
    "write_crds",
]
