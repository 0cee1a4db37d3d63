"""The dashboard's hcall section: a run's hcall cases by L0, and where L0s differ.

An hcall case (`suites/test_hcalls.py`) carries the properties `hcall_case`
(its id in the case table), `hcall`, `hcall_required`, `hcall_observed`
(absent when nothing came back), `l0_died` (the L0's last words, only when
it died) and `reproducer` (its script, relative to the run directory); `l0`
names the implementation that answered.  Beside them, the crashes that hcall
campaigns found (`reports/campaigns/*/summary.json`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from powernest.hcalls.campaign import SUMMARY, Crash, Summary
from powernest.reporting.entry import Entry
from powernest.reporting.history import FAILING, OUTCOMES

CASE = "hcall_case"
DIED = "L0 died"
NOTHING = "nothing came back"
_NO_L0 = "L0 not recorded"


def _worst(outcomes: list[str]) -> str:
    return min(outcomes, key=lambda o: OUTCOMES.index(o) if o in OUTCOMES else 0)


@dataclass
class HcallRow:
    """One hcall case as the section shows it."""

    entry: Entry
    anchor: str
    reproducer: str     # the script's path in the run directory, "" if none recorded
    href: str           # its link from the page, "" when the script is not there

    def _prop(self, name: str) -> str:
        return self.entry.case.properties.get(name, "")

    @property
    def case_id(self) -> str:
        return self._prop(CASE)

    @property
    def hcall(self) -> str:
        return self._prop("hcall")

    @property
    def required(self) -> str:
        return self._prop("hcall_required")

    @property
    def observed(self) -> str:
        return self._prop("hcall_observed")

    @property
    def died(self) -> str:
        return self._prop("l0_died")

    @property
    def host(self) -> str:
        return self._prop("host") or self.entry.case.suite

    @property
    def l0(self) -> str:
        return self._prop("l0") or _NO_L0

    @property
    def outcome(self) -> str:
        return self.entry.outcome

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    @property
    def value(self) -> str:
        """What the L0 answered, as compared between L0s."""
        return DIED if self.died else self.observed or NOTHING


@dataclass
class Group:
    """The hcall cases one L0 implementation answered."""

    l0: str
    rows: list[HcallRow] = field(default_factory=list)

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(r.host for r in self.rows))

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.outcome for r in self.rows)

    @property
    def failing(self) -> int:
        return sum(r.failing for r in self.rows)

    @property
    def deaths(self) -> int:
        return sum(bool(r.died) for r in self.rows)


@dataclass
class Line:
    """A case id run against several L0s: what each answered."""

    case_id: str
    hcall: str
    required: str
    cells: dict[str, list[HcallRow]] = field(default_factory=dict)

    def outcome(self, l0: str) -> str:
        return _worst([r.outcome for r in self.cells[l0]])

    @property
    def differs(self) -> bool:
        """The L0s (or hosts) answered differently; a skipped case answered nothing."""
        return len({r.value for rows in self.cells.values() for r in rows
                    if r.outcome != "skipped"}) > 1


@dataclass
class Hcalls:
    """The section: a table per L0, and the matrix of the case ids seen by several."""

    groups: list[Group]
    lines: list[Line]      # differing first, then in run order

    @property
    def l0s(self) -> list[str]:
        return [g.l0 for g in self.groups]

    @property
    def total(self) -> int:
        return sum(len(g.rows) for g in self.groups)

    @property
    def differing(self) -> int:
        return sum(line.differs for line in self.lines)


def _row(entry: Entry, index: int, run_dir: Path, reports: Path) -> HcallRow:
    script = entry.case.properties.get("reproducer", "")
    path = run_dir / script
    href = quote(os.path.relpath(path, reports)) if script and path.is_file() else ""
    return HcallRow(entry, f"hcall-{index}", script, href)


def _lines(rows: list[HcallRow]) -> list[Line]:
    lines: dict[str, Line] = {}
    for row in rows:
        line = lines.setdefault(row.case_id, Line(row.case_id, row.hcall, row.required))
        line.cells.setdefault(row.l0, []).append(row)
    several = [line for line in lines.values() if len(line.cells) > 1]
    return sorted(several, key=lambda line: not line.differs)


def section(entries: list[Entry], run_dir: Path, reports: Path) -> Hcalls | None:
    """The hcall section of a run's entries; None when the run has no hcall case."""
    rows = [_row(e, i, run_dir, reports)
            for i, e in enumerate(e for e in entries if e.case.properties.get(CASE))]
    if not rows:
        return None
    order = {case_id: i for i, case_id in enumerate(dict.fromkeys(r.case_id for r in rows))}
    rows.sort(key=lambda r: (order[r.case_id], r.host))
    groups: dict[str, Group] = {}
    for row in rows:
        groups.setdefault(row.l0, Group(row.l0)).rows.append(row)
    return Hcalls(sorted(groups.values(), key=lambda g: g.l0), _lines(rows))


@dataclass(frozen=True)
class CampaignCrash:
    """A crash key of a campaign, as the section lists it."""

    crash: Crash
    target: str       # host/api
    seed: int
    l0: str
    compared: bool    # the campaign ran the table's rows first: "no row" means new
    href: str         # the minimized reproducer, from the page


def campaign_crashes(reports: Path) -> list[CampaignCrash]:
    """The crash keys of the campaigns under `reports/campaigns`, new ones first."""
    found = []
    for path in sorted((reports / "campaigns").glob(f"*/{SUMMARY}")):
        summary = Summary.read(path)
        for crash in summary.crashes:
            href = quote(os.path.relpath(path.parent / crash.folder / "reproducer.sh", reports))
            found.append(CampaignCrash(crash, f"{summary.host}/{summary.api}", summary.seed,
                                       summary.qemu, summary.baseline_s is not None, href))
    return sorted(found, key=lambda c: (bool(c.crash.table_rows), c.target, c.crash.key))
