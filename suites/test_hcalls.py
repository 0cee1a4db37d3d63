"""Hcall-level conformance: each row of the hcall table, made directly by pnhcall.ko
in an L1, must get the return code its source requires.

The rows (`powernest.hcalls.cases`) say what is called, what must come back and
why.  A row either matches, or differs (a failure, or a strict xfail naming a
known deviation of its L0), or its L0 dies: a verdict of its own (a failure of
type `l0-died` in junit.xml), which quotes what the L0 printed and the hcall
in flight.  Every case that is not green leaves its reproducer script beside
the run's logs (`powernest hcall replay FILE`).
"""

from __future__ import annotations

import pytest
from _pytest.mark import ParameterSet

from powernest.testing import (
    API,
    GATE_ROWS,
    V1_HCALLS,
    V2_HCALLS,
    Ability,
    Case,
    HcallRunner,
    Outcome,
    Target,
    cases_for_target,
    deviation,
    isolated,
)

pytestmark = pytest.mark.nightly


def _marks(case: Case, premerge: bool) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.premerge] if premerge else []
    if case.may_crash_l0:
        marks.append(pytest.mark.requires(Ability.CRASHES_L0))
    if isolated(case):   # an L1 of its own: not where the host itself is the one L1
        marks.append(pytest.mark.requires(Ability.BOOTS_L1))
    if case.deviations:
        marks.append(pytest.mark.deviation(*(deviation(d) for d in case.deviations)))
    return marks


def _params(target: Target) -> list[ParameterSet]:
    """The rows for the target's API; the gate (premerge) takes, for each hcall of
    that API, its first row that shares an L1 (cheap, and cannot crash the L0), and
    the behavioural rows of `GATE_ROWS`."""
    own = V1_HCALLS if target.api is API.V1 else V2_HCALLS
    firsts: dict[str, str] = {}
    for case in cases_for_target(target):
        if case.hcall in own and not isolated(case):
            firsts.setdefault(case.hcall, case.id)
    return [pytest.param(case, id=case.id, marks=_marks(
                case, firsts.get(case.hcall) == case.id or case.id in GATE_ROWS))
            for case in cases_for_target(target)]


@pytest.mark.per_target("hcall_case", _params)
def test_hcall(target: Target, hcall_case: Case, hcall_runner: HcallRunner,
               record_property: pytest.RecordProperty) -> None:
    run = hcall_runner.run(target, hcall_case)
    for name, value in run.properties(hcall_runner.out_dir.parent):
        record_property(name, value)
    if run.l0_death:
        pytest.fail(f"L0 DIED during {run.in_flight}: {run.l0_words}; "
                    f"reproducer: {run.reproducer}", pytrace=False)
    assert run.verdict.outcome is Outcome.MATCHES, (
        f"{hcall_case.summary}: {run.verdict} (source: {hcall_case.source})")
