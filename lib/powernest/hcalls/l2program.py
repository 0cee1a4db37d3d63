"""L2 micro-programs: a few instructions an L1 runs as its L2, each leaving by one cause.

Guest-real layout (64 KiB pages; big endian, MSR[LE] = 0):

- 0x0100-0x0FFF: the L2's own interrupt vectors, every 0x20: `mfspr r28, SRR0;
  mfspr r27, SRR1; li r30, VECTOR; sc 1`, so an interrupt the L2 takes itself
  comes back to the L1 as an hcall exit that names it;
- `CODE`: the program: set every register of `SET_GPRS` and `SET_SPRS` to its
  pattern, then leave by the chosen `Cause`;
- `READ_ONLY`: a second page, mapped without write permission;
- `UNMAPPED`: a guest-real address no page backs.

Right after the exiting instruction, a second part: entered again after an
hcall exit, the L2 adds 1 to GPR4 and makes an hcall, so the L1 sees that it
resumed where it left off with the state the L1 handed back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from powernest.hcalls import asm

CODE = 0x1000                   # in the first page, at guest-real 0
READ_ONLY = 0x1_0000
UNMAPPED = 0x10_0000
VECTORS = range(0x100, 0x1000, 0x20)
MSR_SF, MSR_ME = 1 << 63, 1 << 12
MSR = MSR_SF | MSR_ME           # 64-bit, big endian, real mode (IR = DR = 0)
TB_GPR = 20                     # where the program keeps the timebase it read
VECTOR_GPR = 30                 # an L2 vector stub's mark: the vector
SRR0_GPR, SRR1_GPR = 28, 27     # and what the interrupt put in SRR0 and SRR1
SCRATCH = 29                    # the address register of loads and branches


def pattern(n: int) -> int:
    """A value for GPR n: not 0, not all-ones, each half different (`0x504E_nn_..._nn`)."""
    return 0x504E_0000_0000_0000 | (n << 40) | (0x00C3_0000 + n * 0x0101) | (n << 24)


SET_GPRS = tuple(n for n in range(3, 32) if n not in (TB_GPR, SCRATCH))
# The SPRs the program sets (an L2 may, without hypervisor privilege), with their patterns.
SET_SPRS: dict[str, int] = {
    "CTR": 0x504E_0000_C7C7_0009, "LR": 0x504E_0000_0000_1F00, "XER": 0x2000_0000,
    "SRR0": 0x504E_0000_5350_0000, "SRR1": 0x8000_0000_0000_1001,
    "SPRG0": 0x504E_5350_5247_0000, "SPRG1": 0x504E_5350_5247_0001,
    "SPRG2": 0x504E_5350_5247_0002, "SPRG3": 0x504E_5350_5247_0003,
    "PIDR": 0x0000_0000_0000_0ABC, "DAR": 0x504E_0000_0000_DA00, "DSISR": 0x0200_0000,
}
CR = 0x2468_ACE1


class Cause(StrEnum):
    """How a program leaves the L2, with the vector the L1 must be told."""

    HCALL = "hcall"             # sc 1
    LOAD = "load-unmapped"      # a load from a guest-real address no page backs
    FETCH = "fetch-unmapped"    # a branch to such an address
    STORE = "store-read-only"   # a store to a page mapped without write permission
    ILLEGAL = "illegal"         # an instruction word no processor has
    FACILITY = "facility"       # msgsndp with HFSCR[MSGP] clear
    HDEC = "hdec"               # spin until the hypervisor decrementer expires
    TRAP = "trap"               # tw 31,0,0: the L2's own program interrupt, not an exit

    @property
    def exit(self) -> str:
        return {Cause.HCALL: "EXIT_HCALL", Cause.LOAD: "EXIT_HDSI", Cause.FETCH: "EXIT_HISI",
                Cause.STORE: "EXIT_HDSI", Cause.ILLEGAL: "EXIT_HEAI",
                Cause.FACILITY: "EXIT_HFAC", Cause.HDEC: "EXIT_HDEC",
                Cause.TRAP: "EXIT_HCALL"}[self]


@dataclass(frozen=True)
class Program:
    """A program's bytes, by guest-real address (the rest of the page stays zero: no
    instruction), and where its exits happen."""

    cause: Cause
    segments: tuple[tuple[int, bytes], ...]
    exit_at: int         # the guest-real address of the instruction that exits
    exit_word: int       # that instruction (what HEIR holds after an emulation assist)

    @property
    def resume_at(self) -> int:
        """Where it goes on when entered again after an hcall exit: the second part."""
        return self.exit_at + 4

    @property
    def second_exit_at(self) -> int:
        """The hcall of the second part."""
        return self.exit_at + 8


def _prologue() -> list[int]:
    code: list[int] = []
    for name, value in SET_SPRS.items():
        code += [*asm.load64(SCRATCH, value), asm.mtspr(asm.SPR[name], SCRATCH)]
    code += [*asm.load64(SCRATCH, CR), asm.mtcrf(0xFF, SCRATCH)]
    for n in SET_GPRS:
        code += asm.load64(n, pattern(n))
    code.append(asm.mfspr(TB_GPR, asm.SPR["TB"]))
    return code


def _exit(cause: Cause) -> list[int]:
    """The instructions that leave by `cause`; the exiting one is last."""
    if cause is Cause.HCALL:
        return [asm.SC_HCALL]
    if cause is Cause.LOAD:
        return [*asm.load64(SCRATCH, UNMAPPED), asm.ld(SCRATCH, 0, SCRATCH)]
    if cause is Cause.FETCH:
        return [*asm.load64(SCRATCH, UNMAPPED), asm.mtspr(asm.SPR["CTR"], SCRATCH), asm.BCTR]
    if cause is Cause.STORE:
        return [*asm.load64(SCRATCH, READ_ONLY), asm.stw(SCRATCH, 0, SCRATCH)]
    if cause is Cause.ILLEGAL:
        return [asm.ILLEGAL]
    if cause is Cause.FACILITY:
        return [asm.li(SCRATCH, 0), asm.msgsndp(SCRATCH)]
    if cause is Cause.HDEC:
        return [asm.HERE]
    return [asm.TRAP]


def _vectors() -> bytes:
    table = bytearray(VECTORS[-1] + 0x20 - VECTORS[0])
    for vector in VECTORS:
        stub = asm.words([asm.mfspr(SRR0_GPR, asm.SPR["SRR0"]),
                          asm.mfspr(SRR1_GPR, asm.SPR["SRR1"]), asm.li(VECTOR_GPR, vector),
                          asm.SC_HCALL, asm.HERE])
        table[vector - VECTORS[0]:vector - VECTORS[0] + len(stub)] = stub
    return bytes(table)


def build(cause: Cause) -> Program:
    """The program that leaves by `cause`, then (entered again) makes an hcall."""
    leave = _exit(cause)
    code = _prologue() + leave + [asm.addi(4, 4, 1), asm.SC_HCALL, asm.HERE]
    exit_at = CODE + 4 * (len(code) - 4)
    return Program(cause, ((VECTORS[0], _vectors()), (CODE, asm.words(code))),
                   exit_at, leave[-1])


def null() -> Program:
    """A program that only makes an hcall: the L2 runs on the state the L1 set."""
    return Program(Cause.HCALL, ((CODE, asm.words([asm.SC_HCALL, asm.HERE])),),
                   CODE, asm.SC_HCALL)
