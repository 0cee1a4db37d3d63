"""API fallback when a kernel is exec'd: kexec an L1 into a kernel with or without
API v2 (or the same one again), reload kvm-hv, reset the machine, and check
each time that the running kernel's API and KVM state are what the
expectations table says for the API its L0 offers.

Each (target, scenario) gets an L1 of its own; the scenario runs once and the
cases below check what it observed at each stage.  On a powervm host the L1
is the LPAR: the scenarios that kexec its running kernel series into itself
run there (reconnecting over SSH), and nothing resets it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from powernest.console import ConsoleError
from powernest.guests import L1Guest
from powernest.hosts import HostSession
from powernest.inventory import Kind
from powernest.lpar import L1, Lpar
from powernest.nested import (
    API,
    SET_CAPABILITIES_ONCE,
    kvm_lines,
    l1_expectation,
    mismatches,
    observed_api,
    registers,
    registers_again,
)
from powernest.plugin import expect_deviations, skip_unless_offered
from powernest.pool import L1Pool, Target

pytestmark = [pytest.mark.kexec, pytest.mark.nightly]


@dataclass(frozen=True)
class Scenario:
    """Boot `first`; then kexec into `then` (None: rmmod and insmod kvm-hv instead)."""

    id: str
    first: str
    then: str | None
    l2_running: bool = False


SCENARIOS = [
    Scenario("6.12-to-6.1", "6.12", "6.1"),
    Scenario("6.1-to-6.12", "6.1", "6.12"),
    Scenario("6.12-to-6.12", "6.12", "6.12"),
    Scenario("6.12-to-6.12-l2-running", "6.12", "6.12", l2_running=True),
    Scenario("kvm-hv-reload", "6.12", None),
]
PREMERGE = "6.12-to-6.12"


@dataclass
class Stage:
    """What one kernel in the chain did when kvm-hv loaded, and whether an L2 ran."""

    kernel: str
    kvm_hv_loaded: bool
    dmesg: str
    l2_ok: bool
    l2_detail: str
    registered_before: bool   # a v2 kernel had registered with L0 earlier since reset
    seconds: float = 0.0      # how long the kexec (or reload) before this stage took

    def api(self) -> API | None:
        return observed_api(self.dmesg, self.kernel, self.kvm_hv_loaded)


def _try_l2(pool: L1Pool, l1: L1, target: Target) -> tuple[bool, str]:
    try:
        l2 = pool.boot_l2(l1, target)
    except ConsoleError as exc:
        return False, str(exc).splitlines()[0] + "\n" + str(exc)[-800:]
    ok = "hv:linux,kvm" in l2.hardware_name()
    pool.stop(l2)
    return ok, l2.hardware_name()


def _observe(pool: L1Pool, l1: L1, target: Target, registered_before: bool,
             loaded: bool) -> Stage:
    dmesg = l1.dmesg()
    l2_ok, detail = _try_l2(pool, l1, target)
    return Stage(l1.kernel, loaded, dmesg, l2_ok, detail, registered_before)


@pytest.fixture(scope="session")
def chain(target: Target, scenario: Scenario, pool: L1Pool) -> Iterator[dict[str, Stage]]:
    """Run the scenario; yield its stages: boot, after and (not on an LPAR) reset."""
    if not target.host.kexec_allowed and scenario.then is not None:
        pytest.skip(f"{target.host.name} does not allow kexec (allow_kexec: false)")
    skip_unless_offered(target, pool.session_for(target.host))
    if target.host.kind is Kind.POWERVM:
        yield _lpar_chain(pool.lpar(target), target, scenario, pool)
        return
    l1 = pool.boot(target, pool.l1_spec(target, kernel=scenario.first))
    try:
        stages = _chain(l1, target, scenario, pool)
        l1.reboot(target.host.timeouts.l1_boot)
        loaded = l1.load_kvm().ok
        stages["reset"] = _observe(pool, l1, target, False, loaded)
        yield stages
    finally:
        pool.stop(l1)


def _lpar_chain(lpar: Lpar, target: Target, scenario: Scenario,
                pool: L1Pool) -> dict[str, Stage]:
    if scenario.then is None:
        pytest.skip("the suite does not unload kvm-hv on an LPAR")
    if {scenario.first, scenario.then} != {lpar.kernel}:
        pytest.skip(f"{target.host.name} runs Linux {lpar.kernel}: it is kexec'd only into "
                    f"its own kernel series")
    # Nothing resets the LPAR between scenarios: a kexec earlier in this run
    # means its kernel is not the first since reset to register with its L0.
    return _chain(lpar, target, scenario, pool, registered_before=lpar.session.kexecs > 0)


def _chain(l1: L1, target: Target, scenario: Scenario, pool: L1Pool,
           registered_before: bool = False) -> dict[str, Stage]:
    """The scenario's first two stages: as booted, then after the kexec or reload."""
    stages: dict[str, Stage] = {}
    loaded = l1.load_kvm().ok
    # without KVM there is nothing to keep running; the first stage's check says so
    running = pool.boot_l2(l1, target) if scenario.l2_running and loaded else None
    stages["boot"] = _observe(pool, l1, target, registered_before, loaded)
    first = stages["boot"]
    before = registered_before or registers(target.api, first.kernel, first.kvm_hv_loaded)
    started = time.monotonic()
    if scenario.then is None:
        assert isinstance(l1, L1Guest)
        loaded = l1.reload_kvm_hv().ok
    else:
        l1.kexec(scenario.then, target.host.timeouts.l1_boot)
        loaded = l1.load_kvm().ok
    seconds = time.monotonic() - started
    if running:
        pool.forget(running)  # it went away with the kernel that ran it
    stages["after"] = replace(_observe(pool, l1, target, before, loaded), seconds=seconds)
    return stages


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" in metafunc.fixturenames:
        params = [pytest.param(s, id=s.id, marks=[pytest.mark.premerge] if s.id == PREMERGE
                               else []) for s in SCENARIOS]
        metafunc.parametrize("scenario", params, scope="session")


