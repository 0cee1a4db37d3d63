"""Behavioural rows: L2 micro-programs run through each API, and what comes back.

Each row builds a partition-scoped radix tree for two 64 KiB L2 pages, one
read-only (`radix`), writes a micro-program into the first (`l2program`),
enters the L2 and checks what the L1 gets back at the exit: the exit reason;
every register the program set, exactly; the fault registers the cause
defines; the L2's timebase (TB offset applied) or, for the HDEC, the time the
run ended; the L1's own registers intact (the module's `l1=` field of every
call).  After an hcall exit it enters again and checks that the L2 resumed
where it left off with the state the L1 handed back.

API v1 (nested-hv): H_ENTER_NESTED(hv_guest_state, pt_regs), both in the L1's
byte order (little endian), written back by the L0 at the exit; R3 is the
exit's vector.  Layouts: Linux arch/powerpc/include/asm/hvcall.h struct
hv_guest_state (version 2) and asm/ptrace.h struct pt_regs (64-bit), the
reference L0 Linux book3s_hv_nested.c (kvmhv_enter_nested_guest,
save_hv_return_state, restore_hv_regs).

API v2 (nested-papr): H_GUEST_RUN_VCPU after the guest's partition table,
process table, run buffers and vCPU state are SET; R4 is the exit's vector,
and the run output buffer holds the elements kvm-nested.rst names for it;
every other element is read with H_GUEST_GET_STATE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from powernest.hcalls import gsb, numbers, radix
from powernest.hcalls.l2program import (
    CODE,
    CR,
    MSR,
    READ_ONLY,
    SET_GPRS,
    SET_SPRS,
    SRR0_GPR,
    SRR1_GPR,
    TB_GPR,
    UNMAPPED,
    VECTOR_GPR,
    Cause,
    Program,
    build,
    pattern,
)
from powernest.hcalls.model import (
    Addr,
    Alloc,
    Bound,
    Call,
    Case,
    Field,
    Item,
    Read,
    Ref,
    Role,
    Stamp,
    Step,
    Var,
    Write,
    caps,
    delete,
    gsb_write,
    guest,
    hv_state,
    rc,
    state,
    u64,
    vcpu,
)
from powernest.nested import API

LPID = 1
TB_OFFSET = 0x0000_1000_0000_0000    # a multiple of 2^24 (the TBU40 granularity)
RUN_BOUND = 0x1000_0000              # HDEC expiry of a run: ~0.5 s of a 512 MHz timebase
HDEC_DELTA = 0x0400_0000             # the HDEC case's expiry: ~130 ms
HFSCR_ALL = 0x258F                   # FP VECVSX DSCR PM EBB TAR MSGP PREFIX facilities
FSCR_MSGP_LG = 10
HFSCR_MSGP = 1 << FSCR_MSGP_LG
HFSCR_CAUSE_SHIFT = 56               # HFSCR[IC]: the facility that caused an HFAC exit
HDSISR_NOT_FOUND = 0x4000_0000       # DSISR/HDSISR bit 33: no translation
HDSISR_PROTECTION = 0x0800_0000      # bit 36: the translation forbids the access
HDSISR_STORE = 0x0200_0000           # bit 38: the access was a store
SRR1_NOT_FOUND = 0x4000_0000         # HSRR1 bit 33 of an HISI: no translation
SRR1_TRAP = 0x2_0000                 # SRR1 bit 46: a trap-type program interrupt
SRR1_LEV_1 = 1 << 20                 # SRR1 42:43 = LEV of the sc (ISA 3.1; 0 before)
PAGES = (radix.Page(0, "l2-page"), radix.Page(READ_ONLY, "l2-read-only", writable=False))
SOURCE_V1 = ("kvm-nested.rst (H_ENTER_NESTED: the L2 runs until an exit, which is returned "
             "to the L1 with the L2's state written back); reference L0 Linux "
             "book3s_hv_nested.c kvmhv_enter_nested_guest, save_hv_return_state; Power ISA "
             "Book III (the interrupt that ends the run and the registers it sets)")

# What an hcall may change, so an L0 need not hand back the L2's values at an sc 1 exit:
# CTR and XER are volatile in the ELF ABI, and Linux's pseries hvCall.S saves and restores
# the whole CR around every hcall (a Linux KVM-HV L0's hcall entry uses CTR and CR0).
HCALL_VOLATILE = ("CTR", "XER", "CR")

# The L1 flushes what the L0 cached of LPID's translations once its tables changed, as
# Linux's kvmhv_flush_lpid does: H_TLB_INVALIDATE(H_TLBIE_P1_ENC(RIC=2, PRS=0, R=1), lpid,
# TLBIEL_INVAL_SET_LPID).  A Linux L0 keeps a shadow of the L2's tree until then.
FLUSH_LPID = Call("flush-lpid", "H_TLB_INVALIDATE", (0x9_0000, LPID, 0x800), Role.SETUP)

# struct hv_guest_state, version 2 (little endian): field -> offset
HV = {"VERSION": 0, "LPID": 8, "LPCR": 16, "PCR": 24, "AMOR": 32, "DPDES": 40, "HFSCR": 48,
      "TB_OFFSET": 56, "DAWR0": 64, "DAWRX0": 72, "CIABR": 80, "HDEC_EXPIRY": 88,
      "PURR": 96, "SPURR": 104, "IC": 112, "VTB": 120, "HDAR": 128, "HDSISR": 136,
      "HEIR": 144, "ASDR": 152, "SRR0": 160, "SRR1": 168, "SPRG0": 176, "SPRG1": 184,
      "SPRG2": 192, "SPRG3": 200, "PIDR": 208, "CFAR": 216, "PPR": 224, "DAWR1": 232,
      "DAWRX1": 240}
HV_VERSION = 2
# struct pt_regs (64-bit, little endian): gpr[32], then these.
REGS = {**{f"GPR{n}": 8 * n for n in range(32)}, "NIA": 256, "MSR": 264, "CTR": 280,
        "LR": 288, "XER": 296, "CR": 304, "DAR": 328, "DSISR": 336}


def _le(fields: dict[str, int], layout: dict[str, int]) -> bytes:
    data = bytearray(max(layout.values()) + 8)
    for name, value in fields.items():
        data[layout[name]:layout[name] + 8] = (value & (1 << 64) - 1).to_bytes(8, "little")
    return bytes(data)


def _program_steps(program: Program) -> tuple[Step, ...]:
    return (*radix.tree(PAGES),
            *(Write(PAGES[0].buf, (data,), offset=gra) for gra, data in program.segments))


def _expected_regs(program: Program, nia: int) -> dict[str, int]:
    """The pt_regs fields the L2 must hand back at its first exit."""
    want = {f"GPR{n}": pattern(n) for n in SET_GPRS}
    want |= {"NIA": nia, "MSR": MSR, "CTR": SET_SPRS["CTR"], "LR": SET_SPRS["LR"],
             "XER": SET_SPRS["XER"], "CR": CR}
    if program.cause in (Cause.HCALL, Cause.TRAP):   # both leave by an sc 1
        for name in HCALL_VOLATILE:
            del want[name]
    if program.cause is Cause.FETCH:
        want["CTR"] = UNMAPPED
    if program.cause is Cause.TRAP:   # the L2's own 0x700 vector ran, then its hcall
        want |= {f"GPR{VECTOR_GPR}": 0x700, f"GPR{SRR0_GPR}": program.exit_at,
                 f"GPR{SRR1_GPR}": MSR | SRR1_TRAP}
    return want


def _v1_exit_state(program: Program) -> tuple[dict[str, int | tuple[int, ...]],
                                               dict[str, int | tuple[int, ...]]]:
    """(pt_regs, hv_guest_state) fields the first exit must write back."""
    cause = program.cause
    stub_sc = 0x700 + 12      # the sc of the L2's 0x700 vector stub
    sc_at = {Cause.HCALL: program.exit_at, Cause.TRAP: stub_sc}.get(cause)
    nia = {Cause.FETCH: UNMAPPED}.get(cause, program.exit_at if sc_at is None else sc_at + 4)
    regs: dict[str, int | tuple[int, ...]] = {**_expected_regs(program, nia)}
    if cause is Cause.FETCH:   # the HISI's cause goes to HSRR1, handed back as the MSR
        regs["MSR"] = MSR | SRR1_NOT_FOUND
    hv: dict[str, int | tuple[int, ...]] = {
        name: SET_SPRS[name] for name in ("SRR0", "SRR1", "SPRG0", "SPRG1", "SPRG2", "SPRG3",
                                          "PIDR")}
    if sc_at is not None:     # sc sets SRR0/SRR1, whatever its level (ISA: System Call)
        hv |= {"SRR0": sc_at + 4, "SRR1": (MSR, MSR | SRR1_LEV_1)}
    if cause is Cause.LOAD:
        hv |= {"HDAR": UNMAPPED, "HDSISR": HDSISR_NOT_FOUND, "ASDR": UNMAPPED}
    if cause is Cause.STORE:
        hv |= {"HDAR": READ_ONLY, "HDSISR": HDSISR_PROTECTION | HDSISR_STORE,
               "ASDR": READ_ONLY}
    if cause is Cause.FETCH:
        hv |= {"ASDR": UNMAPPED}
    if cause is Cause.ILLEGAL:
        hv |= {"HEIR": program.exit_word}
    if cause is Cause.FACILITY:
        hv |= {"HFSCR": (FSCR_MSGP_LG << HFSCR_CAUSE_SHIFT) | (HFSCR_ALL & ~HFSCR_MSGP)}
    return regs, hv


def _read_fields(label: str, buf: str, layout: dict[str, int],
                 want: dict[str, int | tuple[int, ...]],
                 keep: tuple[str, ...] = ()) -> Read:
    fields = tuple(Field(name, layout[name], want.get(name), little=True)
                   for name in sorted({*want, *keep}, key=layout.__getitem__))
    return Read(label, buf, fields, length=max(layout.values()) + 8)


# Known deviations by exit cause (see `deviations`).
DEVIATIONS_V1 = {Cause.FACILITY: ("qemu-v1-hfscr-not-enforced", "kvm-v1-msgsndp-no-exit"),
                 Cause.FETCH: ("qemu-v1-hisi-cause-lost",),
                 Cause.ILLEGAL: ("qemu-v1-heir-not-returned",)}
DEVIATIONS_V2 = {Cause.FACILITY: ("qemu-v2-hfscr-not-enforced",),
                 Cause.FETCH: ("qemu-v2-hisi-cause-lost",)}


def _v1_case(cause: Cause) -> Case:
    program = build(cause)
    hfscr = HFSCR_ALL & ~HFSCR_MSGP if cause is Cause.FACILITY else HFSCR_ALL
    head = hv_state(HV_VERSION, LPID)   # u64 version, u32 lpid
    hv = head + _le({"AMOR": (1 << 64) - 1, "HFSCR": hfscr, "TB_OFFSET": TB_OFFSET}, HV)[
        len(head):]
    regs = _le({"NIA": CODE, "MSR": MSR}, REGS)
    delta = HDEC_DELTA if cause is Cause.HDEC else RUN_BOUND
    want_regs, want_hv = _v1_exit_state(program)
    steps: list[Step] = [
        Alloc("ptbl"), Alloc("proc"), Alloc("hv"), Alloc("regs"), *_program_steps(program),
        Write("ptbl", (radix.partition_entry(), Addr("proc", bits=radix.GUEST_RADIX)),
              offset=16 * LPID),
        Write("hv", (hv,)), Write("regs", (regs,)),
        Call("set-ptbl", "H_SET_PARTITION_TABLE", (Addr("ptbl"),), Role.SETUP),
        FLUSH_LPID,
        Stamp("deadline", "hv", HV["HDEC_EXPIRY"], delta, little=True),
        Call("enter", "H_ENTER_NESTED", (Addr("hv"), Addr("regs")), expect=rc(cause.exit)),
        _read_fields("regs-at-exit", "regs", REGS, want_regs, keep=(f"GPR{TB_GPR}",)),
        _read_fields("hv-at-exit", "hv", HV, want_hv),
    ]
    if cause is not Cause.HDEC:
        steps.append(Bound("l2-timebase", Ref("regs-at-exit", f"GPR{TB_GPR}"),
                           Ref("enter", "tb0"), Ref("enter", "tb1"),
                           "the L2 reads the L1's timebase plus the TB offset", TB_OFFSET))
    else:
        steps.append(Bound("hdec-honoured", Ref("enter", "tb1"), Ref("deadline", "tb"), None,
                           "the run ends when the HDEC expires, not before"))
    if cause is Cause.HCALL:
        steps += [
            Stamp("deadline-again", "hv", HV["HDEC_EXPIRY"], RUN_BOUND, little=True),
            Call("enter-again", "H_ENTER_NESTED", (Addr("hv"), Addr("regs")),
                 expect=rc("EXIT_HCALL")),
            _read_fields("regs-at-second-exit", "regs", REGS,
                         want_regs | {"NIA": program.second_exit_at + 4,
                                      "GPR4": pattern(4) + 1}),
        ]
    steps += [replace(FLUSH_LPID, role=Role.CLEANUP),
              Call("clear-ptbl", "H_SET_PARTITION_TABLE", (0,), Role.CLEANUP)]
    return Case(f"v1-l2-exit-{cause.value}", API.V1, "H_ENTER_NESTED",
                f"an L2 program leaves by {cause.value}: {cause.exit} and its state come back",
                tuple(steps), SOURCE_V1, leaves_state=False,
                deviations=DEVIATIONS_V1.get(cause, ()))


MSR_HV = 1 << 60


def _v1_msr_hv_case() -> Case:
    """The hcall program entered with MSR[HV] set in its pt_regs: no guest runs as the
    hypervisor, so the L0 runs it without HV (Linux kvmhv_enter_nested_guest: 'Guest
    must always run with ME enabled, HV disabled') or refuses; it must not die."""
    program = build(Cause.HCALL)
    hv = hv_state(HV_VERSION, LPID) + _le({"AMOR": (1 << 64) - 1, "HFSCR": HFSCR_ALL,
                                           "TB_OFFSET": TB_OFFSET}, HV)[12:]
    steps: tuple[Step, ...] = (
        Alloc("ptbl"), Alloc("proc"), Alloc("hv"), Alloc("regs"), *_program_steps(program),
        Write("ptbl", (radix.partition_entry(), Addr("proc", bits=radix.GUEST_RADIX)),
              offset=16 * LPID),
        Write("hv", (hv,)), Write("regs", (_le({"NIA": CODE, "MSR": MSR | MSR_HV}, REGS),)),
        Call("set-ptbl", "H_SET_PARTITION_TABLE", (Addr("ptbl"),), Role.SETUP),
        FLUSH_LPID,
        Stamp("deadline", "hv", HV["HDEC_EXPIRY"], RUN_BOUND, little=True),
        Call("enter", "H_ENTER_NESTED", (Addr("hv"), Addr("regs")),
             expect=rc("EXIT_HCALL", "H_PARAMETER")),
        replace(FLUSH_LPID, role=Role.CLEANUP),
        Call("clear-ptbl", "H_SET_PARTITION_TABLE", (0,), Role.CLEANUP))
    return Case("v1-enter-nested-msr-hv", API.V1, "H_ENTER_NESTED",
                "the L2's MSR with HV set (found by a campaign): run without HV, or refused",
                steps, "Power ISA Book III: MSR[HV] = 1 is hypervisor state, which no guest "
                "has; kvm-nested.rst: the L0 runs the L2 until an exit condition. Linux "
                "KVM-HV clears HV (kvmhv_enter_nested_guest); QEMU keeps it",
                leaves_state=False,
                crash_evidence="h_enter_nested copies the L2's pt_regs MSR, HV included; "
                               "ppc_radix64_xlate_impl: assert(!(mmuidx_hv(mmu_idx) && "
                               "cpu->vhyp))",
                deviations=("qemu-v1-enter-nested-msr-hv",))


CASES_L2_V1: tuple[Case, ...] = (*(_v1_case(cause) for cause in Cause), _v1_msr_hv_case())


# --- API v2 ---------------------------------------------------------------------------

SOURCE_V2 = ("kvm-nested.rst H_GUEST_RUN_VCPU: 'The vCPU runs with the state set previously "
             "using H_GUEST_SET_STATE()'; R4 = the exit reason; for 0xC00 'GPR3-12 are "
             "provided in the output GSB'; other state by H_GUEST_GET_STATE; the element "
             "table; Power ISA Book III (the interrupt that ends the run and the registers "
             "it sets)")
RUN = "H_GUEST_RUN_VCPU"
WIDE = gsb.FLAG_GUEST_WIDE
HDEC_VALUE_AT = gsb.HEADER.size + gsb.ELEMENT_HEADER.size   # the first element's value
OUTPUT_GPRS = range(3, 13)       # what the output buffer of an hcall exit holds


def _deadline(label: str, buf: str, delta: int, *elements: Item) -> tuple[Step, ...]:
    """A GSB in `buf` whose first element is the HDEC expiry, now + `delta`."""
    return (gsb_write(buf, gsb.element("HDEC_EXPIRY_TB", 0), *elements),
            Stamp(label, buf, HDEC_VALUE_AT, delta))


def v2_guest() -> tuple[Step, ...]:
    """Capabilities set, guest `guest` with vCPU 0, and the buffers a run needs."""
    return (*caps(), guest(), vcpu(), Alloc("gsb"), Alloc("run-in"), Alloc("run-out"),
            Alloc("proc"))


def v2_ready(program: Program, hfscr: int = HFSCR_ALL, delta: int = RUN_BOUND,
             tb_offset: int | None = TB_OFFSET) -> tuple[Step, ...]:
    """Make vCPU 0 of `v2_guest()` ready to run `program`: tables, TB offset, run buffers
    and entry state set (the HDEC expiry stamped just before its SET)."""
    wide: tuple[Item, ...] = ((0x0005, (Addr(radix.ROOT), u64(52), u64(radix.PAGE))),
                              (0x0006, (Addr("proc"), u64(4096))))
    if tb_offset is not None:
        wide += (gsb.element("TB_OFFSET", tb_offset),)
    vcpu_state: tuple[Item, ...] = (
        (0x0C00, (Addr("run-in"), u64(4096))), (0x0C01, (Addr("run-out"), u64(4096))),
        gsb.element("NIA", CODE), gsb.element("MSR", MSR), gsb.element("HFSCR", hfscr))
    return (*_program_steps(program), gsb_write("gsb", *wide),
            state("set-tables", "H_GUEST_SET_STATE", WIDE, role=Role.SETUP),
            *_deadline("deadline", "gsb", delta, *vcpu_state),
            state("set-vcpu", "H_GUEST_SET_STATE", role=Role.SETUP))


def _v2_exit_state(program: Program) -> dict[str, int | tuple[int, ...]]:
    """Element name -> what a GET after the first exit must return."""
    regs, hv = _v1_exit_state(program)   # the same registers, by their element names
    return {**regs, **hv, "DAR": SET_SPRS["DAR"], "DSISR": SET_SPRS["DSISR"]}


def get_all(label: str, want: Mapping[str, int | tuple[int, ...] | None],
            keep: tuple[str, ...] = (), flags: int = 0) -> tuple[Step, ...]:
    """GET every element of `want` (and `keep`) into `gsb` and check each value (None:
    read, not checked)."""
    names = sorted({*want, *keep}, key=gsb.BY_NAME.__getitem__)
    request = gsb_write("gsb", *(gsb.element(n, 0) for n in names))
    fields, offset = [], gsb.HEADER.size
    for name in names:
        size = gsb.ELEMENTS[gsb.BY_NAME[name]].size or 0
        offset += gsb.ELEMENT_HEADER.size
        fields.append(Field(name, offset, want.get(name), size=size))
        offset += size
    return (request, state(f"get-{label}", "H_GUEST_GET_STATE", flags),
            Read(label, "gsb", tuple(fields), length=offset))


def _v2_case(cause: Cause) -> Case:
    program = build(cause)
    hfscr = HFSCR_ALL & ~HFSCR_MSGP if cause is Cause.FACILITY else HFSCR_ALL
    delta = HDEC_DELTA if cause is Cause.HDEC else RUN_BOUND
    want = _v2_exit_state(program)
    steps: list[Step] = [
        *v2_guest(), *v2_ready(program, hfscr, delta),
        Call("run", RUN, (0, Var("guest"), 0), expect=rc("H_SUCCESS", regs=(
            ("r4", numbers.EXITS[cause.exit]),))),
    ]
    if cause is Cause.HCALL:
        steps.append(Read("run-output", "run-out", elements=tuple(
            (0x1000 + n, u64(pattern(n))) for n in OUTPUT_GPRS)))
    steps += get_all("state-at-exit", want, keep=(f"GPR{TB_GPR}",))
    if cause is Cause.HDEC:
        steps.append(Bound("hdec-honoured", Ref("run", "tb1"), Ref("deadline", "tb"), None,
                           "the run ends when the HDEC expiry passes, not before"))
    else:
        steps.append(Bound("l2-timebase", Ref("state-at-exit", f"GPR{TB_GPR}"),
                           Ref("run", "tb0"), Ref("run", "tb1"),
                           "the L2 reads the L1's timebase plus the guest's TB offset",
                           TB_OFFSET))
    if cause is Cause.HCALL:
        steps += [
            *_deadline("deadline-again", "run-in", RUN_BOUND),
            Call("run-again", RUN, (0, Var("guest"), 0),
                 expect=rc("H_SUCCESS", regs=(("r4", numbers.EXITS["EXIT_HCALL"]),))),
            Read("run-output-again", "run-out", elements=tuple(
                (0x1000 + n, u64(pattern(n) + (n == 4))) for n in OUTPUT_GPRS)),
            *get_all("state-at-second-exit", {"NIA": program.second_exit_at + 4}),
        ]
    steps.append(delete())
    return Case(f"v2-l2-exit-{cause.value}", API.V2, RUN,
                f"an L2 program leaves by {cause.value}: {cause.exit} and its state come back",
                tuple(steps), SOURCE_V2, leaves_state=True,
                deviations=DEVIATIONS_V2.get(cause, ()))


CASES_L2_V2: tuple[Case, ...] = tuple(_v2_case(cause) for cause in Cause)
