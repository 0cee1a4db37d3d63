"""What the two POWER nested-virtualization APIs must do: the expectations.

Everything a suite compares against lives here, as data with its source:
which caps QEMU accepts on which CPU, which API an L1 kernel uses under
which cap, the kernel lines that prove it, and the known deviations of
hypervisors from the API.  Suites observe; this module says what is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class API(StrEnum):
    """A nested-virtualization API, named by the QEMU cap that offers it."""

    V1 = "nested-hv"    # H_SET_PARTITION_TABLE / H_ENTER_NESTED
    V2 = "nested-papr"  # H_GUEST_{GET,SET}_CAPABILITIES, H_GUEST_CREATE, H_GUEST_RUN_VCPU...

    @property
    def cap(self) -> str:
        """The pseries machine property that offers this API."""
        return f"cap-{self.value}"

    @property
    def machine_prop(self) -> str:
        """The -machine setting that turns this API on (the one place that spells it)."""
        return f"{self.cap}=on"

    @property
    def marker(self) -> str:
        """The pytest marker of the suites for this API."""
        return "api_v1" if self is API.V1 else "api_v2"


# The QEMU release that brought each API's cap (v1 is in every release we run).
QEMU_SINCE: dict[API, tuple[int, int]] = {API.V1: (0, 0), API.V2: (9, 0)}


def l0_supports(api: API, qemu_version: tuple[int, int, int] | None) -> bool:
    """Whether a QEMU L0 of this version has the cap for `api` (unknown: assume so)."""
    return qemu_version is None or qemu_version[:2] >= QEMU_SINCE[api]


def unsupported_reason(api: API, qemu_version: tuple[int, int, int]) -> str:
    since = ".".join(map(str, QEMU_SINCE[api]))
    return (f"QEMU {'.'.join(map(str, qemu_version))} has no {api.cap} "
            f"(added in QEMU {since})")


# Kernel lines (Linux arch/powerpc/kvm/book3s_hv_nested.c, kvmhv_nested_init).
FALLBACK_TO_V1 = "kvm-hv: nestedv2 get capabilities hcall failed, falling back to nestedv1"
NO_NESTING = "kvm-hv: Parent hypervisor does not support nesting"
SET_CAPS_FAILED = "kvm-hv: Could not configure parent hypervisor capabilities"

# Which APIs each L1 kernel speaks (v2 arrived in Linux 6.7).
KERNEL_APIS: dict[str, tuple[API, ...]] = {"6.12": (API.V1, API.V2), "6.1": (API.V1,)}

POWER9_AND_LATER = ("power9", "power10", "power11")
_QEMU_CAPS = "QEMU hw/ppc/spapr_caps.c"
_MEASURED = "measured on QEMU 10.0.2 TCG (LAB-NOTES)"
_MEASURED_KVM = ("measured with QEMU 10.0.2 under Linux 6.12 KVM-HV on the kvm twin "
                 "(powernv9)")
_KVM_NO_PAPR = ("KVM implementation does not support Nested-PAPR\n"
                "Try appending -machine cap-nested-papr=off")


@dataclass(frozen=True)
class CapRule:
    """Whether QEMU starts a pseries machine with these nested caps on this CPU."""

    cpus: tuple[str, ...]
    caps: frozenset[API]
    accels: tuple[str, ...]
    accepted: bool
    error: str | None
    source: str


CAP_RULES: tuple[CapRule, ...] = (
    CapRule(("power8",), frozenset({API.V1}), ("tcg", "kvm"), False,
            "Nested-HV only supported on POWER9 and later\n"
            "Try appending -machine cap-nested-hv=off",
            f"{_QEMU_CAPS} cap_nested_kvm_hv_apply; {_MEASURED}"),
    CapRule(("power8",), frozenset({API.V2}), ("tcg", "kvm"), False,
            "Nested-PAPR only supported on POWER9 and later\n"
            "Try appending -machine cap-nested-papr=off",
            f"{_QEMU_CAPS} cap_nested_papr_apply; {_MEASURED}"),
    CapRule(("power8",), frozenset({API.V1, API.V2}), ("tcg", "kvm"), False,
            "Nested-HV only supported on POWER9 and later\n"
            "Try appending -machine cap-nested-hv=off",
            f"{_QEMU_CAPS}: nested-hv is applied before nested-papr; {_MEASURED}"),
    CapRule(POWER9_AND_LATER, frozenset({API.V1, API.V2}), ("tcg",), False,
            "Nested-HV APIs are mutually exclusive\n"
            "Please use either cap-nested-hv or cap-nested-papr to proceed.",
            f"{_QEMU_CAPS} cap_nested_papr_apply; {_MEASURED}"),
    CapRule(POWER9_AND_LATER, frozenset({API.V1, API.V2}), ("kvm",), False,
            _KVM_NO_PAPR,
            f"{_QEMU_CAPS} cap_nested_papr_apply refuses KVM before it checks the caps "
            f"against each other; {_MEASURED_KVM}"),
    CapRule(POWER9_AND_LATER, frozenset({API.V1}), ("tcg", "kvm"), True, None,
            f"{_QEMU_CAPS} cap_nested_kvm_hv_apply; {_MEASURED}"),
    CapRule(POWER9_AND_LATER, frozenset({API.V2}), ("tcg",), True, None,
            f"{_QEMU_CAPS} cap_nested_papr_apply; {_MEASURED}"),
    CapRule(POWER9_AND_LATER, frozenset({API.V2}), ("kvm",), False, _KVM_NO_PAPR,
            f"{_QEMU_CAPS} cap_nested_papr_apply (kvm_enabled branch); {_MEASURED_KVM}"),
)


def cap_rule(cpu: str, caps: frozenset[API], accel: str) -> CapRule:
    """The rule for starting QEMU with `caps` on `cpu`."""
    for rule in CAP_RULES:
        if cpu in rule.cpus and caps == rule.caps and accel in rule.accels:
            return rule
    raise LookupError(f"no cap rule for cpu={cpu} caps={sorted(caps)} accel={accel}")


@dataclass(frozen=True)
class L1Expectation:
    """What an L1 kernel must do when kvm-hv loads under the API its L0 offers."""

    api: API | None             # the API the L1 uses; None: no KVM in the L1
    present: tuple[str, ...]    # kernel lines that must be in dmesg
    absent: tuple[str, ...]     # kernel lines that must not be
    source: str

    @property
    def kvm(self) -> bool:
        return self.api is not None


@dataclass(frozen=True)
class L1Rule:
    offered: API | None         # the cap the L0 offers (None: no nested cap)
    kernel: str                 # "6.12" (v1 and v2) or "6.1" (v1 only)
    expect: L1Expectation


_LINUX_612 = "Linux 6.12 kvmhv_nested_init probes H_GUEST_GET_CAPABILITIES first"
_LINUX_61 = "Linux 6.1 speaks only API v1 (v2 came in 6.7)"
_QEMU_HCALLS = ("QEMU hw/ppc/spapr_nested.c registers the v1 hcalls only with cap-nested-hv "
                "and the v2 hcalls only with cap-nested-papr")

L1_RULES: tuple[L1Rule, ...] = (
    L1Rule(API.V1, "6.12", L1Expectation(
        API.V1, (FALLBACK_TO_V1,), (NO_NESTING, SET_CAPS_FAILED),
        f"{_LINUX_612}, gets H_FUNCTION and falls back to v1; {_QEMU_HCALLS}; {_MEASURED}")),
    L1Rule(API.V2, "6.12", L1Expectation(
        API.V2, (), (FALLBACK_TO_V1, NO_NESTING, SET_CAPS_FAILED),
        f"PAPR nested API v2; {_LINUX_612} and keeps v2 when it succeeds; {_MEASURED}")),
    L1Rule(None, "6.12", L1Expectation(
        None, (FALLBACK_TO_V1, NO_NESTING), (),
        f"{_LINUX_612}, then H_SET_PARTITION_TABLE fails: no nesting; {_MEASURED}")),
    L1Rule(API.V1, "6.1", L1Expectation(
        API.V1, (), (NO_NESTING,), f"{_LINUX_61}; {_QEMU_HCALLS}; {_MEASURED}")),
    L1Rule(API.V2, "6.1", L1Expectation(
        None, (NO_NESTING,), (),
        f"{_LINUX_61}; {_QEMU_HCALLS}, so H_SET_PARTITION_TABLE fails; {_MEASURED}")),
    L1Rule(None, "6.1", L1Expectation(
        None, (NO_NESTING,), (), f"{_LINUX_61}; no nested cap on L0; {_MEASURED}")),
)


def l1_expectation(offered: API | None, kernel: str) -> L1Expectation:
    """What an L1 running `kernel` must do when its L0 offers `offered`."""
    for rule in L1_RULES:
        if rule.offered == offered and rule.kernel == kernel:
            return rule.expect
    raise LookupError(f"no L1 rule for offered={offered} kernel={kernel}")


def mismatches(expected: L1Expectation, api: API | None, dmesg: str) -> list[str]:
    """How an L1's observed API and kernel log differ from the expectation (empty: none)."""
    problems = []
    if api != expected.api:
        problems.append(f"uses {api.value if api else 'no API (no KVM)'}, expected "
                        f"{expected.api.value if expected.api else 'no API (no KVM)'}")
    problems += [f"missing from dmesg: {line!r}" for line in expected.present
                 if line not in dmesg]
    problems += [f"unexpected in dmesg: {line!r}" for line in expected.absent if line in dmesg]
    return problems


