"""QEMU accepts or rejects each nested-virtualization cap on each CPU model as specified.

The machine is created stopped (`-S`), so each case costs a fraction of a second.
"""

from __future__ import annotations

import pytest

from powernest.testing import API, CPU_MODELS, Ability, Host, HostSession, cap_rule

CAP_SETS = (frozenset({API.V1}), frozenset({API.V2}), frozenset({API.V1, API.V2}))
CASES = [(cpu, caps) for cpu in CPU_MODELS for caps in CAP_SETS]


def _case_id(case: tuple[str, frozenset[API]]) -> str:
    cpu, caps = case
    return f"{cpu}-" + "+".join(a.value for a in API if a in caps)


@pytest.mark.premerge
@pytest.mark.requires(Ability.STARTS_L0_QEMU)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_cap_acceptance(host: Host, host_session: HostSession,
                        case: tuple[str, frozenset[API]]) -> None:
    cpu, caps = case
    if reason := host_session.l0_qemu.caps_unavailable(cpu, caps):
        pytest.skip(reason)
    rule = cap_rule(cpu, caps, host_session.kind.accel)
    check = host_session.l0_qemu.check_caps(cpu, caps, _case_id(case))
    said = "\n".join(check.errors) or "(no error)"
    machine = ",".join(a.machine_prop for a in API if a in caps)
    assert check.accepted == rule.accepted, (
        f"QEMU {'accepted' if check.accepted else 'rejected'} {machine} -cpu {cpu}; "
        f"expected {'acceptance' if rule.accepted else 'rejection'} ({rule.source}). "
        f"QEMU said: {said}")
    if not rule.accepted:
        assert check.errors and check.errors[0] == rule.error, (
            f"wrong rejection text ({rule.source}):\nexpected: {rule.error!r}\n"
            f"got:      {check.errors[0] if check.errors else said!r}")
