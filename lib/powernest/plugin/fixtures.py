"""The fixtures the suites use.

Session-wide: `run_context`, `lab`, `host_sessions`, `pool`, `hcall_runner`,
`shared_guests`; per case: `l1` and `l2`, a target's shared guests (started,
replaced and stopped by `powernest.plugin.shared`), `host_session` and
`expect_deviation`.  What every case records is `cases.py`'s.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator

import pytest

from powernest.bootwatch import BootTimes
from powernest.console import ConsoleError
from powernest.guests import L1
from powernest.hcalls.runner import HcallRunner
from powernest.hosts import HostSession
from powernest.kinds import Target
from powernest.l2 import L2Guest
from powernest.lab import LabImages, build_lab, default_cache, find_lab, hcall_module_for
from powernest.nested import Deviation
from powernest.plugin.cases import expect
from powernest.plugin.collection import host_of, target_of
from powernest.plugin.run import HostSessions, RunContext, context
from powernest.plugin.shared import RETIRED, SharedGuests, SharedGuestWarning, registry
from powernest.pool import GuestPool

BOOT_TIMES = "boot-times.json"   # the lab's boot milestones, learnt (powernest.bootwatch)


@pytest.fixture(scope="session")
def shared_guests(pytestconfig: pytest.Config) -> SharedGuests:
    return registry(pytestconfig)


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
                  worker=os.environ.get("PYTEST_XDIST_WORKER", ""),
                  boot_times=BootTimes(default_cache() / BOOT_TIMES))
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
    runner = HcallRunner(pool, lab.hcall_modules, run_context.run_dir / "hcalls",
                         build=lambda release: hcall_module_for(release, log=print))
    yield runner
    runner.close()


@pytest.fixture
def l1(request: pytest.FixtureRequest, target: Target, pool: GuestPool,
       shared_guests: SharedGuests) -> L1:
    """The target's shared L1 with kvm and kvm-hv loaded (on a powervm host: the LPAR,
    with kvm-hv as it finds it or loaded now), its kernel log marked as this case begins.
    The first is booted, not restored (test_l1_boots checks the boot); one that replaces
    an L1 retired after an incident (`powernest.plugin.shared`) is restored."""
    def shared_l1() -> L1:
        return shared_guests.get(
            "l1", target, lambda replacing: pool.l1_with_kvm(target, booted=not replacing),
            pool.stop)

    guest = shared_l1()
    try:
        guest.begin_case(request.node.nodeid)
    except ConsoleError as exc:   # it failed between two cases: this case gets a fresh one
        why = f"the L1 failed before the case began: {str(exc).splitlines()[0]}"
        warnings.warn(SharedGuestWarning(why), stacklevel=1)
        request.node.user_properties.append((RETIRED, why))
        shared_guests.retire(target)
        guest = shared_l1()
        guest.begin_case(request.node.nodeid)
    return guest


@pytest.fixture
def l2(l1: L1, target: Target, pool: GuestPool, shared_guests: SharedGuests) -> L2Guest:
    """An L2 booted in the target's shared L1 under -accel kvm, shared by its cases."""
    return shared_guests.get("l2", target, lambda replacing: pool.l2(l1, target), pool.stop)


@pytest.fixture
def expect_deviation(request: pytest.FixtureRequest,
                     host_session: HostSession) -> Callable[[Deviation], bool]:
    """For deviations that depend on what the case observed (a kexec stage): mark the
    case a strict xfail if its L0 has the deviation; returns whether it does."""
    target = target_of(request.node)
    assert target is not None, "expect_deviation is for cases of a target"
    return lambda deviation: bool(expect(request.node, (deviation,), host_session, target))
