"""API v1 (nested-hv) cases, and the v2 hcalls on an L0 that offers v1.

The v1 API has no PAPR text: Linux Documentation/arch/powerpc/kvm-nested.rst
describes it, and its reference L0 is Linux KVM itself
(arch/powerpc/kvm/book3s_hv_nested.c, "REF" below), which every row quotes.
QEMU lines are from hw/ppc/spapr_nested.c as in `cases_v2`.
"""

from __future__ import annotations

from powernest.hcalls import numbers
from powernest.hcalls.model import (
    OUTSIDE_RAM,
    Addr,
    Alloc,
    Call,
    Case,
    Role,
    Step,
    Write,
    hv_state,
    rc,
)
from powernest.nested import API

V1 = API.V1
REF = "reference L0 Linux book3s_hv_nested.c"
PTBL, ENTER = "H_SET_PARTITION_TABLE", "H_ENTER_NESTED"
TLBIE, COPY = "H_TLB_INVALIDATE", "H_COPY_TOFROM_GUEST"
TABLE = (Alloc("ptbl"), Call("set-ptbl", PTBL, (Addr("ptbl"),), Role.SETUP))
CLEAR = Call("clear-ptbl", PTBL, (0,), Role.CLEANUP)
OPTIONAL = ("QEMU h_copy_tofrom_guest answers H_FUNCTION ('not required, L1 KVM will take a "
            "slow path'), which Linux L1s handle; an L0 that implements it answers "
            "H_PARAMETER")


def cleared(*steps: Step) -> tuple[Step, ...]:
    """`steps`, then the partition table cleared, so the L0 is as before."""
    return (*steps, CLEAR)


# Measured: QEMU 7.2.22 (TCG L0) aborts; QEMU 10.0.2 answers H_PARAMETER.
LPID_0_ABORT = ("QEMU 7.2 hw/ppc/spapr_hcall.c:1793 spapr_exit_nested: "
                "Assertion `env->spr[SPR_LPIDR] != 0' failed (SIGABRT)")


def _enter(hv: int | Addr, regs: int | Addr, *expect: str,
           head: bytes = hv_state(1, 1)) -> tuple[Step, ...]:
    return (*TABLE, Alloc("hv"), Alloc("regs"), Write("hv", (head,)),
            Call("enter", ENTER, (hv, regs), expect=rc(*expect)))


