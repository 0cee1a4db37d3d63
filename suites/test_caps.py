"""QEMU accepts or rejects each nested-virtualization cap on each CPU model as specified.

The machine is created stopped (`-S`), so each case costs a fraction of a second.
"""

from __future__ import annotations

import pytest

from powernest.hosts import HostSession
from powernest.inventory import CPU_MODELS, Host, Kind
from powernest.nested import API, cap_rule, l0_supports, unsupported_reason
from powernest.plugin import RunContext
from powernest.qemu import GuestSpec, check_start

CAP_SETS = (frozenset({API.V1}), frozenset({API.V2}), frozenset({API.V1, API.V2}))
CASES = [(cpu, caps) for cpu in CPU_MODELS for caps in CAP_SETS]


def _case_id(case: tuple[str, frozenset[API]]) -> str:
    cpu, caps = case
    return f"{cpu}-" + "+".join(a.value for a in API if a in caps)


@pytest.mark.premerge
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_cap_acceptance(host: Host, host_session: HostSession, run_context: RunContext,
                        case: tuple[str, frozenset[API]]) -> None:
    cpu, caps = case
    if host.kind is Kind.POWERVM:
        pytest.skip("a powervm host has no L0 QEMU to start")
    if host.kind is Kind.KVM and cpu != host.cpu:
        pytest.skip(f"under KVM the guest CPU is the host's ({host.cpu})")
    missing = [a for a in caps if not l0_supports(a, host_session.qemu_version)]
    if missing and host_session.qemu_version:
        pytest.skip(unsupported_reason(missing[0], host_session.qemu_version))
    if not host_session.has_cpu(cpu):
        pytest.skip(f"{host_session.l0} has no {cpu} CPU model")
    accel = "kvm" if host.kind is Kind.KVM else "tcg"
    rule = cap_rule(cpu, caps, accel)
    spec = GuestSpec(name=f"pn.{run_context.run_id}.{host.name}.caps-{_case_id(case)}",
                     kernel="",
                     qemu=host_session.qemu, data_dir=host.qemu_data_dir, cpu=cpu,
                     accel=accel,
                     machine_props=(*(f"{a.cap}=on" for a in API if a in caps),
                                    *host.l1_machine))
    check = check_start(host_session.shell, spec)
    said = "\n".join(check.errors) or "(no error)"
    assert check.accepted == rule.accepted, (
        f"QEMU {'accepted' if check.accepted else 'rejected'} {spec.machine} -cpu {cpu}; "
        f"expected {'acceptance' if rule.accepted else 'rejection'} ({rule.source}). "
        f"QEMU said: {said}")
    if not rule.accepted:
        assert check.errors and check.errors[0] == rule.error, (
            f"wrong rejection text ({rule.source}):\nexpected: {rule.error!r}\n"
            f"got:      {check.errors[0] if check.errors else said!r}")
