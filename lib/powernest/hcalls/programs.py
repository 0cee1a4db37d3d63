"""Hcall programs for campaigns: short sequences of the table's own steps, seeded from its
rows and mutated with knowledge of their structure.

A program is a `Case` whose steps are allocations, writes, timebase stamps and calls;
every call is a check (the script goes on whatever it returns), since a campaign looks
for what kills the L0, not for what a row requires.  Mutations: arguments at and next
to the limits of their field (flags, IDs, addresses, lengths), Guest State Buffers whose
count, element IDs, sizes and values disagree or sit at the edges of the element table,
steps dropped, repeated, swapped or taken from another row, and a second vCPU of a
guest.  `Programs` draws them from one seed: the same seed gives the same programs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from powernest.hcalls import gsb, numbers
from powernest.hcalls.cases import cases_for
from powernest.hcalls.model import (
    MINUS_ONE,
    NO_SUCH_GUEST,
    OUTSIDE_RAM,
    Addr,
    Alloc,
    Arg,
    Call,
    Case,
    Chunk,
    Expr,
    GsbElement,
    Role,
    Stamp,
    Var,
    Write,
    gsb_chunks,
    width,
)
from powernest.hcalls.script import MAX_WRITE
from powernest.nested import API

ProgramStep = Alloc | Write | Stamp | Call
MAX_STEPS = 40
MASK64 = (1 << 64) - 1
# Values at the edges of 64-bit fields, and next to them.
EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x1000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
         1 << 32, 1 << 62, 1 << 63, MINUS_ONE, MINUS_ONE - 1, NO_SUCH_GUEST, OUTSIDE_RAM)
TABLE_IDS = tuple(sorted(gsb.ELEMENTS))
RESERVED_IDS = tuple(i for lo, hi in gsb.RESERVED_RANGES for i in (lo, hi))


def seeds(api: API) -> list[tuple[ProgramStep, ...]]:
    """The program steps of each row of the table for `api` (`program_steps`)."""
    return [steps for row in cases_for(api) if (steps := program_steps(row))]


def program_steps(row: Case) -> tuple[ProgramStep, ...]:
    """The steps of a row that a program can hold: its allocations, writes, stamps and
    calls (all made checks), in the row's order."""
    return tuple(_as_program_step(s) for s in row.steps if isinstance(s, ProgramStep))


def _as_program_step(step: ProgramStep) -> ProgramStep:
    return replace(step, role=Role.CHECK) if isinstance(step, Call) else step


def program(api: API, name: str, steps: Sequence[ProgramStep], note: str = "") -> Case:
    """The program as a case of the table's model, so that it compiles to a script."""
    hcall = next((s.hcall for s in steps if isinstance(s, Call)), "none")
    return Case(name, api, hcall, note or f"campaign program of {len(steps)} steps",
                tuple(steps), "hcall campaign program (no row: nothing is required)",
                leaves_state=True)


