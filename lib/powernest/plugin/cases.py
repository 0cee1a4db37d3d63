"""What every case of a run records, and whether it can run: one hook each side.

Before a case's fixtures (`pytest_runtest_setup`): note it as this process's
running case, connect its host, record the L0 (and a lease taken over, stale
guests reaped), skip it with the reason when the host is leased by another
run, its L0 cannot offer the API, or its kind lacks what a `requires` marker
asks, and turn its `deviation` markers into strict xfails where its L0 and
API have them.  `Unavailable`, raised while a case sets up (also re-raised
from a cached session fixture) or runs, skips it with its message.

Before its fixtures are torn down (`pytest_runtest_teardown`): attach the
console logs of the guests it used, their kernels and boot times, and the
hcalls kvm-hv made so far in its L1 (`l1_hcalls`), and the seconds it spent in each
phase a run waits on (`phases`: `powernest.timing`).  When a phase raises
(`pytest_runtest_makereport`), the console log of the guest whose error it
was (a `ConsoleError` along the exception's chain) is the case's `failed_log`,
attached first; and for cases with L1s, the longest their L0 QEMUs waited for a
host CPU (`l0_cpu_wait_s`): a lockup, a stall or a timeout while an L0 was
starved (`schedstat.STARVED`) is the infrastructure's error, `l0_starved`,
not the product's failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from powernest import timing
from powernest.console import ConsoleError, ConsoleTimeout
from powernest.errors import Unavailable, chain
from powernest.guests import L1
from powernest.hosts import HostSession
from powernest.kinds import Ability, Target, kind_of
from powernest.l2 import L2Guest
from powernest.nested import Deviation
from powernest.plugin.collection import host_of, target_of
from powernest.plugin.run import RunContext, context
from powernest.pool import GuestPool
from powernest.reporting.junit import FAILED_LOG, L0_STARVED, PHASES
from powernest.shell import CommandTimeout

_STARTED = pytest.StashKey[float]()
# the known deviations that made a case a strict xfail (`expect`)
DEVIATIONS_MET = pytest.StashKey[list[Deviation]]()
# what a starved L0 shows in its guests: their watchdogs fire (console.FAILURES' names)
_STARVATION_SIGNS = ("soft lockup", "hard lockup", "RCU stall", "hung task")


def expect(item: pytest.Item, deviations: tuple[Deviation, ...], session: HostSession,
           target: Target) -> list[Deviation]:
    """Mark the case a strict xfail for each of `deviations` its L0 has; return those."""
    found = [d for d in deviations
             if d.applies(target.api, session.qemu_version, session.l0.nested_code)]
    for d in found:
        item.add_marker(pytest.mark.xfail(strict=True, reason=d.reason(session.qemu_version)))
    item.stash[DEVIATIONS_MET] = [*item.stash.get(DEVIATIONS_MET, []), *found]
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    ctx = context(item.config)
    item.stash[_STARTED] = time.monotonic()
    timing.reset()
    if ctx is not None:
        ctx.current["nodeid"] = item.nodeid
        _before(item, ctx)
    try:
        return (yield)
    except Unavailable as exc:
        pytest.skip(str(exc))


def _before(item: pytest.Item, ctx: RunContext) -> None:
    host = host_of(item)
    if host is None:
        return
    session = ctx.sessions.get_session(host)
    item.user_properties.append(("l0", session.l0.description))
    if session.hold.took_over:
        item.user_properties.append(("lease_taken_over_from", session.hold.took_over))
    if session.hold.reaped:
        item.user_properties.append(("reaped_stale_guests", " ".join(session.hold.reaped)))
    target = target_of(item)
    lacking = (kind_of(host).lacks(Ability(m.args[0]), host)
               for m in item.iter_markers("requires"))
    if reason := session.unavailable(target.api if target else None) or next(
            (r for r in lacking if r), None):
        pytest.skip(reason)
    if target:
        expect(item, tuple(d for m in item.iter_markers("deviation") for d in m.args),
               session, target)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call() -> Generator[None, object, object]:
    try:
        return (yield)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    if (ctx := context(item.config)) is not None:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, L2Guest):
                _record_guest(item, value, "l2", ctx)
            elif isinstance(value, L1):
                _record_guest(item, value, "l1", ctx)
                if value.alive() and (seen := ctx.traces.total(value)):
                    item.user_properties.append(("l1_hcalls", seen))
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Before the phase's report is made: how long its L0s waited for a CPU, and the log
    of the guest that failed it, if any."""
    if call.when == "call":
        _record_l0_wait(item, call)
    if call.when == "teardown" and (spent := timing.spent()):
        item.user_properties.append((PHASES, json.dumps(spent)))
    ctx = context(item.config)
    if ctx is None or call.excinfo is None or any(k == FAILED_LOG
                                                  for k, _ in item.user_properties):
        return
    if (log := failed_log(call.excinfo.value)) is not None:
        inside = log.is_relative_to(ctx.run_dir)
        item.user_properties.append(
            (FAILED_LOG, str(log.relative_to(ctx.run_dir) if inside else log)))


def _record_l0_wait(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    pool = getattr(item, "funcargs", {}).get("pool")
    if not isinstance(pool, GuestPool) or _STARTED not in item.stash:
        return
    seconds = time.monotonic() - item.stash[_STARTED]
    waits = [w for l1 in pool.running_l1s() if (w := l1.l0_wait(seconds)) is not None]
    worst = max(waits, key=lambda w: w.seconds, default=None)
    if worst is None:
        return
    item.user_properties.append(("l0_cpu_wait_s", round(worst.seconds, 1)))
    expected_to_fail = item.get_closest_marker("xfail") is not None   # a known deviation
    if worst.starved and not expected_to_fail and call.excinfo is not None \
            and _starvation_sign(call.excinfo.value):
        item.user_properties.append((L0_STARVED, worst.describe()))


def _starvation_sign(exc: BaseException | None) -> bool:
    """Whether a failure is what a starved L0 causes: a guest lockup or stall (on a
    console, or found in a kernel log), or a wait that ran out."""
    return any(isinstance(e, ConsoleTimeout | CommandTimeout)
               or any(sign in str(e) for sign in _STARVATION_SIGNS) for e in chain(exc))


def failed_log(exc: BaseException | None) -> Path | None:
    """The console log of the first `ConsoleError` along `exc`'s causes and contexts
    (`pytest.fail` in an `except L0Died` block still names the L1's log)."""
    return next((e.log for e in chain(exc) if isinstance(e, ConsoleError) and e.log), None)


def _record_guest(item: pytest.Item, guest: L1 | L2Guest, level: str,
                  ctx: RunContext) -> None:
    item.user_properties.append(("attachment", str(guest.log_path.relative_to(ctx.run_dir))))
    if guest.kernel_release:
        item.user_properties.append((f"{level}_kernel", guest.kernel_release))
    if guest.boot_seconds:
        item.user_properties.append((f"{level}_boot_seconds", round(guest.boot_seconds, 1)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Release the run's hosts (their leases) once every fixture is torn down."""
    if (ctx := context(session.config)) is not None:
        ctx.sessions.close()
