"""The data model of an hcall case: steps, values that flow between them, expectations.

A case is a list of steps run in one L1 by the `pnhcall` module: buffers to
allocate, fill (`Write`, or a timebase deadline: `Stamp`) and read back
(`Read`, a check of what they hold), hcalls to make (`Call`), relations between
values of the run (`Bound`).  Each hcall step is setup (it must succeed or the
case cannot say anything), a check (its return code and registers are the
verdict) or cleanup.  Helpers at the end build the usual setup sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from powernest.hcalls import gsb, numbers
from powernest.nested import API


@dataclass(frozen=True)
class Var:
    """R4 of the earlier call that saved it under `name` (a guest ID, a bitmap)."""

    name: str


@dataclass(frozen=True)
class Addr:
    """The L1 real address of buffer `buf`, plus `offset`, ORed with `bits` (flags of a
    table entry that holds the address)."""

    buf: str
    offset: int = 0
    bits: int = 0


@dataclass(frozen=True)
class Expr:
    """Shell arithmetic over saved values: `{caps} | 0x100000000`."""

    text: str


Arg = int | Var | Addr | Expr
Chunk = bytes | Addr      # an Addr in written data is its 8-byte big-endian address
RegWant = int | tuple[int, ...]   # an output register's value, or the values it may hold


class Role(StrEnum):
    SETUP = "setup"
    CHECK = "check"
    CLEANUP = "cleanup"


@dataclass(frozen=True)
class Expect:
    """What a call must return: one of `codes` (names), and these output registers, each
    a value or a tuple of the values it may hold."""

    codes: tuple[str, ...]
    regs: tuple[tuple[str, RegWant], ...] = ()
    distinct_from: tuple[str, ...] = ()   # labels of calls whose R4 this R4 must differ from

    def accepts(self, rc: int) -> bool:
        return any(rc in numbers.UNSUPPORTED_FLAG_RANGE if name == numbers.UNSUPPORTED_FLAG
                   else rc == numbers.rc(name) for name in self.codes)

    def describe(self) -> str:
        names = " or ".join(
            "H_UNSUPPORTED_FLAG_START..END (-256..-511)" if n == numbers.UNSUPPORTED_FLAG
            else f"{n} ({numbers.rc(n)})" for n in self.codes)
        regs = "".join(f", {r.upper()}={describe_want(v)}" for r, v in self.regs)
        distinct = "".join(f", R4 not that of {label}" for label in self.distinct_from)
        return names + regs + distinct


def describe_want(want: RegWant) -> str:
    """`0x1` for one value, `0x0 or 0x1` for a choice."""
    return " or ".join(f"{v:#x}" for v in (want if isinstance(want, tuple) else (want,)))


def reg_accepts(want: RegWant, value: int | None) -> bool:
    return value in want if isinstance(want, tuple) else value == want


def rc(*codes: str, regs: tuple[tuple[str, RegWant], ...] = (),
       distinct_from: tuple[str, ...] = ()) -> Expect:
    return Expect(codes, regs, distinct_from)


SUCCESS = rc("H_SUCCESS")


@dataclass(frozen=True)
class Alloc:
    buf: str
    size: int = 4096


@dataclass(frozen=True)
class Write:
    buf: str
    data: tuple[Chunk, ...]
    offset: int = 0


@dataclass(frozen=True)
class Guard:
    """A precondition on saved values; false: the case does not apply (setup failure)."""

    label: str
    test: Expr
    why: str


@dataclass(frozen=True)
class Stamp:
    """Write the L1's timebase plus `delta` into `buf` at `offset` (8 bytes): a deadline
    for the L0, such as the HDEC expiry of an L2 run.  Its result keeps the value (`tb`)."""

    label: str
    buf: str
    offset: int
    delta: int
    little: bool = False


@dataclass(frozen=True)
class Field:
    """`size` bytes at `offset` of a buffer read back, as an unsigned integer; `want`:
    the value it must hold (or one of several), or None for a value only kept (for a
    `Bound`)."""

    name: str
    offset: int
    want: int | tuple[int, ...] | None
    size: int = 8
    little: bool = False

    def accepts(self, value: int) -> bool:
        return value in self.want if isinstance(self.want, tuple) else value == self.want

    def describe(self) -> str:
        wants = self.want if isinstance(self.want, tuple) else (self.want,)
        return " or ".join(f"{w:#x}" for w in wants if w is not None)


@dataclass(frozen=True)
class Read:
    """Read `length` bytes of `buf` back (a check): its `fields` must hold their
    values, and, if it holds a GSB, each of `elements` (ID, value) must be in it."""

    label: str
    buf: str
    fields: tuple[Field, ...] = ()
    elements: tuple[tuple[int, bytes], ...] = ()
    length: int = 4096
    offset: int = 0

    def describe(self) -> str:
        wants = [f"{f.name}={f.describe()}" for f in self.fields if f.want is not None]
        wants += [f"{element_name(i)}={v.hex()}" for i, v in self.elements]
        return f"{self.buf} holds " + (", ".join(wants) or "its fields (kept for later checks)")


@dataclass(frozen=True)
class Ref:
    """A value the run produced: field `key` of step `step`'s result (a call's `rc`,
    `r4`, `tb0`, `tb1`; a stamp's `tb`; a `Field` of a `Read`; a GSB element's name)."""

    step: str
    key: str

    def text(self) -> str:
        return f"{self.step}.{self.key}"


@dataclass(frozen=True)
class Bound:
    """A check between values of the run: low + shift <= value <= high + shift (a bound
    is a value of the run, a number, or None: not checked).  The script does nothing for
    it; the verdict does."""

    label: str
    value: Ref
    low: Ref | int | None
    high: Ref | int | None
    why: str
    shift: int = 0

    def describe(self) -> str:
        shift = (f" + {self.shift:#x}" if self.shift > 0
                 else f" - {-self.shift:#x}" if self.shift < 0 else "")
        low = f"{_text(self.low)}{shift} <= " if self.low is not None else ""
        high = f" <= {_text(self.high)}{shift}" if self.high is not None else ""
        return f"{low}{self.value.text()}{high} ({self.why})"


def _text(bound: Ref | int) -> str:
    return f"{bound:#x}" if isinstance(bound, int) else bound.text()


def element_name(element_id: int) -> str:
    """A GSB element ID as a message shows it: `0x1003 (GPR3)`."""
    row = gsb.ELEMENTS.get(element_id)
    return f"0x{element_id:04x}" + (f" ({row.name})" if row else "")


@dataclass(frozen=True)
class Call:
    label: str
    hcall: str
    args: tuple[Arg, ...]
    role: Role = Role.CHECK
    expect: Expect = SUCCESS
    save: str | None = None     # save R4 under this name

    @property
    def opcode(self) -> int:
        return numbers.opcode(self.hcall)


@dataclass(frozen=True)
class Modes:
    """A check of a row whose answer depends on the processor: the processor modes in R4
    of call `call` (H_GUEST_GET_CAPABILITIES) include the L1's own mode (POWERn in its
    /proc/cpuinfo: its architected mode under a compatibility mode) and none newer than
    the processor itself (its PVR, which a compatibility mode does not change).  The
    script reads both; the verdict compares."""

    label: str
    call: str

    def describe(self) -> str:
        return (f"{self.call}'s R4 offers the L1's own processor mode and none newer than "
                "its processor")

Step = Alloc | Write | Guard | Call | Stamp | Read | Bound | Modes


@dataclass(frozen=True)
class Case:
    """One row of the table: what is done, what must come back, and why."""

    id: str
    api: API                     # the API the L0 offers
    hcall: str                   # the hcall under test
    summary: str
    steps: tuple[Step, ...]
    source: str
    leaves_state: bool           # a later case in the same L1 would see what this one did
    crash_evidence: str = ""     # the QEMU code line that may crash the L0 ("": none)
    needs_fresh: bool = False    # must run before anything set capabilities / a table
    deviations: tuple[str, ...] = ()  # known deviations of L0s for this row

    @property
    def may_crash_l0(self) -> bool:
        return bool(self.crash_evidence)

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(s for s in self.steps if isinstance(s, Call))

    @property
    def checks(self) -> tuple[Call, ...]:
        return tuple(c for c in self.calls if c.role is Role.CHECK)


# --- building blocks -------------------------------------------------------------

MINUS_ONE = (1 << 64) - 1
NO_SUCH_GUEST = 0x7FFF_FFFF          # a guest ID no L0 has handed out yet
OUTSIDE_RAM = 1 << 50                # an L1 real address far above any lab L1's memory
CAP_COPY_MEM = 1 << 63               # Linux hvcall.h H_GUEST_CAP_COPY_MEM
CAP_POWER9 = 1 << 62                 # H_GUEST_CAP_POWER9
CAP_POWER10 = 1 << 61                # H_GUEST_CAP_POWER10
CAP_POWER11 = 1 << 60                # QEMU spapr_nested.h H_GUEST_CAPABILITIES_P11_MODE
# The processor-mode bits of H_GUEST_GET_CAPABILITIES' R4, by POWER generation.
PROCESSOR_MODES = {9: CAP_POWER9, 10: CAP_POWER10, 11: CAP_POWER11}
# A processor's POWER generation by its PVR's version (the upper half; Linux cputable.h).
PVR_GENERATIONS = {0x004B: 8, 0x004C: 8, 0x004D: 8, 0x004E: 9, 0x0080: 10, 0x0082: 11}
DELETE_ALL = 1 << 63                 # H_GUEST_DELETE flags bit 0: deleteAllGuests


def caps(accept: tuple[str, ...] = ("H_SUCCESS", "H_STATE")) -> tuple[Step, ...]:
    """GET the L0's capabilities and SET them back, as Linux's kvmhv_nested_init does.

    H_STATE is accepted by default: QEMU refuses a repeated SET until a machine
    reset (qemu-v2-set-capabilities-once), and the capabilities an earlier case
    set are then still in force.
    """
    return (Call("get-caps", "H_GUEST_GET_CAPABILITIES", (0,), Role.SETUP, save="caps"),
            Call("set-caps", "H_GUEST_SET_CAPABILITIES", (0, Var("caps")), Role.SETUP,
                 rc(*accept)))


def guest(name: str = "guest", role: Role = Role.SETUP) -> Call:
    return Call(f"create-{name}", "H_GUEST_CREATE", (0, MINUS_ONE), role, save=name)


def vcpu(vcpu_id: int = 0, of: str = "guest", role: Role = Role.SETUP,
         expect: Expect = SUCCESS) -> Call:
    return Call(f"create-vcpu-{vcpu_id}-{of}", "H_GUEST_CREATE_VCPU", (0, Var(of), vcpu_id),
                role, expect)


def delete(of: str = "guest") -> Call:
    return Call(f"delete-{of}", "H_GUEST_DELETE", (0, Var(of)), Role.CLEANUP)


def guest_with_vcpu() -> tuple[Step, ...]:
    return (*caps(), guest(), vcpu())


Item = tuple[int, Sequence[Chunk]] | gsb.Element   # a GSB element: (ID, value chunks)


def width(chunks: Iterable[Chunk]) -> int:
    """How many bytes `chunks` write (an Addr: 8)."""
    return sum(8 if isinstance(c, Addr) else len(c) for c in chunks)


GsbElement = tuple[int, int, tuple[Chunk, ...]]   # ID, size as written, value chunks


def gsb_chunks(elements: Sequence[GsbElement], count: int | None = None) -> tuple[Chunk, ...]:
    """The chunks of a GSB: `count` (default: the number of elements), then each
    element's header, with its size as given (true or not), and its value."""
    data: list[Chunk] = [gsb.HEADER.pack(len(elements) if count is None else count)]
    for element_id, size, chunks in elements:
        data += [gsb.element_header(element_id, size), *chunks]
    return tuple(data)


