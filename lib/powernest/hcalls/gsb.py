"""The Guest State Buffer (GSB) of the v2 API: element table, encoder, decoder.

Format (Linux Documentation/arch/powerpc/kvm-nested.rst, "Guest State
Buffer"; all big endian): a 4-byte element count, then elements of a 2-byte
ID, a 2-byte value size and the value.  The element table (ID, size, RW,
thread/guest scope) is the one in that document; Linux's
asm/guest-state-buffer.h (KVMPPC_GSID_*) and kvm/guest-state-buffer.c
(kvmppc_gsid_size, kvmppc_gsid_flags) agree with it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

HEADER = struct.Struct(">I")
ELEMENT_HEADER = struct.Struct(">HH")

# Request flags of H_GUEST_GET_STATE / H_GUEST_SET_STATE (kvm-nested.rst, IBM bit 0 = MSB).
FLAG_GUEST_WIDE = 1 << 63        # bit 0: getGuestWideState (Linux: H_GUEST_FLAGS_WIDE)
FLAG_OWNERSHIP = 1 << 62         # bit 1: take (GET) / return (SET) ownership of vCPU state


class Scope(StrEnum):
    GUEST = "guest-wide"   # "G" in the table: needs FLAG_GUEST_WIDE
    VCPU = "vcpu"          # "T" (thread): one vCPU's state


@dataclass(frozen=True)
class ElementSpec:
    id: int
    name: str
    size: int | None       # None: any size (the NOP element)
    scope: Scope | None    # None: either scope (the NOP element)
    read_only: bool


def _specs() -> dict[int, ElementSpec]:
    G, T = Scope.GUEST, Scope.VCPU
    rows: list[ElementSpec] = [
        ElementSpec(0x0000, "NOP", None, None, False),
        ElementSpec(0x0001, "HOST_STATE_SIZE", 8, G, True),
        ElementSpec(0x0002, "RUN_OUTPUT_MIN_SIZE", 8, G, True),
        ElementSpec(0x0003, "LOGICAL_PVR", 4, G, False),
        ElementSpec(0x0004, "TB_OFFSET", 8, G, False),
        ElementSpec(0x0005, "PARTITION_TABLE", 0x18, G, False),
        ElementSpec(0x0006, "PROCESS_TABLE", 0x10, G, False),
        ElementSpec(0x0C00, "RUN_INPUT", 0x10, T, False),
        ElementSpec(0x0C01, "RUN_OUTPUT", 0x10, T, False),
        ElementSpec(0x0C02, "VPA", 8, T, False),
    ]
    rows += [ElementSpec(0x1000 + n, f"GPR{n}", 8, T, False) for n in range(32)]
    dwords = ["HDEC_EXPIRY_TB", "NIA", "MSR", "LR", "XER", "CTR", "CFAR", "SRR0", "SRR1",
              "DAR", "DEC_EXPIRY_TB", "VTB", "LPCR", "HFSCR", "FSCR", "FPSCR", "DAWR0",
              "DAWR1", "CIABR", "PURR", "SPURR", "IC", "SPRG0", "SPRG1", "SPRG2", "SPRG3",
              "PPR", "MMCR0", "MMCR1", "MMCR2", "MMCR3", "MMCRA", "SIER", "SIER2", "SIER3",
              "BESCR", "EBBHR", "EBBRR", "AMR", "IAMR", "AMOR", "UAMOR", "SDAR", "SIAR",
              "DSCR", "TAR", "DEXCR", "HDEXCR", "HASHKEYR", "HASHPKEYR", "CTRL"]
    rows += [ElementSpec(0x1020 + n, name, 8, T, False) for n, name in enumerate(dwords)]
    words = ["CR", "PIDR", "DSISR", "VSCR", "VRSAVE", "DAWRX0", "DAWRX1", "PMC1", "PMC2",
             "PMC3", "PMC4", "PMC5", "PMC6", "WORT", "PSPB"]
    rows += [ElementSpec(0x2000 + n, name, 4, T, False) for n, name in enumerate(words)]
    rows += [ElementSpec(0x3000 + n, f"VSR{n}", 16, T, False) for n in range(64)]
    rows += [ElementSpec(0xF000, "HDAR", 8, T, True), ElementSpec(0xF001, "HDSISR", 4, T, True),
             ElementSpec(0xF002, "HEIR", 4, T, True), ElementSpec(0xF003, "ASDR", 8, T, True)]
    return {row.id: row for row in rows}


ELEMENTS: dict[int, ElementSpec] = _specs()
BY_NAME: dict[str, int] = {spec.name: spec.id for spec in ELEMENTS.values()}

# The document's "Reserved" rows.
RESERVED_RANGES = ((0x0007, 0x0BFF), (0x0C03, 0x0FFF), (0x1053, 0x1FFF), (0x200F, 0x2FFF),
                   (0x3040, 0xEFFF))


def is_reserved(element_id: int) -> bool:
    return any(lo <= element_id <= hi for lo, hi in RESERVED_RANGES)


def spec(element_id: int) -> ElementSpec:
    """The table row of an element ID (KeyError for reserved or unknown IDs)."""
    return ELEMENTS[element_id]


class GsbError(ValueError):
    """A byte string that is not a well-formed Guest State Buffer."""


@dataclass(frozen=True)
class Element:
    id: int
    value: bytes

    @property
    def size(self) -> int:
        return len(self.value)


def element(element_id: int | str, *words: int) -> Element:
    """An element (by ID or table name) whose value is `words` as big-endian integers
    filling its table size.

    One word fills the whole value (4, 8 or 16 bytes); several are 8 bytes each
    (the partition table, process table and run buffer elements).
    """
    if isinstance(element_id, str):
        element_id = BY_NAME[element_id]
    size = spec(element_id).size
    if size is None:
        raise ValueError(f"element 0x{element_id:04x} has no fixed size")
    if len(words) == 1:
        return Element(element_id, words[0].to_bytes(size, "big"))
    value = b"".join(w.to_bytes(8, "big") for w in words)
    if len(value) != size:
        raise ValueError(f"element 0x{element_id:04x} is {size} bytes, not {len(value)}")
    return Element(element_id, value)


def element_header(element_id: int, size: int) -> bytes:
    return ELEMENT_HEADER.pack(element_id, size)


def encode(elements: Iterable[Element], count: int | None = None) -> bytes:
    """A GSB holding `elements`; `count` overrides the header's element count."""
    items = list(elements)
    body = b"".join(element_header(e.id, e.size) + e.value for e in items)
    return HEADER.pack(len(items) if count is None else count) + body


