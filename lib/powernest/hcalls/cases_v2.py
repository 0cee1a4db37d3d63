"""API v2 (nested-papr) cases: capabilities, guests, vCPUs, running, deleting.

GET/SET_STATE cases are in `cases_v2_state`.  "RST" is Linux
Documentation/arch/powerpc/kvm-nested.rst; QEMU lines are from
hw/ppc/spapr_nested.c (qemu/qemu master as stored, commit 019fbfa4, read for
QEMU 10.0.2; the functions quoted are unchanged since the v2 API landed in 9.0
unless a row says otherwise).
"""

from __future__ import annotations

from powernest.hcalls import gsb
from powernest.hcalls.model import (
    CAP_COPY_MEM,
    CAP_POWER9,
    CAP_POWER11,
    DELETE_ALL,
    MINUS_ONE,
    NO_SUCH_GUEST,
    Addr,
    Alloc,
    Call,
    Case,
    Expr,
    Guard,
    Modes,
    RegWant,
    Role,
    Var,
    caps,
    delete,
    gsb_write,
    guest,
    guest_with_vcpu,
    rc,
    set_state,
    vcpu,
)
from powernest.nested import API

V2 = API.V2
RST = "kvm-nested.rst"
RESERVED_FLAGS = ("PAPR convention: reserved flag bits set -> H_PARAMETER (classic) or "
                  "H_UNSUPPORTED_FLAG_START..END (hvcall.h); either is accepted")
FLAG_ERROR = rc("H_PARAMETER", "H_UNSUPPORTED_FLAG")
BAD_P2, BAD_P3 = rc("H_P2"), rc("H_P3")
CONVENTION = "PAPR convention: bad parameter n -> H_Pn"
GET_CAPS, SET_CAPS = "H_GUEST_GET_CAPABILITIES", "H_GUEST_SET_CAPABILITIES"
CREATE, CREATE_VCPU = "H_GUEST_CREATE", "H_GUEST_CREATE_VCPU"
RUN, DELETE = "H_GUEST_RUN_VCPU", "H_GUEST_DELETE"
# One bitmap is defined, so the first invalid one has index 0 or 1 (no base is given)
ONE_INVALID_BITMAP = (("r4", 1), ("r5", (0, 1)))
R5_DEVIATION = "qemu-v2-set-capabilities-r5"


def _set_caps(label: str, bitmap: Var | Expr | int, expect_codes: tuple[str, ...],
              regs: tuple[tuple[str, RegWant], ...] = ()) -> Call:
    return Call(label, SET_CAPS, (0, bitmap), Role.CHECK, rc(*expect_codes, regs=regs))


