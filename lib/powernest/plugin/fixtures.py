"""The fixtures the suites use.

Session-wide: `run_context`, `lab`, `host_sessions`, `pool`, `hcall_runner`;
per target (shared by its cases): `l1`, `l2`; per case: `host_session` and
`expect_deviation`.  What every case records is `cases.py`'s.

A target's shared guests are stopped as soon as the last case that uses them
has run (`SharedGuests`), not when pytest next needs another target's: an idle
L2 under API v2 keeps a host CPU busy (`nested.IDLE_L2_SPINS`), and would slow
every case that runs after it.  So a fixture must not use a shared guest in its
teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import pytest

from powernest.guests import L1
from powernest.hcalls.runner import HcallRunner
from powernest.hosts import HostSession
from powernest.kinds import Target
from powernest.l2 import L2Guest
from powernest.lab import LabImages, build_lab, find_lab
from powernest.nested import Deviation
from powernest.plugin.cases import expect
from powernest.plugin.collection import SHARED_GUESTS, host_of, shared_guests_of, target_of
from powernest.plugin.run import HostSessions, RunContext, context
from powernest.pool import GuestPool

_SHARED = pytest.StashKey["SharedGuests"]()


@dataclass
class SharedGuests:
    """Stops each shared guest (fixture name, target id) after the last case that uses it
    in the run's order: a worker runs its cases in that order, and all of a target's
    cases run in one worker (`collection.pytest_collection_modifyitems`)."""

    last_uses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _stops: dict[tuple[str, str], Callable[[], None]] = field(default_factory=dict)

    def plan(self, items: list[pytest.Item]) -> None:
        """Note, for each shared guest, the last of `items` that uses it."""
        last: dict[tuple[str, str], str] = {}
        for item in items:
            if (target := target_of(item)) is not None:
                for name in shared_guests_of(item):
                    last[(name, target.id)] = item.nodeid
        self.last_uses = {}
        for key, nodeid in last.items():
            self.last_uses.setdefault(nodeid, []).append(key)

    def hold(self, name: str, target: Target, stop: Callable[[], None]) -> tuple[str, str]:
        key = (name, target.id)
        self._stops[key] = stop
        return key

    def release(self, key: tuple[str, str]) -> None:
        """Stop the guest of `key` unless it was stopped already."""
        if (stop := self._stops.pop(key, None)) is not None:
            stop()

    def release_after(self, item: pytest.Item) -> None:
        keys = self.last_uses.get(item.nodeid, [])
        for key in sorted(keys, key=lambda k: SHARED_GUESTS.index(k[0])):
            self.release(key)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SHARED] = SharedGuests()


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[_SHARED].plan(session.items)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """As the last case that uses a shared guest is torn down, first stop the guest: before
    the case's own fixtures (none uses a shared guest in its teardown) and before `cases`
    reads what its L1 did, which a spinning L2 slowed to 7 s."""
    item.config.stash[_SHARED].release_after(item)
    return (yield)


@pytest.fixture(scope="session")
def shared_guests(pytestconfig: pytest.Config) -> SharedGuests:
    return pytestconfig.stash[_SHARED]


@pytest.fixture(scope="session")
def run_context(pytestconfig: pytest.Config) -> RunContext:
    ctx = context(pytestconfig)
    if ctx is None:
        raise pytest.UsageError("no powernest run: a suites directory's conftest.py starts "
                                "one (powernest.plugin.run.start_run)")
    return ctx


@pytest.fixture(scope="session")
def lab() -> LabImages:
    """The emulated lab's boot images, built first if the cache has none."""
    return find_lab() or build_lab()


@pytest.fixture(scope="session")
def host_sessions(run_context: RunContext) -> HostSessions:
    """The run's connected hosts (closed when the session finishes)."""
    return run_context.sessions


@pytest.fixture(scope="session")
def pool(run_context: RunContext, lab: LabImages) -> Iterator[GuestPool]:
    """Starts guests for the run and kills them all at its end; kvm-hv's hcalls are
    traced in every L1 with KVM (`run_context.traces`)."""
    p = GuestPool(run_context.run_id, run_context.console_dir, lab,
                  run_context.sessions.get_session, on_console=run_context.attach,
                  on_started=run_context.started,
                  before_kvm=run_context.traces.start,
                  worker=os.environ.get("PYTEST_XDIST_WORKER", ""))
    yield p
    p.close()


@pytest.fixture
def host_session(request: pytest.FixtureRequest, host_sessions: HostSessions) -> HostSession:
    """The connected host of this case (from its `target` or `host` parameter)."""
    host = host_of(request.node)
    if host is None:
        raise pytest.UsageError(f"{request.node.nodeid}: host_session needs a host or target")
    return host_sessions.get_session(host)


@pytest.fixture(scope="session")
def hcall_runner(run_context: RunContext, lab: LabImages,
                 pool: GuestPool) -> Iterator[HcallRunner]:
    """Runs hcall cases in L1s of their targets (see powernest.hcalls.runner)."""
    runner = HcallRunner(pool, lab.hcall_module, run_context.run_dir / "hcalls")
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def l1(target: Target, pool: GuestPool, shared_guests: SharedGuests) -> Iterator[L1]:
    """A fresh L1 on the target with kvm and kvm-hv loaded, shared by the target's cases
    (on a powervm host: the LPAR, with kvm-hv as it finds it or loaded now).  Booted, not
    restored: test_l1_boots checks the boot."""
    guest = pool.l1_with_kvm(target, booted=True)
    key = shared_guests.hold("l1", target, lambda: pool.stop(guest))
    yield guest
    shared_guests.release(key)


@pytest.fixture(scope="session")
def l2(l1: L1, target: Target, pool: GuestPool,
       shared_guests: SharedGuests) -> Iterator[L2Guest]:
    """An L2 booted in the shared L1 under -accel kvm, shared by the target's cases."""
    guest = pool.l2(l1, target)
    key = shared_guests.hold("l2", target, lambda: pool.stop(guest))
    yield guest
    shared_guests.release(key)


@pytest.fixture
def expect_deviation(request: pytest.FixtureRequest,
                     host_session: HostSession) -> Callable[[Deviation], bool]:
    """For deviations that depend on what the case observed (a kexec stage): mark the
    case a strict xfail if its L0 has the deviation; returns whether it does."""
    target = target_of(request.node)
    assert target is not None, "expect_deviation is for cases of a target"
    return lambda deviation: bool(expect(request.node, (deviation,), host_session, target))