def kvm_lines(dmesg: str) -> str:
    """The lines of a kernel log that mention KVM, for a failure message."""
    return "\n".join(line for line in dmesg.splitlines() if "kvm" in line.lower())


def observed_api(dmesg: str, kernel: str, kvm_hv_loaded: bool) -> API | None:
    """The API an L1 uses, read from its kernel log.

    Under v1 a v2-capable kernel says it falls back; under v2 it says nothing,
    so a loaded kvm-hv without the fallback line means v2.  A v1-only kernel
    can only use v1.
    """
    if not kvm_hv_loaded:
        return None
    if FALLBACK_TO_V1 in dmesg or API.V2 not in KERNEL_APIS[kernel]:
        return API.V1
    return API.V2


class NestedCode(StrEnum):
    """Whose code serves an L1's nested-API hcalls."""

    QEMU = "QEMU"                   # a TCG pseries L0: hw/ppc/spapr_nested.c
    LINUX_KVM = "Linux KVM-HV"      # a KVM host's kernel: book3s_hv_nested.c
    POWERVM = "PowerVM"


@dataclass(frozen=True)
class Deviation:
    """A known way a hypervisor departs from the API, reported as a strict xfail."""

    id: str
    api: API
    since: tuple[int, int]          # first version affected: QEMU's, Linux's, PowerVM's firmware
    fixed_in: tuple[int, int] | None
    summary: str
    evidence: re.Pattern[str] | None  # the log line that shows it, where there is one
    source: str
    # whether an L1 whose case met it is left unfit for the next case (its shared L1 is
    # then replaced: `powernest.plugin.shared`)
    damages_l1: bool = False
    l0: NestedCode = NestedCode.QEMU   # whose nested code has it
    # where it was seen, beyond a version: for PowerVM the processor and firmware level
    # the LPAR reports (`kinds.L0`), whose answers depend on both
    seen_on: str = ""

    def applies(self, api: API, qemu_version: tuple[int, int, int] | None,
                l0: NestedCode = NestedCode.QEMU) -> bool:
        """Whether an L0 whose nested code is `l0` (for QEMU: of this version), offering
        `api`, has this deviation.

        An L0 of unknown version (QEMU seen from inside an LPAR, any Linux KVM-HV) has
        every deviation of its code that no release has fixed yet.
        """
        if api is not self.api or l0 is not self.l0:
            return False
        if qemu_version is None or l0 is not NestedCode.QEMU:
            return self.fixed_in is None
        version = qemu_version[:2]
        return version >= self.since and (self.fixed_in is None or version < self.fixed_in)

    def reason(self, qemu_version: tuple[int, int, int] | None) -> str:
        upto = f"before {self.fixed_in[0]}.{self.fixed_in[1]}" if self.fixed_in else "no fix yet"
        if self.l0 is not NestedCode.QEMU:
            seen = f"; seen on {self.seen_on}" if self.seen_on else ""
            return (f"known deviation {self.id}: {self.summary} [{self.l0.value} "
                    f"{self.since[0]}.{self.since[1]} and later, {upto}{seen}]")
        seen = ".".join(map(str, qemu_version)) if qemu_version else "of unknown version"
        return (f"known deviation {self.id}: {self.summary} "
                f"[QEMU {self.since[0]}.{self.since[1]} and later, {upto}; L0 here: QEMU {seen}]")


