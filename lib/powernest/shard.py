"""Shards: the hosts of one inventory split between CI jobs, the same way in each.

`--shard K/N` keeps every N-th host of the selection sorted by name, starting
at the K-th, so N jobs given the same inventory and selection drive disjoint
hosts and together drive them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from powernest.inventory import Host, InventoryError

_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse(text: str) -> tuple[int, int] | None:
    """(K, N) from 'K/N' with 1 <= K <= N; None for an empty text."""
    if not text:
        return None
    match = _SHARD.match(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise InventoryError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    return int(match[1]), int(match[2])


def hosts_of(hosts: Sequence[Host], shard: tuple[int, int] | None) -> tuple[Host, ...]:
    """The hosts shard (K, N) drives, in the selection's own order."""
    if shard is None:
        return tuple(hosts)
    k, n = shard
    names = sorted(h.name for h in hosts)[k - 1::n]
    return tuple(h for h in hosts if h.name in names)
