"""Where a case's time goes: the phases a run waits on (an L1 restored from its
checkpoint or booted, an L2 booted, a kexec, a host opened and its lease taken), timed
as they happen in this process.  What a case spent outside them is its checks.

A phase inside another counts toward the outer one only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

L1_RESTORED, L1_BOOTED, L2_BOOT, KEXEC, HOST = (
    "L1 restored", "L1 booted", "L2 boot", "kexec", "host and lease")
CHECKS = "checks"            # the rest of a case's time
PHASES = (L1_RESTORED, L1_BOOTED, L2_BOOT, KEXEC, HOST, CHECKS)

_spent: dict[str, float] = {}
_depth = 0


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase `name` (unless it runs inside another phase)."""
    global _depth
    t0 = time.monotonic()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _spent[name] = _spent.get(name, 0.0) + time.monotonic() - t0


def reset() -> None:
    """Forget what was timed: a new case begins."""
    _spent.clear()


def spent() -> dict[str, float]:
    """Seconds per phase since the last `reset()`, in `PHASES` order."""
    return {name: round(_spent[name], 3) for name in PHASES if name in _spent}
