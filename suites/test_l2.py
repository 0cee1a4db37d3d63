"""An L2 boots inside the L1 under -accel kvm, runs under KVM, and leaves the L1 clean.

The L1's kernel log is checked once the L2 has been stopped (its VM
destroyed); under API v2 QEMU's known deviations make those checks strict
xfails (see powernest.nested).
"""

from __future__ import annotations

import pytest

from powernest.testing import (
    IDLE_L2_SPINS,
    L1,
    L2_SHELL_TIMEOUT,
    TLB_INVALIDATE,
    VPA_ELEMENT,
    Deviation,
    L2Guest,
    SharedGuests,
    Target,
)


@pytest.fixture
def l1_log_after_l2(request: pytest.FixtureRequest, l1: L1, target: Target,
                    shared_guests: SharedGuests) -> str:
    """The shared L1's kernel log once its shared L2 ran and was stopped (read once for
    each shared L1)."""
    def read() -> str:
        request.getfixturevalue("l2")
        shared_guests.release(("l2", target.id))
        return l1.dmesg()
    return shared_guests.memo("l1_log_after_l2", target, read)


@pytest.mark.premerge
def test_l2_runs_under_kvm(l2: L2Guest) -> None:
    assert l2.runs_under_kvm(), (
        f"the L2 kernel does not see a KVM hypervisor: {l2.hardware_name()!r}")
    assert "pSeries" in l2.cpuinfo(), f"unexpected L2 cpuinfo:\n{l2.cpuinfo()}"
    assert "POWERNEST-L2-READY" in l2.log_path.read_text(), "L2 console log not kept"


@pytest.mark.premerge
@pytest.mark.deviation(IDLE_L2_SPINS)
def test_l2_shell_answers(l2: L2Guest) -> None:
    result = l2.run(["uname", "-r"], timeout=L2_SHELL_TIMEOUT)
    assert result.ok and result.stdout.strip() == l2.kernel_release


def _check_l1_log(dmesg: str, deviation: Deviation) -> None:
    assert deviation.evidence is not None
    hits = [line for line in dmesg.splitlines() if deviation.evidence.search(line)]
    assert not hits, (f"L1 kernel log after an L2 ran ({deviation.id}):\n"
                      + "\n".join(hits[:10]))


@pytest.mark.deviation(VPA_ELEMENT)
def test_l2_vpa_registered(l1_log_after_l2: str) -> None:
    _check_l1_log(l1_log_after_l2, VPA_ELEMENT)


@pytest.mark.deviation(TLB_INVALIDATE)
def test_l2_tlb_invalidation(l1_log_after_l2: str) -> None:
    _check_l1_log(l1_log_after_l2, TLB_INVALIDATE)