CAPABILITIES: tuple[Case, ...] = (
    Case("v2-get-capabilities", V2, GET_CAPS, "H_GUEST_GET_CAPABILITIES(0) succeeds",
         (Call("get-caps", GET_CAPS, (0,)),),
         f"{RST} H_GUEST_GET_CAPABILITIES; Linux kvmhv_nested_init relies on it to pick v2",
         leaves_state=False),
    Case("v2-get-capabilities-processor-mode", V2, GET_CAPS,
         "the modes offered fit the L1's processor (the answer depends on it)",
         (Call("get-caps", GET_CAPS, (0,)), Modes("modes", "get-caps")),
         f"{RST} H_GUEST_GET_CAPABILITIES: R4 holds 'the CPU versions (eg POWER9, POWER10) "
         "that are supported as L2s', which depend on the processor; read here as: the L1's "
         "own mode is one (an L2 like its L1), and none is newer than the processor, whose "
         "instructions an L2 runs (QEMU: ppc_check_compat against the L1's CPU and "
         "max-cpu-compat; PowerVM: the LPAR's processor and compatibility mode)",
         leaves_state=False),
    Case("v2-get-capabilities-reserved-flags", V2, GET_CAPS, "flags bit 0 set (all reserved)",
         (Call("get-caps", GET_CAPS, (1 << 63,), expect=FLAG_ERROR),),
         f"{RST}: flags Reserved; {RESERVED_FLAGS}", leaves_state=False),
    Case("v2-set-capabilities", V2, SET_CAPS, "SET with the bitmap GET returned succeeds",
         (caps()[0], _set_caps("set-caps", Var("caps"), ("H_SUCCESS",))),
         f"{RST} H_GUEST_SET_CAPABILITIES: SET with a subset of GET's flags",
         leaves_state=True, needs_fresh=True),
    Case("v2-set-capabilities-reserved-flags", V2, SET_CAPS, "flags bit 0 set (all reserved)",
         (caps()[0], Call("set-caps", SET_CAPS, (1 << 63, Var("caps")), expect=FLAG_ERROR)),
         f"{RST}: flags Reserved; {RESERVED_FLAGS}", leaves_state=False),
    Case("v2-set-capabilities-unknown-bit", V2, SET_CAPS,
         "GET's bitmap plus bit 31, which no L0 advertises",
         (caps()[0], _set_caps("set-caps", Expr("{caps} | 0x100000000"), ("H_P2",),
                               regs=ONE_INVALID_BITMAP)),
         f"{RST}: capabilitiesBitmap1 holds only capabilities advertised by GET; "
         "R3=H_P2, R4=number of invalid bitmaps (1), R5=index of the first (0 or 1)",
         leaves_state=False, deviations=(R5_DEVIATION,)),
    Case("v2-set-capabilities-copy-mem-not-offered", V2, SET_CAPS,
         "COPY_MEM set although GET did not offer it",
         (caps()[0], Guard("copy-mem-not-offered", Expr(f"({{caps}} & {CAP_COPY_MEM:#x}) == 0"),
                           "this L0 offers COPY_MEM"),
          _set_caps("set-caps", Expr(f"{{caps}} | {CAP_COPY_MEM:#x}"), ("H_P2",),
                    regs=ONE_INVALID_BITMAP)),
         f"{RST}: only capabilities advertised through GET; R3=H_P2, R4=1, R5=0 or 1",
         leaves_state=False, deviations=(R5_DEVIATION,)),
    Case("v2-set-capabilities-mode-not-offered", V2, SET_CAPS,
         "the POWER11 mode set on an L0 that does not offer it",
         (caps()[0], Guard("p11-not-offered", Expr(f"({{caps}} & {CAP_POWER11:#x}) == 0"),
                           "this L0 offers the POWER11 mode"),
          _set_caps("set-caps", Expr(f"{{caps}} | {CAP_POWER11:#x}"), ("H_P2",),
                    regs=ONE_INVALID_BITMAP)),
         f"{RST}: only capabilities advertised through GET; R3=H_P2, R4=1, R5=0 or 1",
         leaves_state=True, needs_fresh=True, deviations=("qemu-v2-set-capabilities-unoffered",)),
    Case("v2-set-capabilities-empty", V2, SET_CAPS, "an empty bitmap: no processor mode",
         (_set_caps("set-caps", 0, ("H_P2",), regs=(("r4", 1),)),),
         "spec silent on an empty bitmap: QEMU h_guest_set_capabilities answers H_P2, R4=1, "
         "R5=the first supported mode; Linux always passes GET's bitmap back",
         leaves_state=False),
    Case("v2-set-capabilities-twice", V2, SET_CAPS, "a second SET with the same bitmap",
         (caps()[0], Call("set-caps", SET_CAPS, (0, Var("caps")), Role.SETUP),
          _set_caps("set-caps-again", Var("caps"), ("H_SUCCESS",))),
         f"spec silent on a repeated call ({RST}: negotiated 'normally at L1 boot time'); "
         "Linux 6.12 calls it at every kvm-hv load and loses KVM after a kexec when it fails "
         "(LAB-NOTES)", leaves_state=True, needs_fresh=True,
         deviations=("qemu-v2-set-capabilities-once",)),
    Case("v2-set-capabilities-subset", V2, SET_CAPS, "only the POWER9 mode of those offered",
         (caps()[0], Guard("p9-offered", Expr(f"{{caps}} & {CAP_POWER9:#x}"),
                           "this L0 does not offer the POWER9 mode"),
          _set_caps("set-caps", CAP_POWER9, ("H_SUCCESS",))),
         f"{RST}: SET is called with a subset of the flags returned from GET",
         leaves_state=True, needs_fresh=True),
)