VPA_ELEMENT = Deviation(
    "qemu-v2-vpa-element", API.V2, (9, 0), None,
    "QEMU has no handler for Guest State Buffer element 0x0C02 (VPA), so "
    "H_GUEST_SET_STATE returns H_P3 and the L1 cannot register its L2's VPA",
    re.compile(r"KVM-NESTEDv2: couldn't register the L2 VPA \(rc=-?\d+\)"),
    "QEMU hw/ppc/spapr_nested.c guest_state_element_types (no 0x0C02); "
    "L0 -d guest_errors: 'Element ID 0c02 unknown'; measured on QEMU 10.0.2")

TLB_INVALIDATE = Deviation(
    "qemu-v2-tlb-invalidate", API.V2, (9, 0), None,
    "H_TLB_INVALIDATE is not registered when only the v2 hcalls are, so the "
    "L1's partition-scoped TLB flushes fail with H_FUNCTION",
    re.compile(r"KVM: TLB (?:LPID|page) invalidation hcall failed, rc=-?\d+"),
    "QEMU hw/ppc/spapr_nested.c spapr_register_nested_papr; measured on QEMU 10.0.2")

IDLE_L2_SPINS = Deviation(
    "nestedv2-idle-l2-spins", API.V2, (10, 0), None,
    "an idle L2 under v2 never takes its console interrupt: its vCPU thread in the "
    "L1 spins at 100% system time and the L2 shell never reads its input "
    "(under v1 the same L1 and L2 answer at once); whether QEMU's H_GUEST_RUN_VCPU "
    "or Linux's nestedv2 client is at fault is not yet known",
    None,
    "measured with QEMU 10.0.2 (TCG L0) and Linux 6.12.95 L1/L2: L2 vCPU thread stime "
    "+300 ticks in 3 s, no answer in 40 s, also with nohz=off in the L2",
    damages_l1=True)

