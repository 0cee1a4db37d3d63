"""Guest names: the one place they are built and parsed.

Every QEMU the suite starts on a host (an L1, a caps probe, an L2 on an LPAR)
is named `pn.<run id>.<host>[-<api>].<role>`, so that a later run holding the
host's lease can tell what a gone run left behind (`lease.reap`) and a
report can show a guest by its short name.  An L2 inside an L1 the suite
booted needs no run id: it dies with its L1.
"""

from __future__ import annotations

import re

from powernest.nested import API

PREFIX = "pn"
_APIS = "|".join(re.escape(api.value) for api in API)


def guest_name(run_id: str, host: str, role: str, api: API | None = None) -> str:
    """A host-level guest name, e.g. `pn.<run>.p10-nested-hv.l1-gw0-3`."""
    where = f"{host}-{api.value}" if api else host
    return f"{PREFIX}.{run_id}.{where}.{role}"


def l1_role(worker: str, n: int) -> str:
    """An L1's role: its pytest-xdist worker (names stay unique across workers) and number."""
    return f"l1-{worker}-{n}" if worker else f"l1-{n}"


def l2_role(n: int) -> str:
    return f"l2-{n}"


def host_guests(host: str) -> re.Pattern[str]:
    """Matches a guest name of `host` (whatever run); group 1 is the run id."""
    return re.compile(rf"{PREFIX}\.([^.\s]+)\.{re.escape(host)}(?:-(?:{_APIS}))?\.\S+")


def short(name: str) -> str:
    """A guest name without `pn.<run id>.`, as a report shows it."""
    return name.split(".", 2)[-1] if name.startswith(f"{PREFIX}.") else name


def l2_log_name(l1: str, l2: str) -> str:
    """The console log name of L2 `l2` inside the L1 (or LPAR) `l1`."""
    return f"{l1}-{l2}"


def is_l2(name: str) -> bool:
    """Whether a guest's name (or its console log's) is an L2's."""
    last = name.rpartition(".")[2]
    return last.startswith("l2-") or "-l2-" in last
