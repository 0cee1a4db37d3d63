"""API fallback when a kernel is exec'd: kexec an L1 into a kernel with or without
API v2 (or the same one again), reload kvm-hv, reset the machine, and check
each time that the running kernel's API and KVM state are what the
expectations table says for the API its L0 offers.

Each (target, scenario) gets an L1 of its own; the scenario runs once
(`powernest.scenarios.run_chain`) and the cases below check what it observed
at each stage.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _pytest.mark import ParameterSet

from powernest.testing import (
    API,
    SCENARIOS,
    SET_CAPABILITIES_ONCE,
    Ability,
    Deviation,
    GuestPool,
    Scenario,
    Stage,
    Target,
    kvm_lines,
    l1_expectation,
    mismatches,
    registers_again,
    run_chain,
)

# The gate's chain: the API fallback, where it matters: a kernel without API v2 exec'd
# in an L1 whose L0 offers v2 (what its kvm-hv must then do is in the expectations table).
PREMERGE = ("6.12-to-6.1", API.V2)
ExpectDeviation = Callable[[Deviation], bool]


def _marks(scenario: Scenario, target: Target) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.premerge] if (scenario.id, target.api) == PREMERGE else []
    if scenario.then is None:
        marks.append(pytest.mark.requires(Ability.RELOADS_KVM_HV))
    return marks


def _scenarios(target: Target) -> list[ParameterSet]:
    return [pytest.param(s, id=s.id, marks=_marks(s, target)) for s in SCENARIOS]


pytestmark = [pytest.mark.kexec, pytest.mark.nightly,
              pytest.mark.per_target("scenario", _scenarios)]


@pytest.fixture(scope="session")
def chain(target: Target, scenario: Scenario, pool: GuestPool) -> dict[str, Stage]:
    """The scenario's stages: boot, after and (where the host resets an L1) reset."""
    return run_chain(pool, target, scenario)


def _check(stage: Stage, target: Target, what: str) -> None:
    expected = l1_expectation(target.api, stage.kernel)
    problems = mismatches(expected, stage.api(), stage.dmesg)
    assert not problems, (
        f"{what}: L1 {stage.kernel} under {target.api.machine_prop}: {'; '.join(problems)} "
        f"({expected.source}); kvm lines:\n{kvm_lines(stage.dmesg)}")
    assert stage.vm_ran == expected.kvm, (
        f"{what}: a VM {'did not run' if expected.kvm else 'ran'} under KVM in L1 "
        f"{stage.kernel}, expected {'KVM' if expected.kvm else 'no KVM'}:\n{stage.vm_detail}")


def _expect_registration_deviation(stage: Stage, target: Target,
                                   expect_deviation: ExpectDeviation) -> None:
    """A kernel that registers with a v2 L0 a second time since reset meets
    SET_CAPABILITIES_ONCE."""
    if registers_again(target.api, stage.registered_before, stage.kernel):
        expect_deviation(SET_CAPABILITIES_ONCE)


def test_first_kernel(chain: dict[str, Stage], target: Target,
                      expect_deviation: ExpectDeviation) -> None:
    _expect_registration_deviation(chain["boot"], target, expect_deviation)
    _check(chain["boot"], target, "first boot")


def test_after_kexec_or_reload(chain: dict[str, Stage], target: Target,
                               expect_deviation: ExpectDeviation,
                               record_property: pytest.RecordProperty) -> None:
    # from `kexec -l` (or rmmod) until kvm-hv was loaded in the new kernel: over SSH
    # for an LPAR, so it includes the reconnect
    record_property("kexec_or_reload_seconds", round(chain["after"].seconds, 1))
    _expect_registration_deviation(chain["after"], target, expect_deviation)
    _check(chain["after"], target, "after kexec / kvm-hv reload")


@pytest.mark.requires(Ability.RESETS_L1)
def test_reset_restores_kvm(chain: dict[str, Stage], target: Target) -> None:
    _check(chain["reset"], target, "after reboot -f")
