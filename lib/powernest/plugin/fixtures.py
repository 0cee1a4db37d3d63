"""The fixtures the suites use, and what every case records.

Session-wide: `run_context`, `lab`, `host_sessions`, `pool`, `hcall_runner`,
`hcall_traces`; per target (shared by its cases): `l1`, `l2`; per case:
`host_session`, `expect_deviation`, and the autouse `_case_records`, which
notes the case's L0 and lease, resolves its `deviation` markers into strict
xfails, and afterwards attaches the logs of the guests it used and the hcalls
kvm-hv made so far in its L1 (`l1_hcalls`).  `Unavailable`, raised while a
case sets up or runs, skips it with its message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator

import pytest

from powernest.errors import Unavailable
from powernest.guests import L1
from powernest.hcalls.runner import HcallRunner
from powernest.hcalls.trace import HcallTraces
from powernest.hosts import HostSession
from powernest.kinds import Target
from powernest.l2 import L2Guest
from powernest.lab import LabImages, build_lab, find_lab
from powernest.nested import Deviation
from powernest.plugin.collection import host_of, target_of
from powernest.plugin.run import HostSessions, RunContext, context
from powernest.pool import GuestPool


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """Note the case running in this process; `Unavailable` while setting it up (also
    re-raised from a cached session fixture) skips it."""
    if ctx := context(item.config):
        ctx.current["nodeid"] = item.nodeid
    try:
        return (yield)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call() -> Generator[None, object, object]:
    try:
        return (yield)
    except Unavailable as exc:
        pytest.skip(str(exc))


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
def host_sessions(run_context: RunContext) -> Iterator[HostSessions]:
    sessions = HostSessions(run_context)
    yield sessions
    for s in sessions.values():
        s.close()


@pytest.fixture(scope="session")
def hcall_traces() -> HcallTraces:
    """kvm-hv's hcalls in each L1 with KVM, from its kernel's tracepoints."""
    return HcallTraces()


@pytest.fixture(scope="session")
def pool(run_context: RunContext, lab: LabImages, host_sessions: HostSessions,
         hcall_traces: HcallTraces) -> Iterator[GuestPool]:
    """Starts guests for the run and kills them all at its end."""
    p = GuestPool(run_context.run_id, run_context.console_dir, lab, host_sessions.get_session,
                  on_console=run_context.attach, before_kvm=hcall_traces.start,
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
def l1(target: Target, pool: GuestPool) -> Iterator[L1]:
    """A fresh L1 on the target with kvm and kvm-hv loaded, shared by the target's cases
    (on a powervm host: the LPAR, with kvm-hv as it finds it or loaded now)."""
    guest = pool.l1_with_kvm(target)
    yield guest
    pool.stop(guest)


@pytest.fixture(scope="session")
def l2(l1: L1, target: Target, pool: GuestPool) -> Iterator[L2Guest]:
    """An L2 booted in the shared L1 under -accel kvm, shared by the target's cases."""
    guest = pool.l2(l1, target)
    yield guest
    pool.stop(guest)


def _expect(node: pytest.Item, deviations: tuple[Deviation, ...], session: HostSession,
            target: Target) -> list[Deviation]:
    """Mark the case a strict xfail for each of `deviations` its L0 has; return those."""
    found = [d for d in deviations if session.l0.nested_by_qemu
             and d.applies(target.api, session.qemu_version)]
    for d in found:
        node.add_marker(pytest.mark.xfail(strict=True, reason=d.reason(session.qemu_version)))
    return found


@pytest.fixture
def expect_deviation(request: pytest.FixtureRequest,
                     host_session: HostSession) -> Callable[[Deviation], bool]:
    """For deviations that depend on what the case observed (a kexec stage): mark the
    case a strict xfail if its L0 has the deviation; returns whether it does."""
    target = target_of(request.node)
    assert target is not None, "expect_deviation is for cases of a target"
    return lambda deviation: bool(_expect(request.node, (deviation,), host_session, target))


@pytest.fixture(autouse=True)
def _case_records(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record the case's L0 and lease and expect its deviations; afterwards attach the
    logs of the guests it used.  Outside a run: nothing."""
    node = request.node
    run_context = context(request.config)
    if run_context is None:
        yield
        return
    traces = request.getfixturevalue("hcall_traces")
    host = host_of(node)
    if host is not None:
        session = request.getfixturevalue("host_sessions").get_session(host)
        target = target_of(node)
        if reason := session.unavailable(target.api if target else None):
            pytest.skip(reason)
        node.user_properties.append(("l0", session.l0.description))
        if session.lease and session.lease.took_over:
            node.user_properties.append(("lease_taken_over_from", session.lease.took_over))
        if session.reaped:
            node.user_properties.append(("reaped_stale_guests", " ".join(session.reaped)))
        if target:
            marked = tuple(d for m in node.iter_markers("deviation") for d in m.args)
            _expect(node, marked, session, target)
    yield
    for value in node.funcargs.values():
        if isinstance(value, L2Guest):
            _record_guest(node, value, "l2", run_context)
        elif isinstance(value, L1):
            _record_guest(node, value, "l1", run_context)
            if value.alive() and (seen := traces.total(value)):
                node.user_properties.append(("l1_hcalls", seen))


def _record_guest(node: pytest.Item, guest: L1 | L2Guest, level: str,
                  run_context: RunContext) -> None:
    node.user_properties.append(("attachment",
                                 str(guest.log_path.relative_to(run_context.run_dir))))
    if guest.kernel_release:
        node.user_properties.append((f"{level}_kernel", guest.kernel_release))
    if guest.boot_seconds:
        node.user_properties.append((f"{level}_boot_seconds", round(guest.boot_seconds, 1)))