def _check(stage: Stage, target: Target, what: str) -> None:
    expected = l1_expectation(target.api, stage.kernel)
    problems = mismatches(expected, stage.api(), stage.dmesg)
    assert not problems, (
        f"{what}: L1 {stage.kernel} under {target.api.cap}=on: {'; '.join(problems)} "
        f"({expected.source}); kvm lines:\n{kvm_lines(stage.dmesg)}")
    assert stage.l2_ok == expected.kvm, (
        f"{what}: an L2 {'did not boot' if expected.kvm else 'booted'} in L1 {stage.kernel}, "
        f"expected {'KVM' if expected.kvm else 'no KVM'}:\n{stage.l2_detail}")


def _deviations(request: pytest.FixtureRequest, stage: Stage, target: Target,
                session: HostSession) -> None:
    if registers_again(target.api, stage.registered_before, stage.kernel):
        expect_deviations(request, (SET_CAPABILITIES_ONCE,), target.api, session)


def test_first_kernel(chain: dict[str, Stage], target: Target, host_session: HostSession,
                      request: pytest.FixtureRequest) -> None:
    _deviations(request, chain["boot"], target, host_session)
    _check(chain["boot"], target, "first boot")


def test_after_kexec_or_reload(chain: dict[str, Stage], target: Target,
                               host_session: HostSession, request: pytest.FixtureRequest,
                               record_property: pytest.RecordProperty) -> None:
    # from `kexec -l` (or rmmod) until kvm-hv was loaded in the new kernel: over SSH
    # for an LPAR, so it includes the reconnect
    record_property("kexec_or_reload_seconds", round(chain["after"].seconds, 1))
    _deviations(request, chain["after"], target, host_session)
    _check(chain["after"], target, "after kexec / kvm-hv reload")


def test_reset_restores_kvm(chain: dict[str, Stage], target: Target) -> None:
    if "reset" not in chain:
        pytest.skip("the suite does not reset an LPAR")
    _check(chain["reset"], target, "after reboot -f")
