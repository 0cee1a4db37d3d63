"""Hcall campaigns: programs (`programs`) run in L1s of one target until a time budget
is spent, each L0 death keyed by what QEMU said, each new key minimized into a
reproducer that `powernest hcall replay` runs.

First the table's rows that may crash the L0 run (`baseline`): their keys are what the
table already finds, so each crash of the campaign says whether it is new.

Many programs run in one L1 (a fresh one from the checkpoint every `REFRESH` programs,
after an L0 death, or when a program hangs the L1).  A death is keyed by QEMU's own
message: a sanitizer's summary, an assertion or glib error (file, line, function), or
for a signal how the process ended and the hcall in flight.  A new key's program is cut
after the call that killed the L0 and minimized in fresh L1s: chunks of steps dropped
(ddmin), then arguments zeroed, each change kept only if the L0 still dies with the same
key; a program that does not kill a fresh L1's L0 alone is tried after the programs
that ran before it in its L1.  The campaign's directory holds `summary.json` and one
folder per key (`reproducer.sh`, minimized; `original.sh`; `qemu.txt`, QEMU's words).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from powernest.errors import PowernestError
from powernest.guests import L1, L0Died
from powernest.hcalls import driver, gsb
from powernest.hcalls.cases import cases_for
from powernest.hcalls.model import Call, Case
from powernest.hcalls.programs import (
    Programs,
    ProgramStep,
    elements_of,
    hcalls_of,
    program,
    program_steps,
)
from powernest.hcalls.runner import call_in_flight, in_flight
from powernest.hcalls.script import compile_case
from powernest.hcalls.verdict import parse_output
from powernest.kinds import Target
from powernest.pool import GuestPool
from powernest.shell import CommandTimeout

SUMMARY = "summary.json"
SCRIPT = "/tmp/pn-campaign.sh"
REFRESH = 200            # programs per L1 before a fresh one
PROGRAM_TIMEOUT = 20.0   # s: a program that runs longer has hung its L1
MAX_TRIES = 60           # reruns to minimize one key
HISTORY = 10             # programs before a death tried with it when it needs them
_SANITIZER = re.compile(r"SUMMARY: (\w+Sanitizer): ([\w-]+) (\S+) in (\w+)")
_ASSERT = re.compile(r"(?:\S*/)?([\w.]+):(\d+): (\w+): Assertion")
_GLIB = re.compile(r"ERROR:(?:\S*/)?([\w.]+):(\d+):(\w+):")
_UBSAN = re.compile(r"(?:\S*/)?([\w.]+:\d+):\d+: runtime error: (.*)")

Log = Callable[[str], None]


def crash_key(said: Sequence[str], ended: str, hcall: str) -> str:
    """What identifies an L0 death: its sanitizer summary, assertion or glib error
    (file:line function), else how it ended and the hcall in flight."""
    text = "\n".join(said)
    if m := _SANITIZER.search(text):
        return f"{m[1]} {m[2]} in {m[4]} ({_where(m[3])})"
    if m := _UBSAN.search(text):
        return f"UBSan {m[2]} ({m[1]})"
    if m := _ASSERT.search(text) or _GLIB.search(text):
        return f"{m[3]} ({m[1]}:{m[2]})"
    return f"{ended} in {hcall or 'no hcall'}"


def _where(location: str) -> str:
    """A sanitizer's location as a key shows it: `physmem.c:3480` for
    `../system/physmem.c:3480:5`, `libglib-2.0.so.0` for `(/lib/.../libglib-2.0.so.0+0x41677)`."""
    name = location.strip("()").rpartition("/")[2]
    return re.sub(r"^([^:]+:\d+):\d+$", r"\1", re.sub(r"\+0x[0-9a-f]+$", "", name))


def slug(key: str) -> str:
    """A folder name for a crash key."""
    return re.sub(r"[^\w.-]+", "-", key).strip("-")[:100]


@dataclass
class Crash:
    """One crash key of a campaign."""

    key: str
    words: str                 # QEMU's words and how its process ended
    in_flight: str             # the hcall it died in, as the script made it
    first_found_s: float       # seconds into the campaign
    program: int               # the number of the first program that found it
    count: int = 1             # programs that found it
    steps_before: int = 0      # the program's steps as found
    steps_after: int = 0       # and minimized
    reproduces: bool = False   # the minimized reproducer died with the same key
    table_rows: list[str] = field(default_factory=list)   # rows of the table with this key
    folder: str = ""


@dataclass
class Summary:
    """What a campaign did: its settings, throughput, crashes and coverage."""

    host: str
    api: str
    seed: int
    budget_s: float
    qemu: str
    baseline_s: float | None = None   # running the table's rows that may crash the L0
    table_keys: dict[str, list[str]] = field(default_factory=dict)   # their keys: rows
    programs: int = 0
    search_s: float = 0.0        # time spent running programs (minimizing excluded)
    total_s: float = 0.0
    l1s: int = 0
    hangs: int = 0               # programs that ran past PROGRAM_TIMEOUT
    crashes: list[Crash] = field(default_factory=list)
    hcalls: list[str] = field(default_factory=list)          # made by some program
    table_hcalls: list[str] = field(default_factory=list)    # made by the table's rows
    elements: int = 0            # the table's GSB element IDs some program wrote
    table_elements: int = len(gsb.ELEMENTS)

    @property
    def per_second(self) -> float:
        return self.programs / self.search_s if self.search_s else 0.0

    def write(self, out: Path) -> None:
        data = asdict(self) | {"executions_per_second": round(self.per_second, 2)}
        (out / SUMMARY).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Summary:
        data = json.loads(path.read_text())
        data.pop("executions_per_second", None)
        crashes = [Crash(**c) for c in data.pop("crashes")]
        return cls(**data, crashes=crashes)

    def render(self) -> str:
        """The summary as a terminal shows it."""
        lines = [f"campaign {self.host}/{self.api}, seed {self.seed}: {self.programs} "
                 f"programs in {self.search_s:.0f} s ({self.per_second:.2f}/s), {self.l1s} "
                 f"L1s, {self.hangs} hung, {len(self.crashes)} crash keys; hcalls "
                 f"{len(self.hcalls)} of the table's {len(self.table_hcalls)}, GSB elements "
                 f"{self.elements} of {self.table_elements}"]
        if self.baseline_s is not None:
            lines.append(f"  the table's rows that may crash the L0 found "
                         f"{len(self.table_keys)} keys in {self.baseline_s:.0f} s")
        for c in self.crashes:
            known = (f"table: {', '.join(c.table_rows)}" if c.table_rows
                     else "NEW" if self.baseline_s is not None else "table not run")
            lines.append(f"  {c.key} [{known}] x{c.count}, first at {c.first_found_s:.0f} s; "
                         f"{c.steps_before} -> {c.steps_after} steps"
                         f"{'' if c.reproduces else ' (minimized program did not reproduce)'}: "
                         f"{c.folder}/reproducer.sh")
        return "\n".join(lines)


@dataclass(frozen=True)
class Death:
    """An L0 death as a campaign keys it; `upto`: the program's steps up to the call it
    died in (all of them if that cannot be told)."""

    key: str
    words: str
    in_flight: str
    upto: int | None = None


class Campaign:
    """Runs programs against one target (see the module docstring)."""

    def __init__(self, pool: GuestPool, target: Target, module: Callable[[L1], object],
                 out: Path, seed: int, qemu: str, log: Log = print) -> None:
        self.pool = pool
        self.target = target
        self.module = module    # installs pnhcall.ko in an L1
        self.out = out
        self.log = log
        self.programs = Programs(target.api, seed)
        self.summary = Summary(target.host.name, target.api.value, seed, 0.0, qemu,
                               table_hcalls=self.programs.hcalls)
        self._l1: L1 | None = None
        self._history: list[tuple[ProgramStep, ...]] = []   # programs run in that L1

    def baseline(self) -> None:
        """Run each row of the table that may crash the L0, each in a fresh L1: the keys
        the table already finds, so that a campaign's crash says whether it is new."""
        t0 = time.monotonic()
        rows = [row for row in cases_for(self.target.api) if row.may_crash_l0]
        self.log(f"campaign: the table's {len(rows)} rows that may crash the L0 first")
        for row in rows:
            death = self._execute(row.id, program_steps(row), fresh=True)
            if death is not None:
                self.summary.table_keys.setdefault(death.key, []).append(row.id)
        self.summary.baseline_s = round(time.monotonic() - t0, 1)

    def run(self, budget_s: float, max_programs: int | None = None,
            baseline: bool = True) -> Summary:
        """Run programs for `budget_s` seconds of search (or `max_programs`), minimizing
        each new crash key as it is found, after the table's own crashes (`baseline`);
        the summary is written as it goes."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary.budget_s = budget_s
        if baseline:
            self.baseline()
        start = time.monotonic()
        hcalls: set[str] = set()
        elements: set[int] = set()
        try:
            while self.summary.search_s < budget_s and (
                    max_programs is None or self.summary.programs < max_programs):
                steps = self.programs.next()
                number = self.summary.programs
                t0 = time.monotonic()
                death = self._execute(f"p{number}", steps)
                self.summary.search_s += time.monotonic() - t0
                self.summary.programs += 1
                hcalls |= hcalls_of(steps)
                elements |= elements_of(steps)
                if death is not None:
                    self._found(death, steps, number, time.monotonic() - start)
                if number % 50 == 49:
                    self.log(f"campaign: {self.summary.programs} programs, "
                             f"{self.summary.per_second:.2f}/s, "
                             f"{len(self.summary.crashes)} crash keys")
                self.summary.hcalls = sorted(hcalls)
                self.summary.elements = len(elements)
                self.summary.total_s = time.monotonic() - start
                self.summary.write(self.out)
        finally:
            self._drop()
        return self.summary

    def _found(self, death: Death, steps: tuple[ProgramStep, ...], number: int,
               at: float) -> None:
        known = next((c for c in self.summary.crashes if c.key == death.key), None)
        if known is not None:
            known.count += 1
            return
        before = [s for steps_before in self._history[-HISTORY:] for s in steps_before]
        self.log(f"campaign: new crash key after {at:.0f} s (program {number}): {death.key}")
        cut = list(steps[:death.upto])
        crash = Crash(death.key, death.words, death.in_flight, round(at, 1), number,
                      steps_before=len(steps),
                      table_rows=self.summary.table_keys.get(death.key, []),
                      folder=f"crashes/{slug(death.key)}")
        folder = self.out / crash.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "original.sh").write_text(compile_case(self._case(f"p{number}", steps)))
        (folder / "qemu.txt").write_text(f"{death.words}\nduring {death.in_flight}\n")
        small, reproduces = self.minimize(cut, death.key)
        if not reproduces and before:
            self.log(f"campaign: not alone: with the {len(before)} steps of the programs "
                     "before it in that L1")
            with_before, reproduces = self.minimize([*before, *cut], death.key)
            small = with_before if reproduces else small
        crash.steps_after, crash.reproduces = len(small), reproduces
        (folder / "reproducer.sh").write_text(compile_case(self._case(
            slug(death.key), small, f"reproduces: {death.key}")))
        self.summary.crashes.append(crash)
        self.log(f"campaign: minimized {len(steps)} -> {len(small)} steps"
                 f"{'' if reproduces else ' (did not reproduce in a fresh L1)'}: "
                 f"{folder / 'reproducer.sh'}")

    def minimize(self, steps: Sequence[ProgramStep],
                 key: str) -> tuple[list[ProgramStep], bool]:
        """The smallest program found that kills a fresh L1's L0 with `key`, and whether
        one did at all (else `steps` unchanged)."""
        tries = 0

        def same(candidate: Sequence[ProgramStep]) -> bool:
            nonlocal tries
            tries += 1
            death = self._execute("min", candidate, fresh=True)
            return death is not None and death.key == key

        current = list(steps)
        if not same(current):
            return current, False
        chunks = 2     # ddmin: drop a chunk while the death stays; then finer chunks
        while len(current) > 1 and tries < MAX_TRIES:
            size = -(-len(current) // chunks)
            for start in range(0, len(current), size):
                candidate = current[:start] + current[start + size:]
                if candidate and tries < MAX_TRIES and same(candidate):
                    current, chunks = candidate, max(chunks - 1, 2)
                    break
            else:
                if chunks >= len(current):
                    break
                chunks = min(2 * chunks, len(current))
        for i, step in enumerate(list(current)):
            if tries >= MAX_TRIES:
                break
            if not isinstance(step, Call):
                continue
            for j, arg in enumerate(step.args):
                if arg == 0 or tries >= MAX_TRIES:
                    continue
                zeroed = replace(step, args=step.args[:j] + (0,) + step.args[j + 1:])
                candidate = current[:i] + [zeroed] + current[i + 1:]
                if same(candidate):
                    current, step = candidate, zeroed
        return current, True

    def _case(self, name: str, steps: Sequence[ProgramStep], note: str = "") -> Case:
        return program(self.target.api, name, steps, note)

    def _execute(self, name: str, steps: Sequence[ProgramStep],
                 fresh: bool = False) -> Death | None:
        """Run a program; its L0 death, if it died.  `fresh`: in an L1 of its own."""
        case = self._case(name, steps)
        try:
            script = compile_case(case)
        except (ValueError, KeyError):
            return None     # more buffers or bytes than the module takes: not run
        if fresh:
            self._drop()
        l1 = self._l1_now()
        try:
            driver.upload(l1, script.encode(), SCRIPT)
            l1.run(["sh", SCRIPT], timeout=PROGRAM_TIMEOUT)
        except L0Died as died:
            self._drop()
            run = parse_output(died.output)
            hcall, at = in_flight(case, run), call_in_flight(case, run)
            # each message's first line: an L1's console may follow QEMU's stderr closely
            words = "; ".join(m.splitlines()[0] for m in died.said) or died.words
            return Death(crash_key(died.said, died.ended, hcall.split("(")[0]),
                         f"{words} ({died.ended})", hcall, None if at is None else at + 1)
        except CommandTimeout:
            self.summary.hangs += 1
            self._drop()
        except PowernestError:
            self._drop()
        else:
            self._history.append(tuple(steps))
            if fresh or len(self._history) >= REFRESH:
                self._drop()
        return None

    def _l1_now(self) -> L1:
        if self._l1 is None or not self._l1.alive():
            self._drop()
            self._l1 = self.pool.l1(self.target)
            self.module(self._l1)
            self.summary.l1s += 1
            self._history = []
        return self._l1

    def _drop(self) -> None:
        if self._l1 is not None:
            self.pool.stop(self._l1)
            self._l1 = None

