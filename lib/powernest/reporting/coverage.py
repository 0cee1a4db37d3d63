"""Spec coverage: each clause of the nested APIs (`hcalls.clauses`) against the targets of
a run: checked and conforming, checked and deviating (a known deviation that breaks it,
`DEVIATION_CLAUSES`), checked and differing (a row that names it failed: a failure is
not attributed further), not run there, or checked by no row (and why).  A row that
met a deviation of another clause still counts as checking this one."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from powernest.hcalls.clauses import (
    CLAUSES,
    DEVIATION_CLAUSES,
    UNCOVERED,
    Clause,
    rows_checking,
)
from powernest.reporting.journal import Run

CONFORMS, DEVIATES, DIFFERS = "conforms", "deviates", "differs"
NOT_RUN, NOT_CHECKED = "not run", "not checked"
_DEVIATION = re.compile(r"known deviation ([\w.-]+)")
_FAILING = ("failed", "error", "xpassed", "interrupted")


@dataclass(frozen=True)
class Cell:
    """One clause on one target: its status and what says so (rows, deviations, reason)."""

    status: str
    detail: str = ""


@dataclass
class Coverage:
    """The clauses of the APIs a run's targets offered, by target (`host/api`)."""

    targets: list[str]
    clauses: list[Clause]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (clause, target)

    def cell(self, clause: Clause, target: str) -> Cell | None:
        """The clause on the target; None where the target's API is another."""
        return self.cells.get((clause.id, target))

    @staticmethod
    def why_unchecked(clause: Clause) -> str:
        """Why no row checks the clause; "" when one does."""
        return "" if rows_checking(clause.id) else UNCOVERED.get(clause.id, "")

    def counts(self, target: str) -> Counter[str]:
        return Counter(c.status for (_, t), c in self.cells.items() if t == target)


def _cell(clause: Clause, outcomes: dict[str, tuple[str, str]]) -> Cell:
    """`outcomes`: row id -> (outcome, message) of the rows run on one target."""
    rows = rows_checking(clause.id)
    if not rows:
        return Cell(NOT_CHECKED, UNCOVERED.get(clause.id, ""))
    ran = {row: outcomes[row] for row in rows if row in outcomes and outcomes[row][0] != "skipped"}
    if not ran:
        return Cell(NOT_RUN, ", ".join(rows))
    differing = [row for row, (outcome, _) in ran.items() if outcome in _FAILING]
    if differing:
        return Cell(DIFFERS, ", ".join(differing))
    deviations = sorted({d for outcome, message in ran.values() if outcome == "xfailed"
                         for d in _DEVIATION.findall(message)
                         if clause.id in DEVIATION_CLAUSES.get(d, ())})
    if deviations:
        return Cell(DEVIATES, ", ".join(deviations))
    return Cell(CONFORMS, ", ".join(ran))


def coverage(run: Run) -> Coverage:
    """Every clause of each API a target of `run` was tested under, on that target."""
    by_target: dict[str, dict[str, tuple[str, str]]] = {}
    for case in run.cases.values():
        row = case.properties.get("hcall_case")
        if row and "/" in case.suite:
            by_target.setdefault(case.suite, {})[row] = (case.outcome, case.message)
    targets = sorted(by_target)
    apis = {t.rsplit("/", 1)[1] for t in targets}
    result = Coverage(targets, [c for c in CLAUSES if c.api.value in apis])
    for clause in result.clauses:
        for target in targets:
            if target.endswith(f"/{clause.api.value}"):
                result.cells[clause.id, target] = _cell(clause, by_target[target])
    return result


def render(cov: Coverage) -> str:
    """The matrix as text: a line per clause, a column per target, counts first."""
    width = max([len(t) for t in cov.targets] + [len(NOT_CHECKED)]) + 2
    lines = []
    for target in cov.targets:
        counts = cov.counts(target)
        lines.append(f"{target}: " + ", ".join(
            f"{counts[s]} {s}" for s in (CONFORMS, DEVIATES, DIFFERS, NOT_RUN, NOT_CHECKED)))
    name = max((len(c.id) for c in cov.clauses), default=10)
    lines.append("")
    lines.append("clause".ljust(name) + "  " + "".join(t.ljust(width) for t in cov.targets))
    for clause in cov.clauses:
        cells = [cov.cell(clause, t) for t in cov.targets]
        lines.append(clause.id.ljust(name) + "  " + "".join(
            (c.status if c else "-").ljust(width) for c in cells))
    shown = {c.detail for c in cov.cells.values() if c.status in (DEVIATES, DIFFERS)}
    if shown:
        lines += ["", "deviating or differing: " + "; ".join(sorted(shown))]
    return "\n".join(lines)
