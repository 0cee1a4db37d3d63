"""Runs rows of the hcall table in L1s, and says what happened.

Each case runs its compiled script (`script.compile_case`) through pnhcall.ko
in an L1 of its target whose kvm-hv is not loaded (kvm-hv registers with the
L0 too).  A case that may crash the L0, or needs an L0 untouched since its
reset, gets a fresh L1 of its own; the others share one L1 per target, which
is replaced when its L0 died.  (Among those, cases that leave state behind,
e.g. capabilities set, come after the ones that leave none: the order of
`cases_for_target`; each row's setup accepts what an earlier row left.)

When the L0 dies the L1's console closes: the run keeps QEMU's own last words,
how its process ended, and the hcall that was in flight.  Any case that is not
green leaves its script beside the run's logs as a reproducer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from powernest.errors import PowernestError, Unavailable
from powernest.guests import L1, L0Died
from powernest.hcalls import driver, numbers
from powernest.hcalls.cases import cases_for
from powernest.hcalls.model import Addr, Arg, Call, Case, Role, Var
from powernest.hcalls.script import compile_case, labelled
from powernest.hcalls.verdict import Outcome, ScriptRun, Verdict
from powernest.hcalls.verdict import parse_output as parse
from powernest.hcalls.verdict import verdict as judge
from powernest.kinds import Target
from powernest.lab import LabBuildError
from powernest.pool import GuestPool

SCRIPT = "/tmp/pn-hcall-case.sh"
HOW_TO = ("Install that kernel's headers and a compiler on the host (the suite then builds "
          "it there), or build it against them (make -C /lib/modules/$(uname -r)/build "
          "M=lib/powernest/hcalls/module modules) and give its path as the host's "
          "'hcall_module' in the inventory")


def isolated(case: Case) -> bool:
    """Whether a case needs an L1 (and L0 state) of its own."""
    return case.may_crash_l0 or case.needs_fresh


def cases_for_target(target: Target) -> list[Case]:
    """The rows for `target`'s API, in the order they run: those that leave no state
    first (in a shared L1), then those that do; isolated ones keep their place."""
    rows = cases_for(target.api)
    return sorted(rows, key=lambda c: c.leaves_state and not isolated(c))


@dataclass(frozen=True)
class CaseRun:
    """One case run: its verdict, what the L1 printed, and, if the L0 died, how."""

    case: Case
    verdict: Verdict
    output: str
    console_log: Path            # the L1's console (its L0 QEMU's stderr included)
    observed: str = ""           # the return code the checked call got, named
    l0_death: L0Died | None = None
    in_flight: str = ""          # the hcall the L0 died in, as the script made it
    reproducer: Path | None = None

    @property
    def l0_words(self) -> str:
        """What the L0 said as it died, and how its process ended; "" if it did not."""
        if self.l0_death is None:
            return ""
        return f"{self.l0_death.words} ({self.l0_death.ended})"

    @property
    def l0_died(self) -> str:
        """How the L0 died and in which hcall, as a report says it; "" if it did not."""
        return f"{self.l0_words} during {self.in_flight}" if self.l0_death else ""

    def properties(self, run_dir: Path) -> list[tuple[str, str]]:
        """What the case's report records: the row, its codes, its L1's console, the
        L0's death and the reproducer (paths relative to `run_dir`)."""
        props = [("attachment", str(self.console_log.relative_to(run_dir))),
                 ("hcall_case", self.case.id), ("hcall", self.case.hcall),
                 ("hcall_required", self.case.checks[0].expect.describe())]
        if self.observed:
            props.append(("hcall_observed", self.observed))
        if self.reproducer:
            relative = str(self.reproducer.relative_to(run_dir))
            props += [("reproducer", relative), ("attachment", relative)]
        if self.l0_died:
            props.append(("l0_died", self.l0_died))
        return props


def _observed(case: Case, run: ScriptRun) -> str:
    """The named return code of the case's first checked call, "" if it got none."""
    for label, step in labelled(case):
        if isinstance(step, Call) and step.role is Role.CHECK:
            result = run.steps.get(label)
            return numbers.describe_rc(result.rc) if result and result.rc is not None else ""
    return ""


