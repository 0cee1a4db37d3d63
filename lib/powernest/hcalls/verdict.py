"""A row's script output read back, and the verdict: did the L0 do what the row requires?

The script (`script.compile_case`) prints `PNBEGIN`, one `PNSTEP <label> <the
module's result>` per step and `PNEND`; `parse_output` reads those lines (and
nothing else: kernel messages may interleave), `verdict` compares them with the
row: each checked call's return code and registers and the L1's own registers,
each read-back buffer's fields and elements, each bound between values of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from powernest.hcalls import gsb, numbers
from powernest.hcalls.model import (
    PROCESSOR_MODES,
    PVR_GENERATIONS,
    Bound,
    Call,
    Case,
    Modes,
    Read,
    Ref,
    Role,
    Step,
    describe_want,
    element_name,
    reg_accepts,
)
from powernest.hcalls.script import labelled


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
                found.append(f"{label}: {element_name(element_id)} required {want.hex()}, "
                             f"observed {seen}")
    return found


def _check_bound(label: str, bound: Bound, steps: dict[str, Step], run: ScriptRun) -> list[str]:
    value = _value(bound.value, steps, run)
    low = None if bound.low is None else _value(bound.low, steps, run)
    high = None if bound.high is None else _value(bound.high, steps, run)
    if value is None or (bound.low is not None and low is None) or \
            (bound.high is not None and high is None):
        return [f"{label}: the run did not produce the values of {bound.describe()}"]
    if (low is not None and value < low + bound.shift) or \
            (high is not None and value > high + bound.shift):
        shown = ", ".join(f"{r.text()}={v:#x}" for r, v in
                          ((bound.low, low), (bound.value, value), (bound.high, high))
                          if isinstance(r, Ref) and v is not None)
        return [f"{label}: required {bound.describe()}, observed {shown}"]
    return []


def _check_modes(label: str, modes: Modes, run: ScriptRun) -> list[str]:
    fields = run.steps[label].fields
    generation, pvr = fields.get("generation", ""), fields.get("pvr", "")
    offered = run.steps[modes.call].regs.get("r4") if modes.call in run.steps else None
    if not generation.isdigit() or offered is None:
        return [f"{label}: the run did not produce the L1's processor mode "
                f"({run.steps[label].line!r}) and {modes.call}'s R4"]
    own = int(generation)
    processor = PVR_GENERATIONS.get(int(pvr, 16), own) if pvr else own
    found = [f"{label}: R4 {offered:#x} lacks the L1's own POWER{own} mode"
             for g, bit in PROCESSOR_MODES.items() if g == own and not offered & bit]
    found += [f"{label}: R4 {offered:#x} offers the POWER{g} mode, newer than the L1's "
              f"POWER{processor} processor" for g, bit in PROCESSOR_MODES.items()
              if g > processor and offered & bit]
    return found


def _check(label: str, call: Call, run: ScriptRun) -> list[str]:
    result = run.steps[label]
    if result.rc is None:
        return [f"{label}: no return code in {result.line!r}"]
    if not call.expect.accepts(result.rc):
        return [f"{label}: {call.hcall} required {call.expect.describe()}, observed "
                f"{numbers.describe_rc(result.rc)}"]
    found = [f"{label}: required {reg.upper()}={describe_want(want)}, observed "
             f"{result.regs.get(reg, 0):#x}"
             for reg, want in call.expect.regs if not reg_accepts(want, result.regs.get(reg))]
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
              if (isinstance(s, Call) and s.role is Role.CHECK) or isinstance(s, Read | Modes)]
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
        elif isinstance(step, Modes):
            differences += _check_modes(label, step, run)
    return Verdict(Outcome.DIFFERS, tuple(differences)) if differences \
        else Verdict(Outcome.MATCHES)