SMP_L2_STALLS = Deviation(
    "nestedv2-smp-l2-stalls", API.V2, (10, 0), None,
    "an L2 with two vCPUs in a one-vCPU L1 waits under v2 for its own cross-CPU calls: "
    "it reaches its prompt after 45 to 75 s of its own clock (under v1 after 4 to 6 s), "
    "and at times one of its CPUs waits 20 s or more for the other to answer, a soft "
    "lockup in the L2 (smp_call_function_many_cond); like nestedv2-idle-l2-spins, an "
    "interrupt for an idle L2 vCPU that does not arrive",
    None,
    "measured with QEMU 10.0.2 (TCG L0) and Linux 6.12.95 L1/L2 in make run: prompt at "
    "46.6, 61.4 and 71.9 s of L2 uptime; 'soft lockup - CPU#0 stuck for 23s! [init:129]' "
    "in 3 of about 7 runs; under v1 3.9 to 5.8 s; its L1 then logged soft lockups (stuck "
    "for 23 s, later 115 s) in the cases after it (make run from a clean clone, 2026-12-07)",
    damages_l1=True)

HDEC_LOST = Deviation(
    "qemu-tcg-nested-hdec-lost", API.V1, (7, 0), None,
    "at times QEMU's TCG L0 does not end an L2 run at the hdec_expiry its L1 gave "
    "H_ENTER_NESTED: the L2 runs on until it exits by itself, and its L1, whose CPU "
    "waits in that one hcall, logs a soft lockup; seen where an L2 vCPU spins waiting "
    "for another that only its L1 can run (an L2 with more vCPUs than its L1)",
    None,
    "measured with QEMU 10.0.2 (TCG L0) and Linux 6.12.95 L1/L2 (bench/smp_l2_lockups.py; "
    "the L1's kvm_guest_enter/exit trace, powernest.l2runs): booting a 2-vCPU L2 in a "
    "1-vCPU L1 beside another L0, the L1 soft-locked or stalled in 8 of 52 boots (p9 1 of "
    "16, p10 7 of 36), alone in 0 of 12, in a 2-vCPU L1 in 0 of 32, its L0 waiting at most "
    "0.4 s for a host CPU; each of the 4 traced incidents was one L2 run of 21 to 27 s "
    "ended by the L2's own hcall (its RCU stall report), while the L1 bounds each run by "
    "its next timer event (4 ms at HZ=250; Linux kvmhv_p9_guest_entry), and the longest "
    "of the 10,000 to 21,000 runs of a sound boot lasted 6 ms to 0.9 s; in "
    "test_l2_with_two_vcpus, 2 of 12 boots beside another L0, 0 of 9 in three make runs, "
    "2 of 3 in a make run beside a CPU hog (runs of 21.0 s); QEMU 7.2 not measured",
    damages_l1=True)