def decode(data: bytes) -> list[Element]:
    """The elements of a GSB; bytes after the last element (unused capacity) are ignored."""
    if len(data) < HEADER.size:
        raise GsbError(f"{len(data)} bytes: shorter than the 4-byte header")
    (count,), offset = HEADER.unpack_from(data), HEADER.size
    elements = []
    for index in range(count):
        if offset + ELEMENT_HEADER.size > len(data):
            raise GsbError(f"element {index} of {count}: header past the end at {offset}")
        element_id, size = ELEMENT_HEADER.unpack_from(data, offset)
        offset += ELEMENT_HEADER.size
        if offset + size > len(data):
            raise GsbError(f"element {index} (0x{element_id:04x}): {size}-byte value "
                           f"past the end at {offset}")
        elements.append(Element(element_id, data[offset:offset + size]))
        offset += size
    return elements


def problems(elements: Sequence[Element], guest_wide: bool, setting: bool) -> list[str]:
    """What the table says is wrong with a request, one line per bad element (by index)."""
    found = []
    for index, e in enumerate(elements):
        row = ELEMENTS.get(e.id)
        if row is None:
            found.append(f"{index}: 0x{e.id:04x} is reserved")
        elif row.size is not None and e.size != row.size:
            found.append(f"{index}: 0x{e.id:04x} is {row.size} bytes, not {e.size}")
        elif setting and row.read_only:
            found.append(f"{index}: 0x{e.id:04x} ({row.name}) is read-only")
        elif row.scope is not None and (row.scope is Scope.GUEST) != guest_wide:
            found.append(f"{index}: 0x{e.id:04x} ({row.name}) is {row.scope.value}")
    return found