GUESTS: tuple[Case, ...] = (
    Case("v2-create-before-set-capabilities", V2, CREATE, "H_GUEST_CREATE before any SET",
         (Call("create", CREATE, (0, MINUS_ONE), expect=rc("H_STATE")),),
         f"{RST}: capabilities are negotiated before H_GUEST_CREATE; PAPR convention: a call "
         "not valid in the current state -> H_STATE (QEMU h_guest_create does so)",
         leaves_state=False, needs_fresh=True),
    Case("v2-create", V2, CREATE, "a guest is created and has an ID",
         (*caps(), guest(role=Role.CHECK), delete()),
         f"{RST} H_GUEST_CREATE: returns a unique ID", leaves_state=True),
    Case("v2-create-ids-unique", V2, CREATE, "two guests get different IDs",
         (*caps(), guest("g1"),
          Call("create-g2", CREATE, (0, MINUS_ONE), expect=rc("H_SUCCESS",
               distinct_from=("create-g1",)), save="g2"), delete("g1"), delete("g2")),
         f"{RST} H_GUEST_CREATE: 'A unique ID of the L2 created'", leaves_state=True),
    Case("v2-create-reserved-flags", V2, CREATE, "flags bit 0 set (all reserved)",
         (*caps(), Call("create", CREATE, (1 << 63, MINUS_ONE), expect=FLAG_ERROR)),
         f"{RST}: flags Reserved; {RESERVED_FLAGS}", leaves_state=True),
    Case("v2-create-bad-continue-token", V2, CREATE, "a continue token never handed out",
         (*caps(), Call("create", CREATE, (0, 0x1234), expect=BAD_P2)),
         f"{RST}: continueToken is -1 or the R4 of an H_Busy answer; {CONVENTION} (2)",
         leaves_state=True),
    Case("v2-delete", V2, DELETE, "a created guest is deleted",
         (*caps(), guest(), Call("delete", DELETE, (0, Var("guest")))),
         f"{RST} H_GUEST_DELETE", leaves_state=True),
    Case("v2-delete-unknown-guest", V2, DELETE, "a guest ID never handed out",
         (*caps(), Call("delete", DELETE, (0, NO_SUCH_GUEST), expect=BAD_P2)),
         f"{RST} H_GUEST_DELETE: guestId from H_GUEST_CREATE; {CONVENTION} (2)",
         leaves_state=True),
    Case("v2-delete-reserved-flags", V2, DELETE, "flags bit 1 set (bits 1-63 reserved)",
         (*caps(), guest(), Call("delete", DELETE, (1 << 62, Var("guest")), expect=FLAG_ERROR),
          delete()),
         f"{RST} H_GUEST_DELETE: flags bits 1-63 Reserved; {RESERVED_FLAGS}",
         leaves_state=True),
    Case("v2-delete-all-then-create", V2, DELETE,
         "deleteAllGuests, then new guests can be created", (
             *caps(), guest("old"),
             Call("delete-all", DELETE, (DELETE_ALL, 0)),
             Call("create-after", CREATE, (0, MINUS_ONE), save="guest"), delete()),
         f"{RST} H_GUEST_DELETE: deleteAllGuests 'is used to reset the L0 in the case of "
         "kdump/kexec', after which the L1 creates guests again", leaves_state=True,
         crash_evidence="h_guest_delete: g_hash_table_destroy(spapr->nested.guests) leaves "
                        "the freed table in spapr->nested.guests; h_guest_create then uses it",
         deviations=("qemu-v2-delete-all-use-after-free",)),
    Case("v2-delete-all-then-delete", V2, DELETE,
         "deleteAllGuests, then the deleted guest's ID (found by a campaign)", (
             *caps(), guest("old"),
             Call("delete-all", DELETE, (DELETE_ALL, 0), Role.SETUP),
             Call("delete-old", DELETE, (0, Var("old")), expect=BAD_P2)),
         f"{RST} H_GUEST_DELETE: deleteAllGuests deletes every guest, so the ID is no "
         f"longer one H_GUEST_CREATE handed out; {CONVENTION} (2)", leaves_state=True,
         crash_evidence="h_guest_delete: g_hash_table_lookup in the table "
                        "g_hash_table_destroy freed at deleteAllGuests",
         deviations=("qemu-v2-delete-all-use-after-free",)),
)

