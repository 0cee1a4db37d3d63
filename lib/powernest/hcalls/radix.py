"""The partition-scoped radix tree an L1 builds for an L2's guest-real memory.

The geometry is Linux's for 64 KiB pages (arch/powerpc/include/asm/book3s/64/
radix-64k.h): a 52-bit space, a root of 2^13 entries, then 2^9, 2^9 and 2^5,
each leaf a 64 KiB page.  Entries are big endian whatever the L1's byte order
(Power ISA Book III, "Radix Tree Translation"):

- a directory entry: V (bit 0) | NLB, the next table's real address | NLS, its
  size as log2 of its entries (bits 59-63);
- a leaf: V | L (bit 1) | RPN, the page's real address | R | C | EAA
  (read, read/write, execute);
- the partition table entry's first doubleword: HR (bit 0) | RTS, the tree's
  size (52 bits: RTS1 = 0b10 in bits 1-2, RTS2 = 0b101 in bits 56-58) | RPDB,
  the root's real address | RPDS, the root's size (13).

`tree()` gives the steps that allocate and fill the tables for a few pages
of the first 2 MiB of guest-real space, each backed by an L1 buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from powernest.hcalls.model import Addr, Alloc, Step, Write

PAGE = 1 << 16                  # the leaf size
SPACE_BITS = 52
LEVELS = (13, 9, 9, 5)          # log2 of the entries of each level, root first
VALID = 1 << 63
LEAF = 1 << 62
REFERENCED = 1 << 8
CHANGED = 1 << 7
READ, READ_WRITE, EXECUTE = 0x4, 0x2, 0x1
HOST_RADIX = 1 << 63            # PATE doubleword 0 HR
RTS_52 = (0b10 << 61) | (0b101 << 5)
GUEST_RADIX = 1 << 63           # PATE doubleword 1 (API v1): the L2 is radix
ROOT = "radix-root"
TABLES = ("radix-l1", "radix-l2", "radix-l3")


@dataclass(frozen=True)
class Page:
    """A 64 KiB guest-real page at `gra`, backed by L1 buffer `buf` (64 KiB)."""

    gra: int
    buf: str
    writable: bool = True
    executable: bool = True

    @property
    def leaf_bits(self) -> int:
        eaa = READ | (READ_WRITE if self.writable else 0) | (EXECUTE if self.executable else 0)
        return VALID | LEAF | REFERENCED | (CHANGED if self.writable else 0) | eaa


def indexes(gra: int) -> tuple[int, ...]:
    """The index of `gra` at each level of the tree, root first."""
    shift, found = SPACE_BITS, []
    for bits in LEVELS:
        shift -= bits
        found.append((gra >> shift) & ((1 << bits) - 1))
    return tuple(found)


def _entry(index: int, target: Addr) -> tuple[int, Addr]:
    return index * 8, target


def tree(pages: Sequence[Page]) -> tuple[Step, ...]:
    """Allocate the tables and the pages' buffers, and write the entries mapping them."""
    if not pages:
        raise ValueError("a tree maps at least one page")
    for page in pages:
        if page.gra % PAGE or page.gra >= 1 << 21:
            raise ValueError(f"guest-real {page.gra:#x}: not a 64 KiB page in the first 2 MiB")
    tables = (ROOT, *TABLES)
    steps: list[Step] = [Alloc(ROOT, 8 << LEVELS[0]), *(Alloc(t, 4096) for t in TABLES),
                         *(Alloc(p.buf, PAGE) for p in pages)]
    first = indexes(pages[0].gra)
    for level, (table, below) in enumerate(zip(tables, TABLES, strict=False)):
        steps.append(Write(table, (Addr(below, bits=VALID | LEVELS[level + 1]),),
                           offset=first[level] * 8))
    for page in pages:
        *upper, last = indexes(page.gra)
        if tuple(upper) != first[:-1]:
            raise ValueError(f"guest-real {page.gra:#x} is not under the first page's tables")
        steps.append(Write(TABLES[-1], (Addr(page.buf, bits=page.leaf_bits),), offset=last * 8))
    return tuple(steps)


def partition_entry() -> Addr:
    """Doubleword 0 of a partition table entry for the tree `tree()` builds."""
    return Addr(ROOT, bits=HOST_RADIX | RTS_52 | LEVELS[0])
