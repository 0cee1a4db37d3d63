"""The KVM probe: the smallest guest that shows whether an L1's KVM runs a VM.

A big-endian ppc64 ELF of a few instructions, made here: QEMU's VOF firmware
enters it in real mode at its load address, it makes one hcall
(H_PUT_TERM_CHAR) that prints `SAYS` on the first vty, then cedes its CPU for
good (H_CEDE: a spinning vCPU under nested-papr is slow to kill).  Run by an
L1's QEMU with `-accel kvm`, it proves what a kexec stage asks (KVM creates a
VM, enters it, and gets its hcall back) in a fraction of an L2 Linux boot: the
cases that are about L2s boot L2 Linux; the cases that are about whether KVM
works probe.
"""

from __future__ import annotations

import base64
import struct

SAYS = b"PN-KVM-PROBE-OK\n"   # 16 bytes: the hcall's two character registers
PATH = "/tmp/powernest-kvm-probe.elf"
H_PUT_TERM_CHAR = 0x58
H_CEDE = 0xE0
VTY = 0x71000000              # the reg of QEMU's first spapr-vty
_ELF_HEADER, _PROGRAM_HEADER = 64, 56


def _li(reg: int, imm: int) -> int:
    return (14 << 26) | (reg << 21) | (imm & 0xFFFF)       # addi reg, 0, imm


def _lis(reg: int, imm: int) -> int:
    return (15 << 26) | (reg << 21) | (imm & 0xFFFF)       # addis reg, 0, imm


def _ld(reg: int, base: int, offset: int) -> int:
    return (58 << 26) | (reg << 21) | (base << 16) | (offset & 0xFFFC)


def code() -> bytes:
    """The instructions, then the text they print."""
    words = [
        (18 << 26) | 4 | 1,                        # bl +4: LR = the next instruction
        (31 << 26) | (10 << 21) | (8 << 16) | (339 << 1),   # mflr r10
        _li(3, H_PUT_TERM_CHAR), _lis(4, VTY >> 16), _li(5, len(SAYS)),
        _ld(6, 10, 44), _ld(7, 10, 52),            # SAYS, 44 bytes after the mflr
        0x44000022,                                # sc 1: the hcall
        _li(3, H_CEDE), 0x44000022,                # cede ...
        0x4BFFFFF8,                                # ... again (b -8), until killed
        0x60000000,                                # nop: SAYS 8-byte aligned
    ]
    return b"".join(struct.pack(">I", w) for w in words) + SAYS


def elf() -> bytes:
    """An ELF64 big-endian executable whose one segment (at address 0) is `code()`."""
    text = code()
    offset = _ELF_HEADER + _PROGRAM_HEADER
    header = struct.pack(">4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 2, 1, 0, 0,
                         2, 21, 1, 0, _ELF_HEADER, 0, 0, _ELF_HEADER, _PROGRAM_HEADER,
                         1, 0, 0, 0)
    program = struct.pack(">IIQQQQQQ", 1, 5, offset, 0, 0, len(text), len(text), 8)
    return header + program + text


def install_script() -> list[str]:
    """A command that writes the probe to `PATH` wherever it runs (an L1, an LPAR)."""
    data = base64.b64encode(elf()).decode()
    return ["sh", "-c", 'test -s "$2" || echo "$1" | base64 -d > "$2"', "sh", data, PATH]