SET_CAPABILITIES_ONCE = Deviation(
    "qemu-v2-set-capabilities-once", API.V2, (9, 0), None,
    "QEMU accepts H_GUEST_SET_CAPABILITIES only once per machine reset and answers a "
    "second call with H_STATE, so an L1 whose kvm-hv already registered loses KVM after "
    "a kexec or a kvm-hv reload until the next reset",
    re.compile(r"kvm-hv: Could not configure parent hypervisor capabilities \(rc=-75\)"),
    "QEMU hw/ppc/spapr_nested.c h_guest_set_capabilities (capabilities_set, cleared only "
    "in spapr_nested_reset); measured on QEMU 10.0.2, 6 of 6 kexecs; a QEMU with that "
    "check removed kept KVM across the kexec (LAB-NOTES)")

DEVIATIONS: tuple[Deviation, ...] = (VPA_ELEMENT, TLB_INVALIDATE, IDLE_L2_SPINS,
                                     SMP_L2_STALLS, HDEC_LOST, SET_CAPABILITIES_ONCE)


def registers(offered: API, kernel: str, kvm_hv_loaded: bool) -> bool:
    """Whether loading kvm-hv in `kernel` registered with L0 (H_GUEST_SET_CAPABILITIES)."""
    return offered is API.V2 and kvm_hv_loaded and API.V2 in KERNEL_APIS[kernel]


def registers_again(offered: API, registered_before: bool, kernel: str) -> bool:
    """Whether `kernel` calls H_GUEST_SET_CAPABILITIES a second time since the last reset.

    A v2-capable kernel registers when kvm-hv loads under v2; `registered_before`
    says an earlier kernel (or kvm-hv load) in this machine's life already did.
    """
    return offered is API.V2 and registered_before and API.V2 in KERNEL_APIS[kernel]
