"""One case as a busybox sh script driving /proc/pnhcall, and its output read back.

The script is also the case's reproducer: a QEMU developer runs it by hand in
an L1 with the module loaded.  It prints `PNBEGIN <case>`, one
`PNSTEP <label> <module result line>` per step, and last `PNEND done` or
`PNEND setup-failed <label>`.  No PNEND line means the script stopped in the
middle: its L1 (or the L1's L0) died.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from powernest.hcalls import gsb, numbers
from powernest.hcalls.language import MAX_BUFFERS, MAX_COMMAND, MAX_READ, PROC
from powernest.hcalls.model import (
    Addr,
    Alloc,
    Arg,
    Bound,
    Call,
    Case,
    Chunk,
    Expr,
    Guard,
    Read,
    Ref,
    Role,
    Stamp,
    Step,
    Var,
    Write,
)

MAX_WRITE = (MAX_COMMAND - 32) // 2     # bytes of one `write` command line, in hex
_MASK = (1 << 64) - 1
_CAPS = {"nested-hv": "cap-nested-hv=on", "nested-papr": "cap-nested-papr=on"}

_PRELUDE = r"""P=${PNHCALL:-PROC}
pn() { echo "$*" 2>/dev/null >"$P"; R=$(cat "$P"); }
show() { echo "PNSTEP $1 $R"; }
val() { echo "$R" | awk -v k="$1" '{for (i = 1; i <= NF; i++) {
  n = index($i, "="); if (n && substr($i, 1, n - 1) == k) print substr($i, n + 1) } }'; }
