"""API v2 (nested-papr) H_GUEST_GET_STATE / H_GUEST_SET_STATE cases.

Sources as in `cases_v2`.  The element errors: kvm-nested.rst gives
H_Invalid_Element_Id / _Size / _Value with R4 = the array index of the bad
element; a row that breaks a table rule the document names no code for
(read-only, scope) accepts any of the three.
"""

from __future__ import annotations

from powernest.hcalls import gsb
from powernest.hcalls.model import (
    NO_SUCH_GUEST,
    OUTSIDE_RAM,
    SUCCESS,
    Addr,
    Alloc,
    Arg,
    Call,
    Case,
    Expect,
    Item,
    Role,
    Step,
    Var,
    caps,
    delete,
    gsb_write,
    guest,
    guest_with_vcpu,
    rc,
    set_state,
    state,
    u64,
)
from powernest.nested import API

V2 = API.V2
RST = "kvm-nested.rst"
GET, SET = "H_GUEST_GET_STATE", "H_GUEST_SET_STATE"
WIDE = gsb.FLAG_GUEST_WIDE
CONVENTION = "PAPR convention: bad parameter n -> H_Pn"
FLAG_ERROR = rc("H_PARAMETER", "H_UNSUPPORTED_FLAG")
ELEMENT_ERROR = ("H_INVALID_ELEMENT_ID", "H_INVALID_ELEMENT_SIZE", "H_INVALID_ELEMENT_VALUE")
VALUE_OK_OR_REFUSED = rc("H_SUCCESS", "H_INVALID_ELEMENT_VALUE")
GPR3 = gsb.element(0x1003, 0x1234)
READY = (*guest_with_vcpu(), Alloc("gsb"))
GUEST = Var("guest")
ELEMENT_DEVIATION = "qemu-v2-gsb-element-errors"
VALUE_SOURCE = (f"{RST} lists no constraint on this value beyond the element's size; an L0 "
                "that cannot use it answers H_Invalid_Element_Value (R4 = index); it must "
                "not abort")


def _element_error(*codes: str, index: int = 0) -> Expect:
    return rc(*codes, regs=(("r4", index),))


def on_guest(*steps: Step) -> tuple[Step, ...]:
    """`steps` on a new guest with vCPU 0 and a 4 KiB buffer `gsb`, deleted after."""
    return (*READY, *steps, delete())


def _get(label: str, *elements: Item, flags: int = 0, expect: Expect = SUCCESS,
         of: Arg = GUEST, vcpu_id: Arg = 0) -> tuple[Step, ...]:
    """Write the IDs and sizes of `elements` into `gsb` and GET them."""
    return (gsb_write("gsb", *elements),
            state(label, GET, flags, of=of, vcpu_id=vcpu_id, expect=expect))


def set_value(element: Item, flags: int = 0) -> tuple[Step, ...]:
    """SET one element whose value an L0 may refuse but must not abort on."""
    return on_guest(*set_state("set", element, flags=flags, expect=VALUE_OK_OR_REFUSED))


def _reserved_element(case_id: str, hcall: str, element_id: int, flags: int = 0) -> Case:
    """A GET or SET of one reserved element ID: H_Invalid_Element_Id, R4 = its index."""
    lo, hi = next(r for r in gsb.RESERVED_RANGES if r[0] <= element_id <= r[1])
    expect = _element_error("H_INVALID_ELEMENT_ID")
    steps = (set_state("set", (element_id, (u64(0),)), expect=expect) if hcall == SET
             else _get("get", (element_id, (u64(0),)), flags=flags, expect=expect))
    return Case(case_id, V2, hcall,
                f"element 0x{element_id:04X} (reserved){', guest-wide' if flags else ''}",
                on_guest(*steps),
                f"{RST}: 0x{lo:04X}-0x{hi:04X} Reserved; R3=H_Invalid_Element_Id, R4=index 0",
                leaves_state=True, deviations=(ELEMENT_DEVIATION,))


VALUE_DEVIATIONS = ("qemu-v2-gsb-value-asserts",)
LENGTH_DEVIATIONS = ("qemu-v2-gsb-length-asserts",)