def gsb_write(buf: str, *elements: Item, count: int | None = None) -> Write:
    """A Write of a GSB; an element is a `gsb.Element` or (ID, chunks of its value)."""
    items = [(e.id, (e.value,)) if isinstance(e, gsb.Element) else e for e in elements]
    return Write(buf, gsb_chunks([(element_id, width(chunks), tuple(chunks))
                                  for element_id, chunks in items], count))


def state(label: str, hcall: str, flags: int = 0, *, of: Arg = Var("guest"),
          vcpu_id: Arg = 0, buf: Arg = Addr("gsb"), length: Arg = 4096,
          expect: Expect = SUCCESS, role: Role = Role.CHECK) -> Call:
    """An H_GUEST_GET_STATE / H_GUEST_SET_STATE call."""
    return Call(label, hcall, (flags, of, vcpu_id, buf, length), role, expect)


def set_state(label: str, *elements: Item, flags: int = 0, expect: Expect = SUCCESS,
              role: Role = Role.CHECK, vcpu_id: Arg = 0,
              length: Arg = 4096) -> tuple[Step, ...]:
    """Write a GSB into buffer `gsb` (allocated by the caller) and SET it."""
    return (gsb_write("gsb", *elements),
            state(label, "H_GUEST_SET_STATE", flags, expect=expect, role=role,
                  vcpu_id=vcpu_id, length=length))


def u64(value: int) -> bytes:
    """A doubleword as the PAPR structures hold it: big endian."""
    return value.to_bytes(8, "big")


def hv_state(version: int, lpid: int) -> bytes:
    """The head of a v1 hv_guest_state (version u64, lpid u32), in the L1's little endian.

    The rest of the structure stays zero (the module zeroes its buffers).
    """
    return version.to_bytes(8, "little") + lpid.to_bytes(4, "little")