VCPUS: tuple[Case, ...] = (
    Case("v2-create-vcpu", V2, CREATE_VCPU, "vCPU 0 of a new guest",
         (*caps(), guest(), vcpu(role=Role.CHECK), delete()),
         f"{RST} H_GUEST_CREATE_VCPU", leaves_state=True),
    Case("v2-create-vcpu-not-sequential", V2, CREATE_VCPU, "vCPU 5 as the first vCPU",
         (*caps(), guest(), vcpu(5, role=Role.CHECK), delete()),
         f"{RST}: vcpuId is allocated by the L1, unique per L2, 'within the range of 0 to 2047'",
         leaves_state=True,
         crash_evidence="h_guest_create_vcpu: assert(vcpuid == guest->nr_vcpus) "
                        "/* linear vcpuid allocation only */",
         deviations=("qemu-v2-vcpu-ids-linear",)),
    Case("v2-create-vcpu-out-of-range", V2, CREATE_VCPU, "vCPU 2048",
         (*caps(), guest(), vcpu(2048, role=Role.CHECK, expect=BAD_P3), delete()),
         f"{RST}: vcpuId 'must be within the range of 0 to 2047'; {CONVENTION} (3)",
         leaves_state=True,
         crash_evidence="h_guest_create_vcpu: assert(vcpuid == guest->nr_vcpus) comes before "
                        "the PAPR_NESTED_GUEST_VCPU_MAX check",
         deviations=("qemu-v2-vcpu-ids-linear",)),
    Case("v2-create-vcpu-duplicate", V2, CREATE_VCPU, "vCPU 0 created twice",
         (*guest_with_vcpu(), vcpu(role=Role.CHECK, expect=rc("H_IN_USE", "H_P3")), delete()),
         f"{RST}: vcpuId is unique for this L2; the code is not named: H_IN_USE (hvcall.h, "
         f"what QEMU answers) or, by {CONVENTION}, H_P3", leaves_state=True),
    Case("v2-create-vcpu-unknown-guest", V2, CREATE_VCPU, "a guest ID never handed out",
         (*caps(), Call("create-vcpu", CREATE_VCPU, (0, NO_SUCH_GUEST, 0), expect=BAD_P2)),
         f"{RST}: guestId from H_GUEST_CREATE; {CONVENTION} (2)", leaves_state=True),
    Case("v2-create-vcpu-deleted-guest", V2, CREATE_VCPU, "a vCPU for a deleted guest",
         (*caps(), guest(), Call("delete", DELETE, (0, Var("guest")), Role.SETUP),
          vcpu(role=Role.CHECK, expect=BAD_P2)),
         f"{RST} H_GUEST_DELETE deletes the L2; {CONVENTION} (2)", leaves_state=True),
    Case("v2-create-vcpu-reserved-flags", V2, CREATE_VCPU, "flags bit 0 set (all reserved)",
         (*caps(), guest(), Call("create-vcpu", CREATE_VCPU, (1 << 63, Var("guest"), 0),
                                 expect=FLAG_ERROR), delete()),
         f"{RST}: flags Reserved; {RESERVED_FLAGS}", leaves_state=True),
)

# Partition-scoped table info: address, 52 address bits (what Linux sets), 64 KiB root.
_PART = (0x0005, (Addr("ptbl"), (52).to_bytes(8, "big"), (1 << 16).to_bytes(8, "big")))
_RUNNABLE = (*guest_with_vcpu(), Alloc("gsb"), Alloc("ptbl", 1 << 16), Alloc("in"),
             Alloc("out"),
             *set_state("set-ptbl", _PART, flags=gsb.FLAG_GUEST_WIDE, role=Role.SETUP),
             *set_state("set-run-buffers", (0x0C00, (Addr("in"), (4096).to_bytes(8, "big"))),
                        (0x0C01, (Addr("out"), (4096).to_bytes(8, "big"))), role=Role.SETUP))