fail() { echo "PNEND setup-failed $1"; exit 1; }
need() {
  l=$1; shift
  case "$R" in error:*|"") fail "$l";; esac
  [ $# -eq 0 ] && return 0
  c=$(val rc); for ok in "$@"; do [ "$c" = "$ok" ] && return 0; done
  fail "$l"
}
[ -e "$P" ] || { echo "PNEND setup-failed module ($P missing: insmod pnhcall.ko)"; exit 1; }
""".replace("PROC", PROC)


def labelled(case: Case) -> Iterator[tuple[str, Step]]:
    """Each step with its output label (calls and guards keep theirs; unique)."""
    seen: dict[str, int] = {}
    for step in case.steps:
        if isinstance(step, Call | Guard | Stamp | Read | Bound):
            base = step.label
        elif isinstance(step, Alloc):
            base = f"alloc-{step.buf}"
        else:
            base = f"write-{step.buf}"
        seen[base] = seen.get(base, 0) + 1
        yield (base if seen[base] == 1 else f"{base}-{seen[base]}"), step


def _var(name: str) -> str:
    return "V_" + name.replace("-", "_")


def _addr_sum(a: Addr) -> str:
    """Shell arithmetic for an address (offset and bits as hex: they may not fit a
    signed 64-bit decimal)."""
    text = "A_" + a.buf.replace("-", "_")
    if a.offset:
        text += f" + {a.offset:#x}"
    return text + (f" | {a.bits:#x}" if a.bits else "")


def _addr(a: Addr) -> str:
    if not (a.offset or a.bits):
        return f"$A_{a.buf.replace('-', '_')}"
    return f"$(printf 0x%x $(({_addr_sum(a)})))"


class _ShellNames(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return _var(key)


def _arith(e: Expr) -> str:
    return e.text.format_map(_ShellNames())


def _arg(arg: Arg) -> str:
    if isinstance(arg, Var):
        return f"${_var(arg.name)}"
    if isinstance(arg, Addr):
        return _addr(arg)
    if isinstance(arg, Expr):
        return f"$(printf 0x%x $(({_arith(arg)})))"
    return f"{arg & _MASK:#x}"


def _chunk(chunk: Chunk) -> str:
    if isinstance(chunk, Addr):
        return f"$(printf %016x $(({_addr_sum(chunk)})))"
    return chunk.hex()


def _comment(text: str, indent: str = "#   ") -> list[str]:
    return textwrap.wrap(text, 76, initial_indent=indent, subsequent_indent=indent)


def _header(case: Case) -> list[str]:
    lines = ["#!/bin/sh", f"# powernest hcall case {case.id}: {case.summary}",
             f"# API: {case.api.value} (the L0 runs -M pseries,{_CAPS[case.api.value]})",
             f"# Hcall under test: {case.hcall} ({numbers.opcode(case.hcall):#x})",
             "# Expected:"]
    for label, step in labelled(case):
        if isinstance(step, Call) and step.role is Role.CHECK:
            lines += _comment(f"{label}: {step.expect.describe()}")
        elif isinstance(step, Read | Bound):
            lines += _comment(f"{label}: {describe(step)}")
    lines += ["# Source:", *_comment(case.source)]
    if case.deviations:
        lines += _comment(f"Known deviations: {', '.join(case.deviations)}", "# ")
    if case.may_crash_l0:
        lines += _comment(f"MAY CRASH THE L0: {case.crash_evidence}", "# ")
    lines += _comment(f"Leaves L0 state for later cases: {'yes' if case.leaves_state else 'no'}"
                      f"; needs an L0 untouched since reset: "
                      f"{'yes' if case.needs_fresh else 'no'}", "# ")
    lines += ["# Run, in an L1 whose kvm-hv is not loaded (it registers with the L0 too):",
              "#   insmod pnhcall.ko; sh THIS_FILE",
              "# Output: PNSTEP <label> <result> per step, then PNEND done or",
              "# PNEND setup-failed <label>; no PNEND line: the L1 or its L0 died.", ""]
    return lines


def _buffers(case: Case) -> dict[str, int]:
    ids: dict[str, int] = {}
    for step in case.steps:
        if isinstance(step, Alloc) and step.buf not in ids:
            ids[step.buf] = len(ids)
    if len(ids) > MAX_BUFFERS:
        raise ValueError(f"{case.id}: {len(ids)} buffers, the module has {MAX_BUFFERS}")
    return ids


def _step(label: str, step: Step, ids: dict[str, int]) -> list[str]:
    if isinstance(step, Alloc):
        return [f"pn alloc {ids[step.buf]} {step.size}", f"show {label}", f"need {label}",
                f"A_{step.buf.replace('-', '_')}=$(val addr)"]
    if isinstance(step, Write):
        if sum(8 if isinstance(c, Addr) else len(c) for c in step.data) > MAX_WRITE:
            raise ValueError(f"{label}: the module takes at most {MAX_WRITE} bytes a write")
        data = "".join(_chunk(c) for c in step.data)
        return [f'pn write {ids[step.buf]} {step.offset} "{data}"', f"show {label}",
                f"need {label}"]
    if isinstance(step, Guard):
        return [f"if [ $(({_arith(step.test)})) -ne 0 ]; then R=ok; else "
                f"R='error: not applicable: {step.why}'; fi", f"show {label}",
                f"need {label}"]
    if isinstance(step, Stamp):
        order = "le" if step.little else "be"
        return [f"pn stamp {ids[step.buf]} {step.offset} {step.delta:#x} {order}",
                f"show {label}", f"need {label}"]
    if isinstance(step, Read):
        if step.length > MAX_READ:
            raise ValueError(f"{label}: the module reads at most {MAX_READ} bytes at once")
        return [f"# check: what {step.buf} holds now",
                f"pn read {ids[step.buf]} {step.offset} {step.length}", f"show {label}"]
    if isinstance(step, Bound):
        return _comment(f"check {label}: {step.why}", "# ")
    args = " ".join(_arg(a) for a in step.args)
    lines = [f"pn call {step.opcode:#x} {args}".rstrip(), f"show {label}"]
    if step.role is Role.CHECK:
        lines.insert(0, f"# check: {step.hcall} must return {step.expect.describe()}")
    if step.role is Role.SETUP:
        if numbers.UNSUPPORTED_FLAG in step.expect.codes:
            raise ValueError(f"{label}: a setup step needs exact return codes")
        lines.append(f"need {label} " + " ".join(str(numbers.rc(c)) for c in step.expect.codes))
    if step.save:
        lines.append(f"{_var(step.save)}=$(val r4)")
    return lines


def compile_case(case: Case) -> str:
    """The sh script (and reproducer) of one case."""
    ids = _buffers(case)
    frees = [f"pn free {n}" for n in ids.values()]
    lines = [*_header(case), _PRELUDE.rstrip("\n"), *frees, f"echo 'PNBEGIN {case.id}'"]
    for label, step in labelled(case):
        lines += _step(label, step, ids)
    lines += [*frees, "echo 'PNEND done'"]
    return "\n".join(lines) + "\n"


# --- reading the output back ----------------------------------------------------------

@dataclass(frozen=True)
class StepResult:
    """What the module answered to one step."""

    label: str
    line: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(t.split("=", 1) for t in self.line.split() if "=" in t)

    @property
    def error(self) -> str | None:
        return self.line[len("error:"):].strip() if self.line.startswith("error:") else None

    @property
    def rc(self) -> int | None:
        value = self.fields.get("rc")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    @property
    def regs(self) -> dict[str, int]:
        return {k: int(v, 16) for k, v in self.fields.items() if k.startswith("r") and k != "rc"}


@dataclass(frozen=True)
class ScriptRun:
    case_id: str | None
    steps: dict[str, StepResult]
    end: str | None               # "done", "setup-failed", or None: no PNEND line
    failed: str | None = None     # the step that failed setup


def parse_output(text: str) -> ScriptRun:
    """The PN lines of a script's output; anything else (kernel messages) is ignored."""
    case_id, end, failed = None, None, None
    steps: dict[str, StepResult] = {}
    for raw in text.splitlines():
        word, _, rest = raw.strip().partition(" ")
        if word == "PNBEGIN":
            case_id = rest.strip()
        elif word == "PNSTEP":
            label, _, line = rest.partition(" ")
            steps[label] = StepResult(label, line.strip())
        elif word == "PNEND":
            end, _, tail = rest.partition(" ")
            failed = tail.split(" ", 1)[0] if end == "setup-failed" and tail else None
    return ScriptRun(case_id, steps, end, failed)


