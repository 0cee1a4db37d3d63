"""A guest pool on one local `tcg` host, for the tests that boot real guests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from powernest.hosts import HostSession
from powernest.inventory import Inventory
from powernest.kinds import Target
from powernest.lab import LabImages
from powernest.nested import API
from powernest.pool import GuestPool


@contextmanager
def local_pool(run_id: str, host: str, cpu: str, consoles: Path,
               lab: LabImages) -> Iterator[tuple[GuestPool, Target]]:
    """A pool of run `run_id` on a local `tcg` host named `host`, and its nested-hv
    target; every guest stopped and the session closed after."""
    inventory = Inventory.model_validate({"hosts": [{"name": host, "kind": "tcg", "cpu": cpu}]})
    session = HostSession.open(inventory.hosts[0], run_id, 30)
    pool = GuestPool(run_id, consoles, lab, lambda h: session)
    try:
        yield pool, Target(inventory.hosts[0], API.V1)
    finally:
        pool.close()
        session.close()
