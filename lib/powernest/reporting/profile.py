"""Where a run's time went: its cases' seconds by phase (`powernest.timing`: L1s restored
or booted, L2 boots, kexecs, hosts opened; the rest of each case is its checks), by
suite (the file under suites/), by target (host/API), and its slowest cases.  Case
seconds add up across workers, so they exceed the run's wall time when cases ran side by
side."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from powernest.reporting.journal import Case, Run
from powernest.reporting.junit import PHASES
from powernest.timing import CHECKS
from powernest.timing import PHASES as PHASE_ORDER


def phases_of(case: Case) -> dict[str, float]:
    """A case's seconds per phase, its checks included (what the phases leave of it)."""
    try:
        spent = {k: float(v) for k, v in json.loads(case.properties.get(PHASES, "{}")).items()}
    except (ValueError, AttributeError):
        spent = {}
    spent[CHECKS] = max(0.0, case.duration - sum(spent.values()))
    return spent


@dataclass
class Slow:
    """One of the slowest cases."""

    name: str
    suite: str
    seconds: float
    phases: dict[str, float]


@dataclass
class Profile:
    """A run's case seconds by phase and by suite, and its slowest cases."""

    total: float
    by_phase: dict[str, float] = field(default_factory=dict)
    by_suite: dict[str, float] = field(default_factory=dict)
    by_target: dict[str, float] = field(default_factory=dict)
    slowest: list[Slow] = field(default_factory=list)

    def share(self, seconds: float) -> float:
        return 100 * seconds / self.total if self.total else 0.0


def profile(run: Run, slowest: int = 10) -> Profile:
    """The profile of `run`'s cases (see the module docstring)."""
    phases: defaultdict[str, float] = defaultdict(float)
    suites: defaultdict[str, float] = defaultdict(float)
    targets: defaultdict[str, float] = defaultdict(float)
    for case in run.cases.values():
        for name, seconds in phases_of(case).items():
            phases[name] += seconds
        suites[suite_of(case)] += case.duration
        targets[case.suite] += case.duration
    order = {name: i for i, name in enumerate(PHASE_ORDER)}
    cases = sorted(run.cases.values(), key=lambda c: -c.duration)[:slowest]
    return Profile(
        total=sum(c.duration for c in run.cases.values()),
        by_phase={k: phases[k] for k in sorted(phases, key=lambda k: order.get(k, 99))},
        by_suite=_largest_first(suites), by_target=_largest_first(targets),
        slowest=[Slow(c.name, c.suite, c.duration, phases_of(c)) for c in cases])


def suite_of(case: Case) -> str:
    """`test_hcalls` for `suites/test_hcalls.py::test_hcall[...]`."""
    return case.nodeid.split("::")[0].rpartition("/")[2].removesuffix(".py")


def _largest_first(seconds: dict[str, float]) -> dict[str, float]:
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def render(p: Profile) -> str:
    """The profile as a terminal shows it."""
    lines = [f"case seconds: {p.total:.0f} (all workers)", "by phase:"]
    lines += [f"  {name:<28} {s:8.1f} s  {p.share(s):5.1f} %" for name, s in p.by_phase.items()]
    for title, seconds in (("suite", p.by_suite), ("target", p.by_target)):
        lines.append(f"by {title}:")
        lines += [f"  {name:<28} {s:8.1f} s  {p.share(s):5.1f} %" for name, s in seconds.items()]
    lines.append("slowest cases:")
    for slow in p.slowest:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in slow.phases.items() if v >= 0.05)
        lines.append(f"  {slow.seconds:6.1f} s  {slow.name}  ({parts})")
    return "\n".join(lines)