class Outcome(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    SETUP_FAILED = "setup failed"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "; ".join((self.outcome.value, *self.details))


def describe(step: Read | Bound) -> str:
    """What a Read or a Bound requires, for a script's header and a failure."""
    if isinstance(step, Bound):
        low = f"{_ref(step.low)}{_plus(step.shift)} <= " if step.low is not None else ""
        high = f" <= {_ref(step.high)}{_plus(step.shift)}" if step.high is not None else ""
        return f"{low}{_ref(step.value)}{high} ({step.why})"
    wants = [f"{f.name}={f.describe()}" for f in step.fields if f.want is not None]
    wants += [f"{_element_name(i)}={v.hex()}" for i, v in step.elements]
    return f"{step.buf} holds " + (", ".join(wants) or "its fields (kept for later checks)")


def _ref(ref: Ref | int) -> str:
    return f"{ref:#x}" if isinstance(ref, int) else f"{ref.step}.{ref.key}"


def _plus(shift: int) -> str:
    return f" + {shift:#x}" if shift > 0 else f" - {-shift:#x}" if shift < 0 else ""


def _element_name(element_id: int) -> str:
    row = gsb.ELEMENTS.get(element_id)
    return f"0x{element_id:04x}" + (f" ({row.name})" if row else "")


def _read_data(read: Read, result: StepResult) -> bytes | None:
    try:
        data = bytes.fromhex(result.line)
    except ValueError:
        return None
    return data if len(data) == read.length else None


def _field_value(data: bytes, read: Read, name: str) -> int | None:
    for f in read.fields:
        if f.name == name:
            raw = data[f.offset - read.offset:f.offset - read.offset + f.size]
            return int.from_bytes(raw, "little" if f.little else "big")
    row = gsb.BY_NAME.get(name)
    if row is not None:
        try:
            found = {e.id: e.value for e in gsb.decode(data)}
        except gsb.GsbError:
            return None
        return int.from_bytes(found[row], "big") if row in found else None
    return None


def _value(ref: Ref | int, steps: dict[str, Step], run: ScriptRun) -> int | None:
    """The value `ref` names in this run's output (None: the run did not produce it)."""
    if isinstance(ref, int):
        return ref
    result, step = run.steps.get(ref.step), steps.get(ref.step)
    if result is None or step is None:
        return None
    if isinstance(step, Read):
        data = _read_data(step, result)
        return None if data is None else _field_value(data, step, ref.key)
    text = result.fields.get(ref.key)
    try:
        return int(text, 0) if text is not None else None
    except ValueError:
        return None


def _check_read(label: str, read: Read, run: ScriptRun) -> list[str]:
    result = run.steps[label]
    data = _read_data(read, result)
    if data is None:
        return [f"{label}: no {read.length} bytes of {read.buf} in {result.line[:80]!r}"]
    found = []
    for f in read.fields:
        observed = _field_value(data, read, f.name)
        if f.want is not None and (observed is None or not f.accepts(observed)):
            seen = "nothing" if observed is None else f"{observed:#x}"
            found.append(f"{label}: {f.name} required {f.describe()}, observed {seen}")
    if read.elements:
        try:
            held = {e.id: e.value for e in gsb.decode(data)}
        except gsb.GsbError as error:
            return [*found, f"{label}: {read.buf} holds no well-formed GSB: {error}"]
        for element_id, want in read.elements:
            got = held.get(element_id)
            if got != want:
                seen = "missing" if got is None else got.hex()
                found.append(f"{label}: {_element_name(element_id)} required {want.hex()}, "
                             f"observed {seen}")
    return found


def _check_bound(label: str, bound: Bound, steps: dict[str, Step], run: ScriptRun) -> list[str]:
    value = _value(bound.value, steps, run)
    low = None if bound.low is None else _value(bound.low, steps, run)
    high = None if bound.high is None else _value(bound.high, steps, run)
    if value is None or (bound.low is not None and low is None) or \
            (bound.high is not None and high is None):
        return [f"{label}: the run did not produce the values of {describe(bound)}"]
    if (low is not None and value < low + bound.shift) or \
            (high is not None and value > high + bound.shift):
        shown = ", ".join(f"{_ref(r)}={v:#x}" for r, v in
                          ((bound.low, low), (bound.value, value), (bound.high, high))
                          if isinstance(r, Ref) and v is not None)
        return [f"{label}: required {describe(bound)}, observed {shown}"]
    return []


def _check(label: str, call: Call, run: ScriptRun) -> list[str]:
    result = run.steps[label]
    if result.rc is None:
        return [f"{label}: no return code in {result.line!r}"]
    if not call.expect.accepts(result.rc):
        return [f"{label}: {call.hcall} required {call.expect.describe()}, observed "
                f"{numbers.describe_rc(result.rc)}"]
    found = [f"{label}: required {reg.upper()}={want:#x}, observed "
             f"{result.regs.get(reg, 0):#x}"
             for reg, want in call.expect.regs if result.regs.get(reg) != want]
    for other in call.expect.distinct_from:
        if other in run.steps and run.steps[other].regs.get("r4") == result.regs.get("r4"):
            found.append(f"{label}: R4 {result.regs.get('r4', 0):#x} repeats {other}'s")
    if result.fields.get("l1", "ok") != "ok":
        found.append(f"{label}: {call.hcall} changed the L1's own registers "
                     f"(name:before>after): {result.fields['l1']}")
    return found


def verdict(case: Case, run: ScriptRun) -> Verdict:
    """Whether the L0 did what the row requires, from the parsed output of its script."""
    if run.end == "setup-failed":
        line = run.steps[run.failed].line if run.failed in run.steps else "no result"
        return Verdict(Outcome.SETUP_FAILED, (f"setup step {run.failed}: {line}",))
    if run.end != "done":
        last = next(reversed(run.steps), "the start")
        crash = (f"; known to crash QEMU: {case.crash_evidence}" if case.may_crash_l0 else "")
        return Verdict(Outcome.INCOMPLETE,
                       (f"no PNEND line after {last}: the L1 or its L0 stopped{crash}",))
    steps = dict(labelled(case))
    checks = [(label, s) for label, s in steps.items()
              if (isinstance(s, Call) and s.role is Role.CHECK) or isinstance(s, Read)]
    for label, _ in checks:
        result = run.steps.get(label)
        if result is None or result.error is not None:
            what = result.line if result else "no result line"
            return Verdict(Outcome.SETUP_FAILED, (f"{label}: the module answered {what}",))
    differences: list[str] = []
    for label, step in steps.items():
        if isinstance(step, Call) and step.role is Role.CHECK:
            differences += _check(label, step, run)
        elif isinstance(step, Read):
            differences += _check_read(label, step, run)
        elif isinstance(step, Bound):
            differences += _check_bound(label, step, steps, run)
    return Verdict(Outcome.DIFFERS, tuple(differences)) if differences \
        else Verdict(Outcome.MATCHES)