class HcallRunner:
    """Runs hcall cases against targets for one run; see the module docstring."""

    def __init__(self, pool: GuestPool, modules: Mapping[str, Path], out_dir: Path,
                 build: Callable[[str], Path] | None = None) -> None:
        self.pool = pool
        self.modules = dict(modules)   # kernel release: pnhcall.ko built for it (the lab's)
        self.build = build             # builds one for another kernel release
        self.out_dir = out_dir
        self._shared: dict[str, L1] = {}
        self._on_host: dict[tuple[str, str], driver.OnHost] = {}  # (host, release): built there
        self._unbuildable: dict[tuple[str, str], str] = {}   # (host, release): why no module

    def run(self, target: Target, case: Case) -> CaseRun:
        """Run `case` in an L1 of `target`; `Unavailable` if no L1 can take the module."""
        fresh = isolated(case)
        l1 = self.pool.l1(target) if fresh else self._shared_l1(target)
        try:
            run = self._run_in(l1, target, case)
        finally:
            if fresh:
                self.pool.stop(l1)
        if run.l0_death and not fresh:
            self._drop_shared(target)
        if run.l0_death or run.verdict.outcome is not Outcome.MATCHES:
            run = self._keep_reproducer(run, target)
        return run

    def _shared_l1(self, target: Target) -> L1:
        l1 = self._shared.get(target.id)
        if l1 is None or not l1.alive():
            self._drop_shared(target)
            l1 = self._shared[target.id] = self.pool.l1(target)
        return l1

    def _drop_shared(self, target: Target) -> None:
        if l1 := self._shared.pop(target.id, None):
            self.pool.stop(l1)

    def module_for(self, l1: L1, target: Target) -> Path | driver.OnHost:
        """The pnhcall.ko built for the kernel `l1` runs: the inventory's, else the lab's,
        else one the host builds itself (as DKMS does), else one built here (`build`);
        `Unavailable`, saying how to give one, if none."""
        given = target.host.hcall_module
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise Unavailable(f"{target.host.name}: hcall_module {given}: no such file")
            built_for = driver.vermagic(path).split(" ")[0]
            if built_for != l1.kernel_release:
                raise Unavailable(f"{target.host.name}: hcall_module {given} is built for "
                                  f"{built_for}; {l1.name} runs {l1.kernel_release}")
            return path
        release = l1.kernel_release
        key = (target.host.name, release)
        if release not in self.modules and not (key in self._on_host or key in self._unbuildable):
            self._get_module(l1, key)
        if key in self._unbuildable:
            raise Unavailable(self._unbuildable[key])
        return self.modules.get(release) or self._on_host[key]

    def _get_module(self, l1: L1, key: tuple[str, str]) -> None:
        """Have the host build the module for its kernel, else build it here; else note
        why neither could."""
        release = key[1]
        try:
            self._on_host[key] = driver.build_on_host(l1, release)
            return
        except driver.CannotBuild as exc:
            there = str(exc)
        here = f"the lab builds it for its own kernels ({', '.join(self.modules)})"
        if self.build is not None:
            try:
                self.modules[release] = self.build(release)
                return
            except LabBuildError as exc:
                here = str(exc)
        self._unbuildable[key] = (f"no pnhcall.ko for {release}, the kernel {l1.name} runs: "
                                  f"{l1.name} cannot build it ({there}); here: {here}. {HOW_TO}")

    def _run_in(self, l1: L1, target: Target, case: Case) -> CaseRun:
        script = compile_case(case)
        timeout = target.host.timeouts.command
        driver.install(l1, self.module_for(l1, target))
        driver.upload(l1, script.encode(), SCRIPT)
        try:
            output = l1.run(["sh", SCRIPT], timeout=timeout).stdout
        except L0Died as died:
            run = parse(died.output)
            return CaseRun(case, judge(case, run), died.output, l1.log_path,
                           _observed(case, run), died, in_flight(case, run))
        run = parse(output)
        return CaseRun(case, judge(case, run), output, l1.log_path, _observed(case, run))

    def _keep_reproducer(self, run: CaseRun, target: Target) -> CaseRun:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{target.id}-{run.case.id}.sh"
        path.write_text(compile_case(run.case))
        return replace(run, reproducer=path)

    def close(self) -> None:
        """Stop the shared L1s; from one the run does not own (an LPAR), which goes on
        running, first unload the module.  (An L1 about to be stopped is not asked: an
        `rmmod` that hung a QEMU 7.2 L1 held a run's end for its command timeout.)"""
        for target_id in list(self._shared):
            l1 = self._shared.pop(target_id)
            with contextlib.suppress(PowernestError):
                if not self.pool.owns(l1) and l1.alive():
                    driver.unload(l1)
            self.pool.stop(l1)


def call_in_flight(case: Case, run: ScriptRun) -> int | None:
    """Where in `case.steps` the first call stands that the script did not see an
    answer to; None if it saw them all."""
    return next((n for n, (label, step) in enumerate(labelled(case))
                 if isinstance(step, Call) and label not in run.steps), None)


def in_flight(case: Case, run: ScriptRun) -> str:
    """The first call of `case` the script did not see an answer to, as
    `H_NAME(args)` with its arguments as the script computed them."""
    n = call_in_flight(case, run)
    if n is None:
        return "after the last step"
    label, step = list(labelled(case))[n]
    assert isinstance(step, Call)
    saved = {s.save: label for label, s in labelled(case) if isinstance(s, Call) and s.save}
    args = ", ".join(_shown(a, saved, run) for a in step.args)
    return f"{step.hcall}({args}) [{step.opcode:#x}, step {label}]"


def _shown(arg: Arg, saved_by: dict[str, str], run: ScriptRun) -> str:
    """An argument as the call got it: a number, or where it came from."""
    if isinstance(arg, int):
        return f"{arg & (1 << 64) - 1:#x}"
    if isinstance(arg, Var):
        result = run.steps.get(saved_by.get(arg.name, ""))
        value = result.regs.get("r4") if result else None
        return f"{arg.name}={value:#x}" if value is not None else arg.name
    if isinstance(arg, Addr):
        return f"&{arg.buf}" + (f"+{arg.offset:#x}" if arg.offset else "")
    return arg.text
