"""API v2 state round trips: each element of kvm-nested.rst's table SET, then GET back,
before and after the vCPU runs, and values an L0 must refuse.

A value is a pattern (not 0, not all-ones, each half of a 128-bit element
different) within the register's architected bits (`LEGAL`), so a real L0
has no reason to change it.  After the run (a program that only makes an
hcall, on the state the L1 set) a register the run leaves alone must hold the
same value; a counter must have gone on from it (`COUNTERS`); elements the
run itself sets, or the run needs set its own way, are read before the run
only (`BEFORE_RUN_ONLY`).  GPRs and VSRs, plain storage, go in one row each.
"""

from __future__ import annotations

from powernest.hcalls import gsb, numbers
from powernest.hcalls.cases_l2 import HFSCR_ALL, MSR, get_all, v2_guest, v2_ready
from powernest.hcalls.l2program import null
from powernest.hcalls.model import (
    Bound,
    Call,
    Case,
    Expect,
    Ref,
    Step,
    Var,
    delete,
    gsb_write,
    rc,
    state,
)
from powernest.nested import API

RST = "kvm-nested.rst"
SET, GET, RUN = "H_GUEST_SET_STATE", "H_GUEST_GET_STATE", "H_GUEST_RUN_VCPU"
WIDE = gsb.FLAG_GUEST_WIDE
MSR_HV = 1 << 60
MSR_ALL_SAFE = MSR | 1 << 25 | 1 << 23 | 1 << 15 | 1 << 13 | 0x33  # VEC VSX EE FP IR DR RI LE
LPCR_ILE, LPCR_AIL_3, LPCR_DPFD_4 = 1 << 25, 3 << 23, 4 << 52
LEGAL: dict[str, int] = {
    "LOGICAL_PVR": 0x0F00_0005,          # POWER9 compatibility mode, which P9-P11 offer
    "TB_OFFSET": 0x0000_2000_0000_0000,  # a multiple of 2^24 (TBU40)
    "MSR": MSR_ALL_SAFE, "LPCR": LPCR_ILE | LPCR_AIL_3 | LPCR_DPFD_4, "HFSCR": HFSCR_ALL,
    "FSCR": 0x2184,                      # PREFIX TAR EBB DSCR
    "XER": 0x2004_0005,                  # CA CA32, byte count 5
    "FPSCR": 0xF9,                       # VE OE UE ZE XE, round toward zero
    "VSCR": 0x0001_0001,                 # NJ SAT
    "DSCR": 0x15, "CTRL": 0x1, "PIDR": 0x1_2345, "MMCR0": 0x8000_0000,  # counters frozen
    "DAWRX0": 0x3, "DAWRX1": 0x3,        # PRO PNH, not HYP
    "DEXCR": 0x0C00_0000_0C00_0000, "HDEXCR": 0x0C00_0000_0C00_0000,
    "PPR": 0x0010_0000_0000_0000,        # priority 2 (low)
    "IAMR": 0x5555_5555_0000_5555,
}
ALIGNED = {"DAWR0": 7, "DAWR1": 7, "EBBHR": 3, "EBBRR": 3, "CIABR": 3}  # low bits reserved
COUNTERS = {"PURR", "SPURR", "IC", "VTB", "PMC1", "PMC2", "PMC3", "PMC4", "PMC5", "PMC6"}
COUNTER_SLACK = 1 << 32
BEFORE_RUN_ONLY = {
    "NIA": "the run starts the program at its own NIA", "MSR": "the run needs its own MSR",
    "HDEC_EXPIRY_TB": "the run needs its own HDEC expiry",
    "LPCR": "the L0 adds the LPCR bits it requires (HR, UPRT, ...) when the vCPU runs",
    "SRR0": "the program's sc sets SRR0", "SRR1": "the program's sc sets SRR1",
    "CFAR": "the L0's entry code may branch on the L2's behalf",
}
WRITE_ONLY = {"PPR"}                     # kvm-nested.rst: W
# Read-only elements are checked by the exit rows (HDAR...) and the GET rows of
# cases_v2_state (0x0001, 0x0002); 0x0005, 0x0006, 0x0C00, 0x0C01 and 0x0C02 by their
# own rows there (a GET of them aborts QEMU 10.0.2; QEMU has no 0x0C02).
BATCHED = ("GPR", "VSR")
SOURCE = (f"{RST} element table (ID, size, RW, scope) and H_GUEST_SET_STATE/GET_STATE: the "
          "L0 keeps the L2's state; 'The vCPU runs with the state set previously using "
          "H_GUEST_SET_STATE()'")


def value(name: str) -> int:
    """The pattern an element is set to."""
    if name in LEGAL:
        return LEGAL[name]
    element_id = gsb.BY_NAME[name]
    size = gsb.ELEMENTS[element_id].size or 8
    if size == 4:
        return 0x5A00_0000 | element_id
    word = (0x504E_0000 | element_id) << 32 | 0xC3A5_0000 | element_id
    if size == 16:
        return word << 64 | (0x1E4E_0000 | element_id) << 32 | 0x3CA5_0000 | element_id
    return word & ~ALIGNED.get(name, 0)


