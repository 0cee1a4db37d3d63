"""Where the latest run's time went, as its dashboard shows it: case seconds by phase
(L1s restored or booted, L2 boots, kexecs, hosts opened, checks), by suite, and the
slowest cases.

    .venv/bin/python bench/time_profile.py [REPORTS_DIR or RUN_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from powernest.reporting import journal, profile
from powernest.reporting.dashboard import latest_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("where", nargs="?", type=Path, default=Path("reports"))
    args = parser.parse_args()
    try:
        run_dir = (args.where if (args.where / journal.JOURNAL).exists()
                   else latest_run(args.where))
    except FileNotFoundError as exc:
        sys.exit(f"time-profile: {exc}")
    run = journal.read(run_dir / journal.JOURNAL)
    print(f"run {run.run_id} ({run_dir}):")
    print(profile.render(profile.profile(run)))


if __name__ == "__main__":
    main()