CASES_V2_STATE: tuple[Case, ...] = (
    Case("v2-set-state-gpr", V2, SET, "GPR3 of vCPU 0",
         on_guest(*set_state("set", GPR3)),
         f"{RST} H_GUEST_SET_STATE; element 0x1003 (GPR3, 8 bytes, thread)",
         leaves_state=True),
    Case("v2-get-state-guest-wide", V2, GET, "the TB offset, guest-wide",
         on_guest(*_get("get", gsb.element(0x0004, 0), flags=WIDE)),
         f"{RST} H_GUEST_GET_STATE; element 0x0004 (TB offset, RW, guest-wide)",
         leaves_state=True),
    Case("v2-get-state-unknown-guest", V2, GET, "a guest ID never handed out",
         (*caps(), Alloc("gsb"), *_get("get", GPR3, of=NO_SUCH_GUEST, expect=rc("H_P2"))),
         f"{RST}: guestId from H_GUEST_CREATE; {CONVENTION} (2)", leaves_state=True),
    Case("v2-get-state-unknown-vcpu", V2, GET, "GPR0 of vCPU 7, never created",
         on_guest(*_get("get", gsb.element(0x1000, 0), vcpu_id=7, expect=rc("H_P3"))),
         f"{RST}: vcpuId from H_GUEST_CREATE_VCPU; {CONVENTION} (3)", leaves_state=True,
         crash_evidence="h_guest_getset_state never checks vcpuid; get_vcpu_state_ptr: "
                        "assert(spapr_nested_vcpu_check(guest, vcpuid, false))",
         deviations=("qemu-v2-state-unchecked-vcpu",)),
    _reserved_element("v2-set-state-reserved-element", SET, 0x0C03),
    _reserved_element("v2-get-state-reserved-element", GET, 0x0007, flags=WIDE),
    Case("v2-set-state-bad-second-element", V2, SET, "GPR3, then reserved 0x2FFF",
         on_guest(*set_state("set", GPR3, (0x2FFF, (bytes(4),)),
                             expect=_element_error("H_INVALID_ELEMENT_ID", index=1))),
         f"{RST}: R4 = 'the array index of the bad element ID' (1)", leaves_state=True,
         deviations=(ELEMENT_DEVIATION,)),
    Case("v2-set-state-wrong-size", V2, SET, "GPR3 with a 4-byte value",
         on_guest(*set_state("set", (0x1003, (bytes(4),)),
                             expect=_element_error("H_INVALID_ELEMENT_SIZE"))),
         f"{RST}: GPRs are 8 bytes; R3=H_Invalid_Element_Size, R4=index 0", leaves_state=True,
         deviations=(ELEMENT_DEVIATION,)),
    Case("v2-set-state-read-only-element", V2, SET, "HDAR (0xF000, read-only)",
         on_guest(*set_state("set", gsb.element(0xF000, 0),
                             expect=_element_error(*ELEMENT_ERROR))),
         f"{RST}: 0xF000 is R (the L1 only reads it); per-element errors are "
         "H_Invalid_Element_* with R4 = index; the document names no one code",
         leaves_state=True, deviations=(ELEMENT_DEVIATION,)),
    Case("v2-set-state-guest-wide-element-as-vcpu", V2, SET, "TB offset without the wide flag",
         on_guest(*set_state("set", gsb.element(0x0004, 0),
                             expect=_element_error(*ELEMENT_ERROR))),
         f"{RST}: 'the IDs in the GSB must match' the guest-wide flag; per-element errors "
         "are H_Invalid_Element_* with R4 = index", leaves_state=True,
         deviations=(ELEMENT_DEVIATION,)),
    Case("v2-set-state-vcpu-element-as-guest-wide", V2, SET, "GPR3 with the wide flag",
         on_guest(*set_state("set", GPR3, flags=WIDE, expect=_element_error(*ELEMENT_ERROR))),
         f"{RST}: 'the IDs in the GSB must match' the guest-wide flag; per-element errors "
         "are H_Invalid_Element_* with R4 = index", leaves_state=True,
         deviations=(ELEMENT_DEVIATION,)),
    Case("v2-get-state-host-state-size", V2, GET, "element 0x0001 (size of L0 vCPU state)",
         on_guest(*_get("get", gsb.element(0x0001, 0), flags=WIDE)),
         f"{RST}: 0x0001, 8 bytes, R, guest-wide", leaves_state=True,
         deviations=("qemu-v2-host-state-size",)),
    Case("v2-get-state-run-output-min-size", V2, GET, "element 0x0002 (run output minimum)",
         on_guest(*_get("get", gsb.element(0x0002, 0), flags=WIDE)),
         f"{RST}: 0x0002, 8 bytes, R, guest-wide; Linux reads it before sizing the buffer",
         leaves_state=True),
    Case("v2-get-state-guest-wide-no-vcpu", V2, GET,
         "element 0x0002 of a guest that has no vCPU yet",
         (*caps(), guest(), Alloc("gsb"),
          *_get("get", gsb.element(0x0002, 0), flags=WIDE), delete()),
         f"{RST}: 0x0002 is guest-wide, so vcpuId plays no part", leaves_state=True,
         crash_evidence="0x0002 is GSBE_NESTED_VCPU (location get_vcpu_ptr): "
                        "assert(spapr_nested_vcpu_check(guest, vcpuid, false))",
         deviations=("qemu-v2-state-unchecked-vcpu",)),
    Case("v2-get-state-partition-table", V2, GET, "read back element 0x0005 after setting it",
         on_guest(Alloc("ptbl", 1 << 16),
                  *set_state("set", (0x0005, (Addr("ptbl"), u64(52), u64(1 << 16))),
                             flags=WIDE, role=Role.SETUP),
                  *_get("get", gsb.element(0x0005, 0, 0, 0), flags=WIDE)),
         f"{RST}: 0x0005 is RW", leaves_state=True,
         crash_evidence="copy_state_pagetbl: assert(set)", deviations=VALUE_DEVIATIONS),
    Case("v2-get-state-run-input-buffer", V2, GET,
         "read back element 0x0C00 after setting it (found by a campaign)",
         on_guest(Alloc("run-in"),
                  *set_state("set", (0x0C00, (Addr("run-in"), u64(4096))), role=Role.SETUP),
                  *_get("get", gsb.element(0x0C00, 0, 0))),
         f"{RST}: 0x0C00 is RW", leaves_state=True,
         crash_evidence="copy_state_runbuf: assert(set)", deviations=VALUE_DEVIATIONS),
    Case("v2-set-state-vpa", V2, SET, "register vCPU 0's VPA (0x0C02)",
         on_guest(Alloc("vpa"), *set_state("set", (0x0C02, (Addr("vpa"),)))),
         f"{RST}: 0x0C02 vCPU VPA Address, 8 bytes, RW, thread; Linux registers it at "
         "every L2 start", leaves_state=True, deviations=("qemu-v2-vpa-element",)),
    Case("v2-set-state-length-0", V2, SET, "a buffer length of 0",
         on_guest(*set_state("set", GPR3, length=0, expect=rc("H_P5"))),
         f"{RST}: the GSB starts with a 4-byte count; {CONVENTION} (5)", leaves_state=True,
         crash_evidence="map_and_getset_state: address_space_map returns NULL for length 0, "
                        "then address_space_unmap(NULL) takes it for a bounce buffer",
         deviations=LENGTH_DEVIATIONS),
    Case("v2-get-state-length-0", V2, GET, "a buffer length of 0 (found by a campaign)",
         on_guest(gsb_write("gsb", GPR3), state("get", GET, 0, length=0, expect=rc("H_P5"))),
         f"{RST}: the GSB starts with a 4-byte count; {CONVENTION} (5)", leaves_state=True,
         crash_evidence="map_and_getset_state: address_space_map returns NULL for length 0, "
                        "then address_space_unmap(NULL) takes it for a bounce buffer",
         deviations=LENGTH_DEVIATIONS),
    Case("v2-set-state-length-3", V2, SET, "a buffer length of 3",
         on_guest(*set_state("set", GPR3, length=3, expect=rc("H_P5"))),
         f"{RST}: the GSB starts with a 4-byte count; {CONVENTION} (5)", leaves_state=True,
         crash_evidence="guest_state_request_check: assert(len >= 4)",
         deviations=LENGTH_DEVIATIONS),
    Case("v2-set-state-length-over-max", V2, SET, "a length of 1 MiB + 4 KiB (SET: read only)",
         (*guest_with_vcpu(), Alloc("gsb", 1 << 20),
          *set_state("set", GPR3, length=(1 << 20) + 4096, expect=rc("H_SUCCESS", "H_P5")),
          delete()),
         f"{RST} sets no maximum: an L0 either processes the GSB or refuses parameter 5 "
         f"({CONVENTION}); it must not abort", leaves_state=True,
         crash_evidence="h_guest_getset_state: assert(buflen <= GSB_MAX_BUF_SIZE)",
         deviations=LENGTH_DEVIATIONS),
    Case("v2-get-state-buffer-outside-ram", V2, GET, "a GSB address far above the L1's RAM",
         on_guest(state("get", GET, 0, buf=OUTSIDE_RAM, expect=rc("H_P4"))),
         f"{RST}: dataBuffer is 'A L1 real address of the GSB'; {CONVENTION} (4)",
         leaves_state=True, deviations=("qemu-v2-gsb-outside-ram",)),
    Case("v2-set-state-unknown-guest", V2, SET, "a guest ID never handed out",
         (*caps(), Alloc("gsb"), gsb_write("gsb", GPR3),
          state("set", SET, 0, of=NO_SUCH_GUEST, expect=rc("H_P2"))),
         f"{RST}: guestId from H_GUEST_CREATE; {CONVENTION} (2)", leaves_state=True),
    Case("v2-set-state-unknown-vcpu", V2, SET, "GPR3 of vCPU 7, never created",
         on_guest(*set_state("set", GPR3, vcpu_id=7, expect=rc("H_P3"))),
         f"{RST}: vcpuId from H_GUEST_CREATE_VCPU; {CONVENTION} (3)", leaves_state=True,
         crash_evidence="h_guest_getset_state never checks vcpuid; get_vcpu_state_ptr: "
                        "assert(spapr_nested_vcpu_check(guest, vcpuid, false))",
         deviations=("qemu-v2-state-unchecked-vcpu",)),
    Case("v2-set-state-buffer-outside-ram", V2, SET, "a GSB address far above the L1's RAM",
         on_guest(state("set", SET, 0, buf=OUTSIDE_RAM, expect=rc("H_P4"))),
         f"{RST}: dataBuffer is 'A L1 real address of the GSB'; {CONVENTION} (4)",
         leaves_state=True, deviations=("qemu-v2-gsb-outside-ram",)),
    Case("v2-set-state-nop-element", V2, SET, "the NOP element 0x0000 (no value), then GPR3",
         on_guest(*set_state("set", (0x0000, ()), GPR3)),
         f"{RST}: 0x0000 is the NOP element, RW and of either scope", leaves_state=True),
    Case("v2-get-state-nop-element", V2, GET, "the NOP element 0x0000 alone, guest-wide",
         on_guest(*_get("get", (0x0000, ()), flags=WIDE)),
         f"{RST}: 0x0000 is the NOP element, RW and of either scope", leaves_state=True),
    _reserved_element("v2-set-state-reserved-element-0x1053", SET, 0x1053),
    _reserved_element("v2-get-state-reserved-element-0x3040", GET, 0x3040),
    Case("v2-get-state-vcpu-element-as-guest-wide", V2, GET, "GPR3 with the wide flag",
         on_guest(*_get("get", GPR3, flags=WIDE, expect=_element_error(*ELEMENT_ERROR))),
         f"{RST}: 'the IDs in the GSB must match' the guest-wide flag; per-element errors "
         "are H_Invalid_Element_* with R4 = index", leaves_state=True,
         deviations=(ELEMENT_DEVIATION,)),
    Case("v2-get-state-deleted-guest", V2, GET, "GPR3 of vCPU 0 of a deleted guest",
         (*READY, Call("delete", "H_GUEST_DELETE", (0, GUEST), Role.SETUP),
          *_get("get", GPR3, expect=rc("H_P2"))),
         f"{RST} H_GUEST_DELETE: the guest and all its vCPUs are deleted; {CONVENTION} (2)",
         leaves_state=True),
    Case("v2-get-state-reserved-flags", V2, GET, "flags bit 2 set (bits 2-63 reserved)",
         on_guest(*_get("get", GPR3, flags=1 << 61, expect=FLAG_ERROR)),
         f"{RST} H_GUEST_GET_STATE: flags bits 2-63 Reserved; PAPR convention: reserved flag "
         "bits -> H_PARAMETER or H_UNSUPPORTED_FLAG_START..END", leaves_state=True),
    Case("v2-set-state-reserved-flags", V2, SET, "flags bit 2 set (bits 2-63 reserved)",
         on_guest(*set_state("set", GPR3, flags=1 << 61, expect=FLAG_ERROR)),
         f"{RST} H_GUEST_SET_STATE: flags bits 2-63 Reserved; PAPR convention: reserved flag "
         "bits -> H_PARAMETER or H_UNSUPPORTED_FLAG_START..END", leaves_state=True),
    Case("v2-set-state-run-input-address-0", V2, SET, "run input buffer at real address 0",
         set_value((0x0C00, (u64(0), u64(4096)))), VALUE_SOURCE, leaves_state=True,
         crash_evidence="copy_state_runbuf: assert(runbuf->addr)", deviations=VALUE_DEVIATIONS),
    Case("v2-set-state-run-output-too-small", V2, SET, "a 16-byte run output buffer",
         set_value((0x0C01, (Addr("gsb", 2048), u64(16)))), VALUE_SOURCE, leaves_state=True,
         crash_evidence="copy_state_runbuf: assert(be64_to_cpu(buf[1]) >= VCPU_OUT_BUF_MIN_SZ)",
         deviations=VALUE_DEVIATIONS),
    Case("v2-set-state-partition-table-ea-bits", V2, SET, "partition table with 48 EA bits",
         set_value((0x0005, (Addr("gsb", 2048), u64(48), u64(1 << 16))), flags=WIDE),
         VALUE_SOURCE, leaves_state=True, crash_evidence="copy_state_pagetbl: assert(rts == 52)",
         deviations=VALUE_DEVIATIONS),
    Case("v2-set-state-process-table-size", V2, SET, "an 8 KiB process table",
         set_value((0x0006, (Addr("gsb", 2048), u64(8192))), flags=WIDE), VALUE_SOURCE,
         leaves_state=True, crash_evidence="copy_state_proctbl: g_assert_not_reached() for "
         "sizes other than 4 KiB, 16 MiB", deviations=VALUE_DEVIATIONS),
)
