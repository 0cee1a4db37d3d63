"""Figures of a run's speed, measured on this machine and printed.

    .venv/bin/python bench/run_figures.py [--rounds 5] [--skip-runs] [--restores N]

1. a fresh L1 by boot against one restored from its checkpoint, side by side
   (min / median / max of each); with `--restores N`, N restores on each tcg host and
   how many needed a second try;
2. the wall time of `make premerge` (also without the hcall suite's cases, to count
   what that suite adds to the gate apart) and of `make run` (default inventory);
3. how well `make run` keeps its workers busy: its wall time against the sum
   of its guests' boot (or restore) times divided by the workers, from the
   run's journal (`guest` events); and the 2-vCPU L2 boot, v2 against v1.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from powernest.guests import RESTORED_AGAIN, L1Guest
from powernest.hosts import HostSession
from powernest.inventory import Host, load_inventory
from powernest.kinds import Target
from powernest.lab import build_lab
from powernest.nested import API
from powernest.pool import GuestPool
from powernest.reporting import journal

REPO = Path(__file__).resolve().parents[1]


def _spread(seconds: list[float]) -> str:
    return (f"min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s, "
            f"max {max(seconds):.2f} s ({len(seconds)})")


@contextmanager
def _checkpointed(host: Host, consoles: Path) -> Iterator[tuple[GuestPool, Target]]:
    """A pool on `host` and its nested-hv target, whose L1 checkpoint exists."""
    session = HostSession.open(host, "bench", 60)
    pool = GuestPool("bench", consoles, build_lab(log=lambda line: None), lambda h: session)
    target = Target(host, API.V1)
    try:
        pool.stop(pool.l1(target))   # makes the checkpoint if there is none yet
        yield pool, target
    finally:
        pool.close()
        session.close()


def l1_start(host: Host, rounds: int, work: Path) -> None:
    """Boot and restore fresh L1s of one target in turn; print both spreads."""
    timings: dict[str, list[float]] = defaultdict(list)
    with _checkpointed(host, work / "consoles") as (pool, target):
        for _ in range(rounds):
            for booted in (True, False):
                l1 = pool.l1(target, booted=booted)
                assert isinstance(l1, L1Guest)
                timings[l1.started_from].append(l1.boot_seconds)
                pool.stop(l1)
    print(f"fresh L1 on {host.name} ({host.cpu}, nested-hv), at its prompt:")
    for how in ("boot", "checkpoint"):
        print(f"  by {how:<10} {_spread(timings[how])}")
    print(f"  restore/boot median: "
          f"{statistics.median(timings['checkpoint']) / statistics.median(timings['boot']):.2f}")


def restores(host: Host, count: int, work: Path) -> None:
    """Restore `count` fresh L1s of one target in turn; print their spread and how many
    did not answer at their prompt the first time (`guests.RESTORE_TRIES`)."""
    consoles = work / f"restores-{host.name}"
    seconds: list[float] = []
    with _checkpointed(host, consoles) as (pool, target):
        for _ in range(count):
            l1 = pool.l1(target)
            assert isinstance(l1, L1Guest)
            seconds.append(l1.boot_seconds)
            pool.stop(l1)
    again = sum(log.read_text().count(RESTORED_AGAIN) for log in consoles.glob("*.log"))
    print(f"restores on {host.name}: {_spread(seconds)}; a second try needed: {again} of "
          f"{count}")


def make(target: str, pytest_args: str = "", label: str = "") -> tuple[float, Path]:
    """Run a make target; its wall time and the run directory it wrote."""
    started = time.monotonic()
    done = subprocess.run(["make", target, f"PYTEST_ARGS={pytest_args}"], cwd=REPO,
                          capture_output=True, text=True)
    took = time.monotonic() - started
    lines = done.stdout.strip().splitlines()
    summary = next((line for line in reversed(lines) if " in " in line), "no summary")
    print(f"make {label or target:<9} {took / 60:5.1f} min wall ({took:.0f} s)   "
          f"{summary.strip('= ')}")
    return took, (REPO / "reports" / "latest").resolve()


def workers_of(guests: list[dict[str, Any]]) -> int:
    """How many processes ran cases (the xdist workers named in L1 names)."""
    names = {e["name"] for e in guests if e["level"] == "l1"}
    return max(len({m[1] for n in names if (m := re.search(r"\.l1-(gw\d+)-", n))}), 1)


def boot_share(run_dir: Path, wall: float) -> None:
    """The run's wall time against its guests' start times per worker."""
    guests = [e for e in journal.events(run_dir / journal.JOURNAL) if e.get("event") == "guest"]
    workers = workers_of(guests)
    total = sum(e["seconds"] for e in guests)
    by_how: dict[str, list[float]] = defaultdict(list)
    for e in guests:
        by_how[f"{e['level']} by {e['started_from']}"].append(e["seconds"])
    for how, seconds in sorted(by_how.items()):
        print(f"  {how:<16} {len(seconds):4} guests, {_spread(seconds)}")
    print(f"  wall / (guest start time {total:.0f} s / {workers} workers) = "
          f"{wall / (total / workers):.2f}")
    smp2: dict[tuple[str, str], float] = {}
    for case in journal.read(run_dir / journal.JOURNAL).cases.values():
        if smp2_boot := case.properties.get("l2_smp2_boot_seconds"):
            smp2[(case.properties.get("host", ""), case.properties.get("api", ""))] = \
                float(smp2_boot)
    for host in sorted({host for host, _ in smp2}):
        v1, v2 = smp2.get((host, API.V1.value)), smp2.get((host, API.V2.value))
        if v1 and v2:
            print(f"  2-vCPU L2 boot on {host}: v1 {v1:.0f} s, v2 {v2:.0f} s, v2/v1 {v2 / v1:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="boots and restores each")
    parser.add_argument("--skip-runs", action="store_true",
                        help="only the L1 figures (make premerge and make run take minutes)")
    parser.add_argument("--restores", type=int, default=0, metavar="N",
                        help="also restore N fresh L1s of every tcg host, counting second tries")
    options = parser.parse_args()
    tcg = [h for h in load_inventory(REPO / "hosts.yaml").hosts if h.kind.value == "tcg"]
    with tempfile.TemporaryDirectory(prefix="powernest-bench-") as tmp:
        l1_start(tcg[0], options.rounds, Path(tmp))
        for host in tcg if options.restores else ():
            restores(host, options.restores, Path(tmp))
    if options.skip_runs:
        return
    gate, _ = make("premerge")
    before, _ = make("premerge", "-k 'not test_hcall'", "premerge without the hcall suite")
    print(f"  the hcall suite adds {gate - before:.0f} s to make premerge")
    wall, run_dir = make("run")
    boot_share(run_dir, wall)


if __name__ == "__main__":
    main()
