"""The builders of L2 micro-programs: the instruction encoder against the GNU assembler,
the partition-scoped radix tree, and the programs' layout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from powernest.hcalls import asm, l2program, radix
from powernest.hcalls.l2program import CODE, VECTORS, Cause, build, null, pattern
from powernest.hcalls.model import Addr, Alloc, Write

AS = shutil.which("powerpc64le-linux-gnu-as")
OBJCOPY = shutil.which("powerpc64le-linux-gnu-objcopy")

# (assembler source, our encoding)
INSTRUCTIONS = [
    ("li 30, 0x700", asm.li(30, 0x700)),
    ("li 3, -1", asm.li(3, -1)),
    ("addi 4, 4, 1", asm.addi(4, 4, 1)),
    ("lis 29, 0x504e", asm.addis(29, 0, 0x504E)),
    ("ori 29, 29, 0xc3a5", asm.ori(29, 29, 0xC3A5)),
    ("oris 7, 7, 0xffff", asm.oris(7, 7, 0xFFFF)),
    ("sldi 29, 29, 32", asm.sldi32(29, 29)),
    ("mtspr 815, 5", asm.mtspr(815, 5)),
    ("mfspr 20, 268", asm.mfspr(20, asm.SPR["TB"])),
    ("mfsrr0 28", asm.mfspr(28, asm.SPR["SRR0"])),
    ("mtctr 29", asm.mtspr(asm.SPR["CTR"], 29)),
    ("mtlr 29", asm.mtspr(asm.SPR["LR"], 29)),
    ("mtsprg 3, 29", asm.mtspr(asm.SPR["SPRG3"], 29)),
    ("mtcrf 0xff, 29", asm.mtcrf(0xFF, 29)),
    ("ld 29, 0(29)", asm.ld(29, 0, 29)),
    ("ld 5, -8(6)", asm.ld(5, -8, 6)),
    ("stw 29, 0(29)", asm.stw(29, 0, 29)),
    ("msgsndp 29", asm.msgsndp(29)),
    ("sc 1", asm.SC_HCALL),
    ("trap", asm.TRAP),
    ("bctr", asm.BCTR),
    ("b .", asm.HERE),
]


@pytest.mark.skipif(not (AS and OBJCOPY), reason="no powerpc64le binutils here")
def test_encodings_are_the_gnu_assemblers(tmp_path: Path) -> None:
    source = tmp_path / "t.s"
    source.write_text("".join(f"{text}\n" for text, _ in INSTRUCTIONS))
    assert AS and OBJCOPY
    subprocess.run([AS, "-a64", "-mbig", "-mpower10", "-o", str(tmp_path / "t.o"), str(source)],
                   check=True)
    subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", str(tmp_path / "t.o"),
                    str(tmp_path / "t.bin")], check=True)
    theirs = (tmp_path / "t.bin").read_bytes()
    for n, (text, ours) in enumerate(INSTRUCTIONS):
        assert theirs[4 * n:4 * n + 4] == asm.words([ours]), text


def test_load64_reaches_any_value() -> None:
    # Simulate the five instructions on the value's halves.
    for value in (0, 1, (1 << 64) - 1, 0x8000_0000_0000_0000, pattern(31), 0x7FFF_8000_FFFF_0001):
        words = asm.load64(5, value)
        imm = [w & 0xFFFF for w in words]
        hi = imm[0] - (1 << 16) if imm[0] & 0x8000 else imm[0]          # lis: sign-extended
        reg = (hi << 16) | imm[1]
        reg = (reg << 32) | (imm[3] << 16) | imm[4]
        assert reg & (1 << 64) - 1 == value


def test_bad_operands_are_refused() -> None:
    with pytest.raises(ValueError):
        asm.li(3, 0x8000)
    with pytest.raises(ValueError):
        asm.ld(3, 6, 4)
    with pytest.raises(ValueError):
        asm.addi(32, 0, 0)


def test_radix_indexes_and_tree() -> None:
    assert radix.indexes(0) == (0, 0, 0, 0)
    assert radix.indexes(0x1_0000) == (0, 0, 0, 1)
    assert radix.indexes(0x1F_0000) == (0, 0, 0, 31)
    pages = [radix.Page(0, "a"), radix.Page(0x1_0000, "b", writable=False)]
    steps = radix.tree(pages)
    allocs = [s for s in steps if isinstance(s, Alloc)]
    assert [(a.buf, a.size) for a in allocs] == [
        (radix.ROOT, 1 << 16), ("radix-l1", 4096), ("radix-l2", 4096), ("radix-l3", 4096),
        ("a", 1 << 16), ("b", 1 << 16)]
    writes = [s for s in steps if isinstance(s, Write)]
    directory = radix.VALID | 9
    assert [(w.buf, w.offset, w.data) for w in writes[:3]] == [
        (radix.ROOT, 0, (Addr("radix-l1", bits=directory),)),
        ("radix-l1", 0, (Addr("radix-l2", bits=directory),)),
        ("radix-l2", 0, (Addr("radix-l3", bits=radix.VALID | 5),))]
    leaf_a, leaf_b = writes[3], writes[4]
    assert (leaf_a.buf, leaf_a.offset, leaf_b.offset) == ("radix-l3", 0, 8)
    a_bits, b_bits = leaf_a.data[0], leaf_b.data[0]
    assert isinstance(a_bits, Addr) and isinstance(b_bits, Addr)
    assert a_bits.bits == 0xC000_0000_0000_0187     # V L R C, read/write, execute
    assert b_bits.bits == 0xC000_0000_0000_0105     # V L R, read, execute: no write, no C
    assert radix.partition_entry() == Addr(radix.ROOT, bits=0xC000_0000_0000_00AD)


def test_radix_refuses_pages_it_cannot_map() -> None:
    for gra in (0x8000, 1 << 21):
        with pytest.raises(ValueError):
            radix.tree([radix.Page(gra, "x")])
    with pytest.raises(ValueError):
        radix.tree([])


def _word_at(program: l2program.Program, gra: int) -> int:
    for start, data in program.segments:
        if start <= gra < start + len(data):
            return int.from_bytes(data[gra - start:gra - start + 4], "big")
    raise AssertionError(f"{gra:#x} is not in the program")


@pytest.mark.parametrize("cause", list(Cause))
def test_each_program_exits_where_it_says(cause: Cause) -> None:
    program = build(cause)
    assert _word_at(program, program.exit_at) == program.exit_word
    assert _word_at(program, program.resume_at) == asm.addi(4, 4, 1)
    assert _word_at(program, program.second_exit_at) == asm.SC_HCALL
    assert _word_at(program, CODE) != 0
    exiting = {Cause.HCALL: asm.SC_HCALL, Cause.ILLEGAL: asm.ILLEGAL, Cause.HDEC: asm.HERE,
               Cause.TRAP: asm.TRAP, Cause.FETCH: asm.BCTR}
    if cause in exiting:
        assert program.exit_word == exiting[cause]


def test_vectors_come_back_to_the_l1_naming_themselves() -> None:
    program = build(Cause.HCALL)
    for vector in (VECTORS[0], 0x700, 0xC00, VECTORS[-1]):
        assert _word_at(program, vector + 8) == asm.li(l2program.VECTOR_GPR, vector)
        assert _word_at(program, vector + 12) == asm.SC_HCALL


def test_patterns_are_distinct_and_not_trivial() -> None:
    values = [pattern(n) for n in range(32)]
    assert len(set(values)) == 32
    for v in values:
        assert v not in (0, (1 << 64) - 1) and v >> 32 != v & 0xFFFF_FFFF


def test_the_null_program_only_makes_an_hcall() -> None:
    program = null()
    assert program.segments == ((CODE, asm.words([asm.SC_HCALL, asm.HERE])),)
