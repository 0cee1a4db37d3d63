"""A Power ISA encoder for the few instructions an L2 micro-program needs.

Each function returns one 32-bit instruction word (or a list of them for
`load64`); `words` lays them out in the L2's byte order.  Encodings are the
ISA's (Power ISA v3.1, Book I and III); the unit tests check each against a
word the GNU assembler produces.
"""

from __future__ import annotations

from collections.abc import Iterable

SC_HCALL = 0x4400_0022          # sc 1: an hcall, to the L2's hypervisor (an exit)
TRAP = 0x7FE0_0008              # tw 31,0,0: an unconditional trap (program interrupt)
ILLEGAL = 0x0000_0ABC           # primary opcode 0, not attn: no instruction (HEIR shows it)
BCTR = 0x4E80_0420              # bcctr 20,0: branch to CTR
HERE = 0x4800_0000              # b . (spin)

SPR = {"XER": 1, "LR": 8, "CTR": 9, "DSISR": 18, "DAR": 19, "SRR0": 26, "SRR1": 27,
       "PIDR": 48, "TB": 268, "SPRG0": 272, "SPRG1": 273, "SPRG2": 274, "SPRG3": 275}


def _reg(r: int) -> int:
    if not 0 <= r <= 31:
        raise ValueError(f"no register r{r}")
    return r


def _d_form(opcode: int, rt: int, ra: int, imm: int) -> int:
    return (opcode << 26) | (_reg(rt) << 21) | (_reg(ra) << 16) | (imm & 0xFFFF)


def addi(rt: int, ra: int, imm: int) -> int:
    return _d_form(14, rt, ra, imm)


def li(rt: int, imm: int) -> int:
    if not -0x8000 <= imm < 0x8000:
        raise ValueError(f"li r{rt}: {imm:#x} is not a signed 16-bit value")
    return addi(rt, 0, imm)


def addis(rt: int, ra: int, imm: int) -> int:
    return _d_form(15, rt, ra, imm)


def ori(ra: int, rs: int, imm: int) -> int:
    return _d_form(24, rs, ra, imm)


def oris(ra: int, rs: int, imm: int) -> int:
    return _d_form(25, rs, ra, imm)


def sldi32(ra: int, rs: int) -> int:
    """rldicr ra,rs,32,31: shift left by 32 (MD-form, sh=32, me=31)."""
    return (30 << 26) | (_reg(rs) << 21) | (_reg(ra) << 16) | (62 << 5) | (1 << 2) | (1 << 1)


def load64(rt: int, value: int) -> list[int]:
    """Five instructions that leave the 64-bit `value` in `rt`."""
    v = value & (1 << 64) - 1
    return [addis(rt, 0, v >> 48), ori(rt, rt, (v >> 32) & 0xFFFF), sldi32(rt, rt),
            oris(rt, rt, (v >> 16) & 0xFFFF), ori(rt, rt, v & 0xFFFF)]


def _spr_field(spr: int) -> int:
    return ((spr & 0x1F) << 5) | (spr >> 5)


def mtspr(spr: int, rs: int) -> int:
    return (31 << 26) | (_reg(rs) << 21) | (_spr_field(spr) << 11) | (467 << 1)


def mfspr(rt: int, spr: int) -> int:
    return (31 << 26) | (_reg(rt) << 21) | (_spr_field(spr) << 11) | (339 << 1)


def msgsndp(rb: int) -> int:
    """Send a directed privileged doorbell (HFSCR[MSGP] controls it for a guest)."""
    return (31 << 26) | (_reg(rb) << 11) | (142 << 1)


def stw(rs: int, d: int, ra: int) -> int:
    return _d_form(36, rs, ra, d)


def mtcrf(mask: int, rs: int) -> int:
    return (31 << 26) | (_reg(rs) << 21) | ((mask & 0xFF) << 12) | (144 << 1)


def ld(rt: int, ds: int, ra: int) -> int:
    if ds % 4:
        raise ValueError(f"ld: displacement {ds} is not a multiple of 4")
    return _d_form(58, rt, ra, ds & 0xFFFC)


def words(instructions: Iterable[int], little: bool = False) -> bytes:
    """Instruction words as the L2 fetches them (big endian unless MSR[LE])."""
    return b"".join(w.to_bytes(4, "little" if little else "big") for w in instructions)
