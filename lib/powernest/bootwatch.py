"""A guest's boot, watched for progress: milestones, each with a bound learnt from the
lab's own boots.

A boot passes milestones in order (an L2: its first console output, its init's
banner, its prompt; `L2_MILESTONES`).  Each milestone must come within its own
bound of the one before, so a guest that stops making progress fails as soon as
it is clearly late, and says where it stopped (`BootStalled`), instead of
waiting out the whole boot timeout.  `BootTimes` learns the bounds: every boot
that reaches its prompt records how long each step took, by host, L0, API and
guest (a JSON file in the lab cache, shared by the runs and the workers of this
machine); a step's bound is `FACTOR` times the longest of its last `KEEP` times,
never under `FLOOR`.  A step with fewer than `LEARNT_AFTER` times yet takes its
`DEFAULT_SHARE` of the host's boot timeout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from powernest.console import ConsoleTimeout

# An L2 under TCG prints its first line (a kernel warning at loglevel 5) 2 to 4 s after its
# QEMU started, its banner 1.4 s later (make run, beside another worker); a step 5 times
# as long as any of its last 20 is not slow but stuck.
FACTOR = 5.0
FLOOR = 15.0
KEEP = 20
LEARNT_AFTER = 3
DEFAULT_SHARE = 0.25


@dataclass(frozen=True)
class Milestone:
    """A point in a boot: a console pattern (a regex)."""

    name: str
    pattern: str


class BootStalled(ConsoleTimeout):
    """A boot did not reach its next milestone within that milestone's bound."""

    def __init__(self, message: str, log: Path | None, milestone: str) -> None:
        self.milestone = milestone
        super().__init__(message, log)


@dataclass(frozen=True)
class Step:
    """The wait for one milestone, with its bound and where the bound came from."""

    milestone: Milestone
    bound: float
    basis: str   # "learnt from 20 boots (longest 3.1 s)" or "a quarter of the boot timeout"


@dataclass
class BootTimes:
    """The measured step times of a lab's boots (`path`: JSON, None: this process only)."""

    path: Path | None = None
    _memory: dict[str, list[float]] = field(default_factory=dict)

    def plan(self, guest: str, milestones: tuple[Milestone, ...],
             timeout: float) -> list[Step]:
        """The steps of a boot of `guest` (a key: host, L0, API, guest kind), bounded."""
        known = self._read()
        steps = []
        for milestone in milestones:
            seen = known.get(_key(guest, milestone.name), [])
            if len(seen) >= LEARNT_AFTER:
                bound = max(FLOOR, FACTOR * max(seen))
                basis = (f"{FACTOR:.0f} times the longest of the last {len(seen)} boots "
                         f"here ({max(seen):.1f} s)")
            else:
                bound = DEFAULT_SHARE * timeout
                basis = f"{DEFAULT_SHARE:.0%} of the boot timeout (not yet learnt)"
            steps.append(Step(milestone, min(bound, timeout), basis))
        return steps

    def record(self, guest: str, took: dict[str, float]) -> None:
        """Add one boot's step times (milestone name: seconds since the one before)."""
        with self._locked() as known:
            for name, seconds in took.items():
                seen = known.setdefault(_key(guest, name), [])
                seen.append(round(seconds, 2))
                del seen[:-KEEP]

    def _read(self) -> dict[str, list[float]]:
        if self.path is None:
            return self._memory
        try:
            return dict(json.loads(self.path.read_text()))
        except (OSError, ValueError):
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, list[float]]]:
        """The times to change, written back when done (under a lock: workers share it)."""
        if self.path is None:
            yield self._memory
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = self._read()
            yield known
            part = self.path.with_suffix(f".{os.getpid()}.part")
            part.write_text(json.dumps(known, indent=0, sort_keys=True))
            part.replace(self.path)


def _key(guest: str, milestone: str) -> str:
    """Where one step's times are kept: the kind of boot, then the milestone's name."""
    return f"{guest}|{milestone}"
