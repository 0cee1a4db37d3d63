"""The expectations table: each rule says what it says, and flipping one is caught."""

from __future__ import annotations

import dataclasses

import pytest

from powernest.nested import (
    API,
    CAP_RULES,
    DEVIATIONS,
    FALLBACK_TO_V1,
    L1_RULES,
    NO_NESTING,
    NestedCode,
    cap_rule,
    l1_expectation,
    mismatches,
    observed_api,
)

V1_DMESG = f"[ 3.1] {FALLBACK_TO_V1} (rc=-2)\n"
V2_DMESG = "[ 3.1] kvm: something unrelated\n"


def test_every_rule_names_its_source() -> None:
    assert all(r.source for r in CAP_RULES)
    assert all(r.expect.source for r in L1_RULES)
    assert all(d.source and (d.evidence is None or d.evidence.pattern) for d in DEVIATIONS)


def test_cap_rules_are_unambiguous() -> None:
    for cpu in ("power8", "power9", "power10", "power11"):
        for caps in ({API.V1}, {API.V2}, {API.V1, API.V2}):
            for accel in ("tcg", "kvm"):
                matches = [r for r in CAP_RULES if cpu in r.cpus and r.caps == caps
                           and accel in r.accels]
                assert len(matches) == 1, (cpu, caps, accel)


def test_cap_rule_examples() -> None:
    assert cap_rule("power9", frozenset({API.V2}), "tcg").accepted
    assert not cap_rule("power9", frozenset({API.V2}), "kvm").accepted
    assert "mutually exclusive" in (cap_rule("power10", frozenset(API), "tcg").error or "")


@pytest.mark.parametrize(("offered", "kernel", "api"), [
    (API.V1, "6.12", API.V1), (API.V2, "6.12", API.V2), (None, "6.12", None),
    (API.V1, "6.1", API.V1), (API.V2, "6.1", None), (None, "6.1", None)])
def test_l1_expectations(offered: API | None, kernel: str, api: API | None) -> None:
    assert l1_expectation(offered, kernel).api == api


def test_observed_api_from_dmesg() -> None:
    assert observed_api(V1_DMESG, "6.12", True) is API.V1
    assert observed_api(V2_DMESG, "6.12", True) is API.V2
    assert observed_api(V2_DMESG, "6.1", True) is API.V1
    assert observed_api(V1_DMESG + NO_NESTING, "6.12", False) is None


def test_mismatches_name_each_difference() -> None:
    v1_612 = l1_expectation(API.V1, "6.12")
    assert mismatches(v1_612, API.V1, V1_DMESG) == []
    problems = mismatches(v1_612, API.V2, V2_DMESG)
    assert problems[0] == "uses nested-papr, expected nested-hv"
    assert any("missing from dmesg" in p and "falling back" in p for p in problems)


def test_deviation_applies_by_api_and_version() -> None:
    vpa = DEVIATIONS[0]
    assert vpa.applies(API.V2, (10, 0, 2)) and vpa.applies(API.V2, (9, 0, 0))
    assert not vpa.applies(API.V1, (10, 0, 2))
    assert not vpa.applies(API.V2, (8, 2, 0))
    assert vpa.applies(API.V2, None), "an unknown QEMU has every unfixed deviation"
    fixed = dataclasses.replace(vpa, fixed_in=(11, 0))
    assert not fixed.applies(API.V2, None) and not fixed.applies(API.V2, (11, 0, 0))
    reason = vpa.reason((10, 0, 2))
    assert vpa.id in reason and "10.0.2" in reason


def test_a_deviation_applies_only_where_its_nested_code_serves_the_l1s() -> None:
    vpa = DEVIATIONS[0]   # QEMU's
    assert not vpa.applies(API.V2, (10, 0, 2), NestedCode.LINUX_KVM)
    assert not vpa.applies(API.V2, None, NestedCode.POWERVM)
    kvm = dataclasses.replace(vpa, l0=NestedCode.LINUX_KVM, since=(6, 12))
    assert kvm.applies(API.V2, (10, 0, 2), NestedCode.LINUX_KVM), "the QEMU version is not its"
    assert not kvm.applies(API.V2, (10, 0, 2), NestedCode.QEMU)
    assert "[Linux KVM-HV 6.12 and later, no fix yet]" in kvm.reason((10, 0, 2))


def test_a_powervm_deviation_says_which_processor_and_firmware_it_was_seen_on() -> None:
    seen = dataclasses.replace(DEVIATIONS[0], l0=NestedCode.POWERVM, since=(10, 50),
                               seen_on="POWER10 (architected), firmware FW1050.00 (22)")
    assert seen.applies(API.V2, None, NestedCode.POWERVM)
    assert seen.reason(None).endswith(
        "[PowerVM 10.50 and later, no fix yet; seen on POWER10 (architected), "
        "firmware FW1050.00 (22)]")