def _after_run(names: tuple[str, ...]) -> tuple[dict[str, int | None], tuple[Step, ...]]:
    """What a GET after the run must return, and the bounds of the counters."""
    want: dict[str, int | None] = {}
    bounds: list[Step] = []
    for name in names:
        if name in COUNTERS:
            want[name] = None
            bounds.append(Bound(f"{name.lower()}-counts-on", Ref("after-run", name),
                                value(name), value(name) + COUNTER_SLACK,
                                "a counter goes on from the value set"))
        else:
            want[name] = value(name)
    return want, tuple(bounds)


def _round_trip(case_id: str, summary: str, names: tuple[str, ...],
                deviations: tuple[str, ...] = ()) -> Case:
    element_ids = [gsb.BY_NAME[n] for n in names]
    scope = {gsb.ELEMENTS[i].scope for i in element_ids}
    flags = WIDE if scope == {gsb.Scope.GUEST} else 0
    steps: list[Step] = [
        *v2_guest(),
        gsb_write("gsb", *(gsb.element(n, value(n)) for n in names)),
        state("set", SET, flags),
    ]
    done = ["SET"]
    if not set(names) & WRITE_ONLY:
        steps += get_all("before-run", {n: value(n) for n in names}, flags=flags)
        done.append("GET back")
    run_names = tuple(n for n in names if n not in BEFORE_RUN_ONLY and n not in WRITE_ONLY)
    if run_names:
        want, bounds = _after_run(run_names)
        tb_offset = None if "TB_OFFSET" in names else 0
        steps += [*v2_ready(null(), tb_offset=tb_offset),
                  Call("run", RUN, (0, Var("guest"), 0),
                       expect=rc("H_SUCCESS", regs=(("r4", numbers.EXITS["EXIT_HCALL"]),))),
                  *get_all("after-run", want, flags=flags), *bounds]
        done += ["run", "GET again"]
    steps.append(delete())
    first = f"0x{element_ids[0]:04x}" + (" ..." if len(names) > 1 else "")
    return Case(case_id, API.V2, GET if "GET back" in done else SET,
                f"{summary} ({first}): {', '.join(done)}", tuple(steps), SOURCE,
                leaves_state=True, deviations=deviations)


# Known deviations of QEMU 10.0.2 by element (see `deviations`).
DEVIATIONS = {
    "TB_OFFSET": "qemu-v2-tb-offset-not-returned",
    "SPURR": "qemu-v2-spurr-from-purr",
    "DEC_EXPIRY_TB": "qemu-v2-dec-expiry-inverted",
    **dict.fromkeys(("MMCR3", "SIER2", "SIER3", "WORT"), "qemu-v2-elements-ignored"),
}


def _single(spec: gsb.ElementSpec) -> Case:
    return _round_trip(f"v2-state-round-trip-{spec.name.lower().replace('_', '-')}",
                       spec.name, (spec.name,),
                       (DEVIATIONS[spec.name],) if spec.name in DEVIATIONS else ())


def _round_tripped(spec: gsb.ElementSpec) -> bool:
    return not spec.read_only and spec.size is not None and spec.id not in (
        0x0005, 0x0006, 0x0C00, 0x0C01, 0x0C02) and not spec.name.startswith(BATCHED)


def _refused(case_id: str, summary: str, name: str, bad: int, source: str,
             deviation: str) -> Case:
    element_id = gsb.BY_NAME[name]
    flags = WIDE if gsb.ELEMENTS[element_id].scope is gsb.Scope.GUEST else 0
    return Case(case_id, API.V2, SET, summary,
                (*v2_guest(), gsb_write("gsb", gsb.element(element_id, bad)),
                 state("set", SET, flags, expect=Expect(("H_INVALID_ELEMENT_VALUE",),
                                                        (("r4", 0),))), delete()),
                source, leaves_state=True, deviations=(deviation,))


CASES_V2_ELEMENTS: tuple[Case, ...] = (
    _round_trip("v2-state-round-trip-gprs", "GPR0-31",
                tuple(f"GPR{n}" for n in range(32))),
    _round_trip("v2-state-round-trip-vsrs", "VSR0-63",
                tuple(f"VSR{n}" for n in range(64))),
    *(_single(spec) for spec in gsb.ELEMENTS.values() if _round_tripped(spec)),
    _refused("v2-set-state-msr-hv", "an L2 MSR with MSR[HV] set", "MSR", MSR | MSR_HV,
             f"{RST}: H_Invalid_Element_Value for a value the L0 cannot use; an L2 never runs "
             "in hypervisor state (Power ISA: MSR[HV] is the hypervisor's)",
             "qemu-v2-element-values-unchecked"),
    _refused("v2-set-state-lpcr-reserved", "LPCR with reserved bit 0 set", "LPCR", 1 << 63,
             f"{RST}: H_Invalid_Element_Value for a value the L0 cannot use; LPCR bit 0 is "
             "reserved (Power ISA Book III)", "qemu-v2-element-values-unchecked"),
    _refused("v2-set-state-logical-pvr-power7", "logical PVR 0x0F000003 (POWER7 mode)",
             "LOGICAL_PVR", 0x0F00_0003,
             f"{RST}: the nested API offers POWER9 and later modes (H_GUEST_GET_CAPABILITIES); "
             "a logical PVR of another is a value the L0 cannot use",
             "qemu-v2-element-values-unchecked"),
)