CASES_V1: tuple[Case, ...] = (
    Case("v1-set-partition-table", V1, PTBL, "a 4 KiB table in L1 RAM",
         cleared(Alloc("ptbl"), Call("set-ptbl", PTBL, (Addr("ptbl"),))),
         "kvm-nested.rst: the L1 registers its partition table "
         f"with h_set_partition_table(); {REF} kvmhv_set_partition_table; Linux L1 "
         "kvmhv_nested_init", leaves_state=False),
    Case("v1-set-partition-table-zero", V1, PTBL, "PTCR 0 (unregister)",
         cleared(Call("set-ptbl", PTBL, (0,))),
         f"Linux L1 kvmhv_nested_exit unregisters with H_SET_PARTITION_TABLE(0); {REF} "
         "accepts it (size 0, base 0 in RAM)", leaves_state=False),
    Case("v1-set-partition-table-size-too-large", V1, PTBL, "PRTS 31 (a 2^43-byte table)",
         cleared(Alloc("ptbl"), Call("set-ptbl", PTBL, (Addr("ptbl", 0x1F),),
                                     expect=rc("H_PARAMETER"))),
         f"{REF} kvmhv_set_partition_table: PRTS beyond the L0's limit -> H_PARAMETER (QEMU "
         "h_set_ptbl: the same for PRTS > 4)", leaves_state=False),
    Case("v1-set-partition-table-outside-ram", V1, PTBL, "a table base far above the L1's RAM",
         cleared(Call("set-ptbl", PTBL, (OUTSIDE_RAM,), expect=rc("H_PARAMETER"))),
         f"{REF} kvmhv_set_partition_table: base not a visible gfn -> H_PARAMETER",
         leaves_state=False, deviations=("qemu-v1-partition-table-base",)),
    Case("v1-enter-nested-no-partition-table", V1, ENTER, "H_ENTER_NESTED with no table set",
         cleared(Call("clear", PTBL, (0,), Role.SETUP), Alloc("hv"), Alloc("regs"),
                 Write("hv", (hv_state(1, 1),)),
                 Call("enter", ENTER, (Addr("hv"), Addr("regs")),
                      expect=rc("H_NOT_AVAILABLE"))),
         f"{REF} kvmhv_enter_nested_guest: l1_ptcr == 0 -> H_NOT_AVAILABLE (QEMU the same)",
         leaves_state=False),
    Case("v1-enter-nested-hv-state-version-3", V1, ENTER,
         "hv_guest_state version 3 (latest is 2)",
         cleared(*_enter(Addr("hv"), Addr("regs"), "H_PARAMETER", head=hv_state(3, 1))),
         f"{REF} kvmhv_read_guest_state_and_regs: hv_guest_state_size() of an unknown version "
         "fails, so kvmhv_enter_nested_guest answers H_PARAMETER (its later 'version > "
         "HV_GUEST_STATE_VERSION -> H_P2' is never reached); measured on Linux 6.12 KVM-HV "
         "(the kvm twin) and QEMU 10.0.2", leaves_state=False),
    Case("v1-enter-nested-lpid-0", V1, ENTER, "hv_guest_state with LPID 0",
         cleared(*_enter(Addr("hv"), Addr("regs"), "H_PARAMETER", *numbers.EXITS,
                         head=hv_state(1, 0))),
         "spec silent (kvm-nested.rst bounds no LPID; entering creates the L2 "
         "implicitly), so refusing and entering both conform, and the answer is recorded: "
         "QEMU h_enter_nested refuses LPID 0 with H_PARAMETER (in QEMU LPID 0 is the L1 "
         "itself: spapr_get_pate asserts lpid != 0 in nested mode); Linux KVM-HV "
         "kvmhv_get_nested bounds it only by the table's size and runs it under a shadow "
         "LPID of its own (an exit comes back); Linux L1s never use LPID 0 for an L2",
         leaves_state=True, crash_evidence=LPID_0_ABORT,
         deviations=("qemu-v1-enter-nested-lpid-0-abort",)),
    Case("v1-enter-nested-hv-state-outside-ram", V1, ENTER,
         "hv_guest_state address outside RAM",
         cleared(*_enter(OUTSIDE_RAM, Addr("regs"), "H_PARAMETER")),
         f"{REF} kvmhv_enter_nested_guest: unreadable hv_guest_state -> H_PARAMETER",
         leaves_state=False, crash_evidence=LPID_0_ABORT,
         deviations=("qemu-v1-enter-nested-lpid-0-abort",)),
    Case("v1-enter-nested-regs-outside-ram", V1, ENTER, "pt_regs address outside RAM",
         cleared(*_enter(Addr("hv"), OUTSIDE_RAM, "H_PARAMETER")),
         f"{REF} kvmhv_enter_nested_guest: unreadable pt_regs -> H_PARAMETER",
         leaves_state=True, deviations=("qemu-v1-enter-nested-regs",)),
    Case("v1-tlb-invalidate-lpid", V1, TLBIE,
         "invalidate LPID 1 as Linux's kvmhv_flush_lpid does",
         cleared(*TABLE, Call("tlbie", TLBIE, (0x90000, 1, 0x800))),
         f"{REF} kvmhv_do_nested_tlbie: RIC=2, R=1, IS=2 is valid (no such guest: nothing to "
         "do) -> H_SUCCESS", leaves_state=False),
    Case("v1-tlb-invalidate-not-radix", V1, TLBIE, "R=0 (HPT) in the tlbie encoding",
         cleared(*TABLE, Call("tlbie", TLBIE, (0x80000, 1, 0x800), expect=rc("H_PARAMETER"))),
         f"{REF} kvmhv_emulate_priv_tlbie: 'r != 1 -> Only radix supported' -> H_PARAMETER",
         leaves_state=False, deviations=("qemu-v1-tlb-invalidate-unchecked",)),
    Case("v1-tlb-invalidate-ric-3", V1, TLBIE, "RIC=3 in the tlbie encoding",
         cleared(*TABLE, Call("tlbie", TLBIE, (0xD0000, 1, 0x800), expect=rc("H_PARAMETER"))),
         f"{REF} kvmhv_emulate_priv_tlbie: 'ric == 3 -> No cluster bombs for radix' -> "
         "H_PARAMETER", leaves_state=False, deviations=("qemu-v1-tlb-invalidate-unchecked",)),
    Case("v1-copy-tofrom-guest-both-buffers", V1, COPY, "both a to and a from buffer",
         cleared(*TABLE, Alloc("buf"),
                 Call("copy", COPY, (1, 0, 0, Addr("buf"), Addr("buf", 8), 8),
                      expect=rc("H_PARAMETER", "H_FUNCTION"))),
         f"{REF} kvmhv_copy_tofrom_guest_nested: 'One must be NULL' -> H_PARAMETER; {OPTIONAL}",
         leaves_state=False),
    Case("v1-copy-tofrom-guest-bad-eaddr", V1, COPY, "an effective address with bits 0-11 set",
         cleared(*TABLE, Alloc("buf"),
                 Call("copy", COPY, (1, 0, 0xFFF0_0000_0000_0000, Addr("buf"), 0, 8),
                      expect=rc("H_PARAMETER", "H_FUNCTION"))),
         f"{REF} kvmhv_copy_tofrom_guest_nested: eaddr & (0xFFF << 52) -> H_PARAMETER; "
         f"{OPTIONAL}", leaves_state=False),
) + tuple(
    Case(f"v1-l0-rejects-{name[2:].lower().replace('_', '-')}", V1, name,
         f"{name} on an L0 that offers only the v1 API",
         (Call("call", name, (0, 0, 0, 0, 0), expect=rc("H_FUNCTION")),),
         "the v2 hcalls belong to nested-papr: QEMU registers them only with "
         "cap-nested-papr; Linux 6.12 falls back to v1 on H_GUEST_GET_CAPABILITIES' "
         "H_FUNCTION (rc=-2, LAB-NOTES)", leaves_state=False)
    for name in numbers.V2_HCALLS)