RUNS: tuple[Case, ...] = (
    Case("v2-run-vcpu-unknown-guest", V2, RUN, "a guest ID never handed out",
         (*caps(), Call("run", RUN, (0, NO_SUCH_GUEST, 0), expect=BAD_P2)),
         f"{RST} H_GUEST_RUN_VCPU: guestId from H_GUEST_CREATE; {CONVENTION} (2)",
         leaves_state=True),
    Case("v2-run-vcpu-unknown-vcpu", V2, RUN, "vCPU 3 was never created",
         (*guest_with_vcpu(), Call("run", RUN, (0, Var("guest"), 3), expect=BAD_P3), delete()),
         f"{RST}: vcpuId from H_GUEST_CREATE_VCPU; {CONVENTION} (3)", leaves_state=True),
    Case("v2-run-vcpu-no-run-buffers", V2, RUN, "run before 0x0C00/0x0C01 were set",
         (*guest_with_vcpu(), Call("run", RUN, (0, Var("guest"), 0), expect=rc(
             "H_INPUT_BUFFER_NOT_DEFINED", "H_OUTPUT_BUFFER_NOT_DEFINED")), delete()),
         f"{RST}: the run buffers 'must be preregistered' with 0x0C00 and 0x0C01; codes from "
         "hvcall.h (H_INPUT/OUTPUT_BUFFER_NOT_DEFINED, added with the v2 support)",
         leaves_state=True, deviations=("qemu-v2-run-buffers-not-defined",)),
    Case("v2-run-vcpu-reserved-flags", V2, RUN, "flags bit 3 set (bits 3-63 reserved)",
         (*_RUNNABLE, Call("run", RUN, (1 << 60, Var("guest"), 0), expect=FLAG_ERROR),
          delete()),
         f"{RST} H_GUEST_RUN_VCPU: flags bits 3-63 Reserved; {RESERVED_FLAGS}",
         leaves_state=True),
    Case("v2-run-vcpu-bad-input-buffer", V2, RUN,
         "the run input buffer holds a reserved element ID (0x0C03)",
         (*_RUNNABLE, gsb_write("in", (0x0C03, (bytes(8),))),
          Call("run", RUN, (0, Var("guest"), 0), expect=rc("H_INVALID_ELEMENT_ID")), delete()),
         f"{RST} H_GUEST_RUN_VCPU: R3=H_Invalid_Element_Id, R4=the offset of the bad element "
         "in the input buffer (R4 not checked: the text says offset here, index for GET/SET)",
         leaves_state=True, deviations=("qemu-v2-gsb-element-errors",)),
)

_V1_UNDER_V2 = ("H_SET_PARTITION_TABLE", "H_ENTER_NESTED", "H_COPY_TOFROM_GUEST")

CROSS_API: tuple[Case, ...] = tuple(
    Case(f"v2-l0-rejects-{name[2:].lower().replace('_', '-')}", V2, name,
         f"{name} on an L0 that offers only the v2 API",
         (Call("call", name, (0, 0, 0, 0, 0, 0), expect=rc("H_FUNCTION")),),
         "the v1 hcalls belong to nested-hv: QEMU registers them only with cap-nested-hv; "
         "a 6.1 L1 sees H_FUNCTION from H_SET_PARTITION_TABLE under nested-papr (LAB-NOTES)",
         leaves_state=False) for name in _V1_UNDER_V2) + (
    Case("v2-tlb-invalidate-guest-lpid", V2, "H_TLB_INVALIDATE",
         "H_TLB_INVALIDATE of a v2 guest's LPID, as Linux's kvmhv_flush_lpid issues it",
         (*caps(), guest(), Call("tlbie", "H_TLB_INVALIDATE", (0x90000, Var("guest"), 0x800)),
          delete()),
         "spec silent: Linux 6.12 kvmhv_flush_lpid issues H_TLB_INVALIDATE(H_TLBIE_P1_ENC(2,0,1),"
         " lpid, TLBIEL_INVAL_SET_LPID) under v2 when the L0 lacks H_RPT_INVALIDATE (QEMU TCG "
         "has none), and logs 'TLB LPID invalidation hcall failed'", leaves_state=True,
         deviations=("qemu-v2-tlb-invalidate",)),
)

CASES_V2: tuple[Case, ...] = CAPABILITIES + GUESTS + VCPUS + RUNS + CROSS_API
