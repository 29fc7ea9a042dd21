"""``python -m tests.chaos --kills N``: the full kill -9 campaign, a JSON summary on stdout.

Exit 0 when nothing was lost, duplicated, rewound or corrupted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.chaos.harness import MODES, as_json, run_campaign


def main() -> int:
    """Parse the flags, run each mode's campaign, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--kills", type=int, default=100, help="kill -9 rounds per mode")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: local,remote,pr")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layout", choices=["flat", "sharded"], default="flat",
                        help="tenant layout of the config repo (the layout setting)")
    parser.add_argument("--workdir", type=Path, help="keep the repositories here")
    args = parser.parse_args()
    summaries = []
    with tempfile.TemporaryDirectory(prefix="chaos-", dir=args.workdir) as tmp:
        for mode in args.modes.split(","):
            summaries.append(run_campaign(Path(tmp) / mode, mode, args.kills, seed=args.seed,
                                          layout=args.layout,
                                          log=lambda line: print(line, file=sys.stderr)))
    print(as_json(summaries))
    return 0 if all(s.sound for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
