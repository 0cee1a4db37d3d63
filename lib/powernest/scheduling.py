"""How a run's cases are spread over pytest-xdist workers.

A case runs in the process of its group (`run_group`): the cases that share
guests must share a process.  `workers` is how many processes a run of some
hosts gets; `plugin.collection` hands the groups to them, the longest first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from powernest.inventory import Host
from powernest.kinds import Ability, Target, kind_of


def run_group(host: Host, target: Target | None, part: str = "") -> str:
    """The cases that must run in one process: a target's, where the suite boots its
    L1s (they share them; a host's targets are independent), apart from a `part` of
    them that starts L1s of its own (one suite's such cases); all of an LPAR's (the one
    L1 of every target); a host's own cases (no target)."""
    if target is None or kind_of(host).lacks(Ability.BOOTS_L1, host):
        return host.name
    return f"{target.id}:{part}" if part else target.id


def workers(hosts: Iterable[Host]) -> int:
    """One worker per group of cases that can run side by side (a target where the suite
    boots the L1s, an LPAR), at most one per CPU core (an emulated L0 keeps a core busy)."""
    groups = {run_group(h, t) for h in hosts for t in kind_of(h).targets(h)}
    return min(len(groups), os.cpu_count() or 1)
