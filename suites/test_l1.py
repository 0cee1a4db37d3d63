"""An L1 boots under each API, loads kvm-hv, and uses the API its L0 offers.

On a powervm host the L1 is the LPAR itself, running its own kernel.
"""

from __future__ import annotations

import pytest

from powernest.testing import (
    KERNEL_APIS,
    L1,
    Target,
    kvm_lines,
    l1_expectation,
    mismatches,
    observed_api,
)

pytestmark = pytest.mark.premerge


def test_l1_boots(l1: L1) -> None:
    assert l1.kernel in KERNEL_APIS, (
        f"the L1 runs Linux {l1.kernel_release}, a kernel the expectations do not know "
        f"(they know {', '.join(KERNEL_APIS)})")
    if l1.expected_release is not None:   # booted by the suite with a lab kernel
        assert l1.kernel_release == l1.expected_release
    assert l1.run(["true"]).ok


def test_l1_kvm_hv_loads(l1: L1, target: Target) -> None:
    expected = l1_expectation(target.api, l1.kernel)
    result = l1.kvm_load
    assert result is not None and result.ok == expected.kvm, (
        f"insmod kvm-hv.ko exited {result.exit_code}: {result.stdout.strip()!r}; "
        f"expected it to {'load' if expected.kvm else 'fail'} ({expected.source})")
    assert l1.kvm_hv_loaded() == expected.kvm


def test_l1_dev_kvm(l1: L1) -> None:
    assert l1.has_dev_kvm(), "/dev/kvm is missing in the L1"


def test_l1_uses_offered_api(l1: L1, target: Target) -> None:
    expected = l1_expectation(target.api, l1.kernel)
    dmesg = l1.dmesg()
    observed = observed_api(dmesg, l1.kernel, l1.kvm_hv_loaded())
    problems = mismatches(expected, observed, dmesg)
    assert not problems, (
        f"L1 {l1.kernel_release} under {target.api.machine_prop}: {'; '.join(problems)} "
        f"({expected.source}); kvm lines of dmesg:\n{kvm_lines(dmesg)}")
