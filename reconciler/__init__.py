"""gitops-reconciler: renders Customer and Preview resources into commits in a config repo.

The package is layered (checked by import-linter, see pyproject.toml):
``cli``/``app`` (entry points and wiring) -> ``reconcile`` (logic) -> ``ports`` (protocols)
-> ``core`` (pure models, rendering, planning). ``adapters`` implement ports.
"""

__version__ = "0.1.0"