class Programs:
    """Programs for one API from one seed (see the module docstring)."""

    def __init__(self, api: API, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seeds = seeds(api)
        self.calls = [s for steps in self.seeds for s in steps if isinstance(s, Call)]
        self.hcalls = sorted({c.hcall for c in self.calls})

    def next(self) -> tuple[ProgramStep, ...]:
        """A seed row's steps with one to four mutations."""
        steps = list(self.rng.choice(self.seeds))
        for _ in range(self.rng.choice((1, 1, 2, 2, 3, 4))):
            steps = self.mutate(steps)
        return tuple(steps[:MAX_STEPS])

    def mutate(self, steps: list[ProgramStep]) -> list[ProgramStep]:
        """One mutation of `steps` (a new list)."""
        rng = self.rng
        steps = list(steps)
        calls = [i for i, s in enumerate(steps) if isinstance(s, Call)]
        writes = [i for i, s in enumerate(steps) if isinstance(s, Write)]
        kind = rng.choice(("arg", "arg", "arg", "gsb", "gsb", "drop", "repeat", "swap",
                           "splice", "vcpu", "hcall"))
        if kind == "gsb" and writes:
            i = rng.choice(writes)
            write = steps[i]
            assert isinstance(write, Write)
            steps[i] = self.mutate_write(write)
        elif kind == "drop" and (droppable := [i for i, s in enumerate(steps)
                                               if not isinstance(s, Alloc)]):
            del steps[rng.choice(droppable)]   # a buffer stays: later steps name it
        elif kind == "repeat" and calls:
            i = rng.choice(calls)
            steps.insert(i + 1, steps[i])
        elif kind == "swap" and len(steps) > 1:
            i = rng.randrange(len(steps) - 1)
            steps[i], steps[i + 1] = steps[i + 1], steps[i]
        elif kind == "splice":
            steps.insert(rng.randrange(len(steps) + 1), rng.choice(self.calls))
        elif kind == "vcpu":
            steps.insert(rng.randrange(len(steps) + 1), Call(
                "create-vcpu-n", "H_GUEST_CREATE_VCPU", (0, Var("guest"), rng.choice((1, 2)))))
        elif kind == "hcall" and calls:
            i = rng.choice(calls)
            step = steps[i]
            assert isinstance(step, Call)
            hcall = rng.choice(self.hcalls)
            steps[i] = replace(step, hcall=hcall, label=hcall.lower().replace("_", "-"))
        elif calls:
            i = rng.choice(calls)
            step = steps[i]
            assert isinstance(step, Call)
            steps[i] = self.mutate_call(step)
        return steps

    def mutate_call(self, call: Call) -> Call:
        """One argument of `call` changed, or one added."""
        args = list(call.args)
        if not args or self.rng.random() < 0.1:
            args.append(self.value(0))
        else:
            i = self.rng.randrange(len(args))
            args[i] = self.arg(args[i])
        return replace(call, args=tuple(args))

    def arg(self, arg: Arg) -> Arg:
        rng = self.rng
        if isinstance(arg, Addr):
            return rng.choice((replace(arg, offset=arg.offset + rng.choice((-8, 1, 8, 4095, 4096))),
                               OUTSIDE_RAM, 0, replace(arg, bits=1 << 63)))
        if isinstance(arg, Var | Expr):
            return rng.choice((self.value(0), arg)) if rng.random() < 0.7 else Var(
                rng.choice(("guest", "caps", "g1", "old")))
        return self.value(arg)

    def value(self, near: int) -> int:
        """An edge value, `near` off by one or with one bit flipped."""
        rng = self.rng
        choice = rng.randrange(4)
        if choice == 0:
            return rng.choice(EDGES)
        if choice == 1:
            return (near + rng.choice((-1, 1))) & MASK64
        if choice == 2:
            return near ^ (1 << rng.randrange(64))
        return rng.getrandbits(rng.choice((8, 16, 32, 64)))

    def mutate_write(self, write: Write) -> Write:
        """A GSB write with its count, one element's ID, size or value, or its elements
        changed; any other write with one chunk changed."""
        elements = parse_gsb(write.data)
        if elements is None:
            return self._mutate_chunks(write)
        count = len(elements)
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            count = rng.choice((0, count - 1, count + 1, 0xFFFF_FFFF)) & 0xFFFF_FFFF
        elif elements:
            i = rng.randrange(len(elements))
            element_id, size, chunks = elements[i]
            if kind == 1:
                element_id = rng.choice((rng.choice(TABLE_IDS), rng.choice(RESERVED_IDS),
                                         (element_id + rng.choice((-1, 1))) & 0xFFFF, 0xFFFF))
                spec = gsb.ELEMENTS.get(element_id)
                if spec is not None and spec.size is not None and rng.random() < 0.7:
                    size, chunks = spec.size, (bytes(spec.size),)
            elif kind == 2:
                size = rng.choice((0, size - 1, size + 1, 4, 8, 16, 0xFFFF)) & 0xFFFF
            elif kind == 3:
                chunks = (self._edge_bytes(width(chunks)),)
            elif kind == 4:
                elements.insert(i, elements[i])
            else:
                del elements[i]
            if kind in (1, 2, 3):
                elements[i] = (element_id, size, chunks)
        data = gsb_chunks(elements, count if kind == 0 else None)
        return replace(write, data=data) if _fits(data) else write

    def _mutate_chunks(self, write: Write) -> Write:
        if not write.data:
            return write
        data = list(write.data)
        i = self.rng.randrange(len(data))
        data[i] = self._edge_bytes(width((data[i],)))
        return replace(write, data=tuple(data))

    def _edge_bytes(self, width: int) -> bytes:
        """`width` bytes: a big-endian edge value in each 8-byte word (a shorter tail
        gets the same value's low bytes)."""
        if width == 0:
            return b""
        words = [self.value(0).to_bytes(8, "big") for _ in range((width + 7) // 8)]
        return b"".join(words)[-width:] if width < 8 else b"".join(words)[:width]


def parse_gsb(data: Sequence[Chunk]) -> list[GsbElement] | None:
    """The elements of a write made by `model.gsb_write`, or None if `data` is not one
    (its count and sizes must agree with its chunks)."""
    if not data or not isinstance(data[0], bytes) or len(data[0]) != gsb.HEADER.size:
        return None
    (count,) = gsb.HEADER.unpack(data[0])
    elements: list[GsbElement] = []
    i = 1
    while i < len(data):
        header = data[i]
        if not isinstance(header, bytes) or len(header) != gsb.ELEMENT_HEADER.size:
            return None
        element_id, size = gsb.ELEMENT_HEADER.unpack(header)
        i += 1
        chunks: list[Chunk] = []
        while width(chunks) < size and i < len(data):
            chunks.append(data[i])
            i += 1
        if width(chunks) != size:
            return None
        elements.append((element_id, size, tuple(chunks)))
    return elements if count == len(elements) else None


def _fits(data: Sequence[Chunk]) -> bool:
    return width(data) <= MAX_WRITE


def hcalls_of(steps: Sequence[ProgramStep]) -> set[str]:
    """The hcalls a program makes (by name)."""
    return {s.hcall for s in steps if isinstance(s, Call) and s.hcall in numbers.OPCODES}


def elements_of(steps: Sequence[ProgramStep]) -> set[int]:
    """The GSB element IDs of the table a program's writes hold."""
    found: set[int] = set()
    for step in steps:
        if isinstance(step, Write) and (elements := parse_gsb(step.data)) is not None:
            found |= {e[0] for e in elements if e[0] in gsb.ELEMENTS}
    return found
