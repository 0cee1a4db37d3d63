"""The dashboard: `reports/index.html`, one static page about a run.

Built from the run's journal.  Shows the run (hosts, L0 versions, kernels,
counts), a matrix of test functions by host and API coloured by outcome, the
failures with links to their console logs, the hcall cases by L0 (`hcalls`),
the flaky cases (another outcome in an earlier run of the same code on the
same L0 and L1 kernel: `history.flaky`), and the trend of the last runs from
`reports/history/<run-id>.json`, one small summary per run written here.
Times show their UTC offset.  The page is self-contained: inline CSS and
SVG, no scripts, no network.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import jinja2

from powernest import naming
from powernest.nested import API
from powernest.reporting import coverage, hcalls, history, journal, profile
from powernest.reporting.entry import Entry, Log
from powernest.reporting.history import FAILING, OUTCOMES
from powernest.reporting.journal import Case, Run

INDEX = "index.html"
_DEVIATION = re.compile(r"known deviation ([\w.-]+)")
API_LABELS = {API.V1.value: "v1 nested-hv", API.V2.value: "v2 nested-papr"}


def _target(where: str) -> str:
    """A guest name's `<host>-<api>` as `<host> · v1 nested-hv`."""
    for api in API:
        if where.endswith(f"-{api.value}"):
            return f"{where.removesuffix(f'-{api.value}')} · {API_LABELS[api.value]}"
    return where


def whose(stem: str) -> tuple[str, str, str]:
    """A console log's level, whose it is and its guest, from its name (`powernest.naming`).

    `<host>.lpar` is an LPAR's, `<lpar>-pn.<run>.<host>.l2-N` an L2's on that
    LPAR, `pn.<run>.<host>-<api>.<l1>` an L1's and `...<l1>-l2-N` an L2's in it.
    """
    lpar, on_lpar, l2 = stem.partition(f"-{naming.PREFIX}.")
    if on_lpar:
        return "L2", f"L2 on the LPAR of {lpar}", l2.rpartition(".")[2]
    if stem.endswith(".lpar"):
        return "LPAR", f"LPAR console of {stem.removesuffix('.lpar')}", ""
    where, _, role = naming.short(stem).rpartition(".")
    if naming.is_l2(stem):
        l1, _, number = role.rpartition("-l2-")
        return "L2", f"L2 in L1 {l1} on {_target(where)}", f"l2-{number}"
    if role.startswith("l1-"):
        return "L1", f"L1 console on {_target(where)}", role
    return "log", f"console of {_target(where)}" if where else "console", role


@dataclass
class Failure:
    """Failing cases with the same outcome and message: usually one cause."""

    outcome: str
    message: str
    entries: list[Entry]

    @property
    def anchor(self) -> str:
        return self.entries[0].anchor

    @property
    def logs(self) -> list[Log]:
        return list({log.href: log for e in self.entries for log in e.logs}.values())


@dataclass
class Cell:
    entries: list[Entry]

    @property
    def outcome(self) -> str:
        return min((e.outcome for e in self.entries), key=_rank)

    @property
    def deviations(self) -> list[str]:
        return list(dict.fromkeys(e.deviation for e in self.entries if e.deviation))

    @property
    def passed(self) -> int:
        return sum(e.outcome in ("passed", "xpassed") for e in self.entries)

    @property
    def flaky(self) -> bool:
        return any(e.flaky for e in self.entries)

    @property
    def title(self) -> str:
        return "\n".join(f"{e.param or e.case.name}: {e.outcome}"
                         + (f" ({e.deviation})" if e.deviation else "")
                         + (f" - {e.message}" if e.message and e.outcome != "passed" else "")
                         + (f" [flaky: {'; '.join(e.flaky)}]" if e.flaky else "")
                         for e in self.entries)


@dataclass
class Column:
    suite: str
    host: str
    api: str

    @property
    def label(self) -> str:
        return API_LABELS.get(self.api, self.api or "host")


@dataclass
class Row:
    module: str
    function: str
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class HostInfo:
    name: str
    kind: str = ""
    cpu: str = ""
    apis: list[str] = field(default_factory=list)
    l0: list[str] = field(default_factory=list)
    l1_kernels: list[str] = field(default_factory=list)
    l2_kernels: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def _rank(outcome: str) -> int:
    return OUTCOMES.index(outcome) if outcome in OUTCOMES else 0


def _add_unique(values: list[str], value: str | None) -> None:
    if value and value not in values:
        values.append(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _param(case: Case) -> str:
    """The case's parameters without the host/API prefix its suite already says."""
    param = case.name.partition("[")[2].removesuffix("]")
    prefix = case.suite.replace("/", "-")
    return param.removeprefix(prefix).lstrip("-") if param.startswith(prefix) else param


def _logs(case: Case, run_dir: Path, reports: Path, consoles: list[Path]) -> list[Log]:
    """The case's console logs: those attached, else the guests its failure names.

    Other attachments (an hcall case's reproducer script) are no console logs.
    """
    paths = [run_dir / a for a in case.attachments if a.endswith(".log")]
    if not paths and case.outcome in FAILING:
        text = case.message + "\n" + case.details
        paths = [p for p in consoles if re.search(re.escape(p.stem) + r"(?![\w-])", text)]
    return [Log(*whose(path.stem), quote(os.path.relpath(path, reports)), path.name)
            for path in paths]


def _summary(case: Case) -> str:
    """What went wrong, in a few lines.

    For a failing case the last `E` block of pytest's report (without its
    `+ where` lines), else its message or the first line of its details (a
    strict XPASS); for any other case its message (an xfail's reason).
    """
    if case.outcome not in FAILING:
        return case.message
    blocks: list[list[str]] = []
    in_block = False
    for line in case.details.splitlines():
        is_e = line == "E" or line.startswith("E ")
        if is_e and not in_block:
            blocks.append([])
        if is_e:
            blocks[-1].append(line[1:].strip())
        in_block = is_e
    lines = [line for line in (blocks[-1] if blocks else []) if line and line[0] != "+"]
    first = next((line for line in case.details.splitlines() if line.strip()), "")
    return "\n".join(lines[:4]) or case.message or first


def _entry(case: Case, index: int, run_dir: Path, reports: Path,
           consoles: list[Path]) -> Entry:
    message = _summary(case)
    found = _DEVIATION.search(message)
    return Entry(case, _param(case), message, found.group(1) if found else "",
                 _logs(case, run_dir, reports, consoles), f"case-{index}")


def _columns(run: Run) -> list[Column]:
    order = list(run.info.get("hosts", []))
    found: dict[str, Column] = {}
    for case in run.cases.values():
        host = case.properties.get("host", "")
        if case.suite not in found:
            found[case.suite] = Column(case.suite, host or case.suite,
                                       case.properties.get("api", ""))
        if host and host not in order:
            order.append(host)
    apis = ("", "nested-hv", "nested-papr")
    return sorted(found.values(), key=lambda c: (
        order.index(c.host) if c.host in order else len(order), c.host,
        apis.index(c.api) if c.api in apis else len(apis), c.api))


def _hosts(run: Run) -> list[HostInfo]:
    hosts: dict[str, HostInfo] = {n: HostInfo(n) for n in run.info.get("hosts", [])}
    for case in run.cases.values():
        props = case.properties
        if "host" not in props:
            continue
        info = hosts.setdefault(props["host"], HostInfo(props["host"]))
        info.kind, info.cpu = props.get("kind", info.kind), props.get("cpu", info.cpu)
        _add_unique(info.apis, props.get("api"))
        _add_unique(info.l0, props.get("l0"))
        _add_unique(info.l1_kernels, props.get("l1_kernel"))
        _add_unique(info.l2_kernels, props.get("l2_kernel"))
        info.counts[case.outcome] += 1
    apis = ("nested-hv", "nested-papr")
    for info in hosts.values():
        info.apis.sort(key=lambda a: (apis.index(a) if a in apis else len(apis), a))
    return list(hosts.values())


def _rows(entries: list[Entry]) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    for entry in entries:
        module = entry.case.classname.rpartition(".")[2]
        function = entry.case.name.partition("[")[0]
        row = rows.setdefault((module, function), Row(module, function))
        row.cells.setdefault(entry.case.suite, Cell([])).entries.append(entry)
    modules = sorted({r.module for r in rows.values()})
    return sorted(rows.values(), key=lambda r: modules.index(r.module))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("powernest.reporting", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)


def latest_run(reports: Path) -> Path:
    """The run `reports/latest` points at."""
    link = reports / "latest"
    if not (link / journal.JOURNAL).exists():
        raise FileNotFoundError(f"{reports}: no latest run (no {link / journal.JOURNAL}); "
                                "run the suites first or name a run with --run")
    return link.resolve()


def build(reports: Path, run_dir: Path | None = None, last: int = 20) -> Path:
    """Write `reports/index.html` for `run_dir` (default: the latest run) and its history.

    Returns the page's path.
    """
    reports = reports.resolve()
    run_dir = (run_dir or latest_run(reports)).resolve()
    path = run_dir / journal.JOURNAL
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results journal")
    run = journal.read(path)
    record = history.summary(run, run_dir)
    history.write(reports, record)
    records = history.read(reports)
    position = next(i for i, r in enumerate(records) if r.get("run_id") == record["run_id"])
    previous = set(records[position - 1].get("failing", [])) if position else None
    shown = records[max(0, position + 1 - last):position + 1]

    flakes = history.flaky(record, records[:position])

    consoles = sorted((run_dir / "consoles").glob("*.log"))
    entries = [_entry(c, i, run_dir, reports, consoles) for i, c in enumerate(run.cases.values())]
    for entry in entries:
        entry.flaky = flakes.get(entry.case.name, [])
    failures: dict[tuple[str, str], Failure] = {}
    for entry in sorted((e for e in entries if e.outcome in FAILING),
                        key=lambda e: (_rank(e.outcome), e.case.suite, e.case.name)):
        entry.new = previous is not None and entry.case.name not in previous and not entry.flaky
        group = failures.setdefault((entry.outcome, entry.message),
                                    Failure(entry.outcome, entry.message, []))
        group.entries.append(entry)
        entry.anchor = group.anchor
    deviations: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.outcome == "xfailed" and entry.deviation:
            deviations.setdefault(entry.deviation, []).append(entry)

    columns = _columns(run)
    page = _environment().get_template("dashboard.html.j2").render(
        run=run, record=record, counts=record["counts"], total=len(run.cases),
        duration=format_duration(record["duration"]), hosts=_hosts(run),
        columns=columns, column_hosts=list(Counter(c.host for c in columns).items()),
        starts={c.suite for c, before in zip(columns[1:], columns, strict=False)
                if c.host != before.host},
        rows=_rows(entries), failures=list(failures.values()),
        deviations=deviations, hcall=hcalls.section(entries, run_dir, reports),
        spec=coverage.coverage(run), campaigns=hcalls.campaign_crashes(reports),
        profile=profile.profile(run),
        flaky=[e for e in entries if e.flaky],
        trend=history.trend(shown, record["run_id"]), runs=len(shown),
        run_href=quote(os.path.relpath(run_dir, reports)),
        generated=history.iso(datetime.now().astimezone()))
    out = reports / INDEX
    tmp = reports / f".{INDEX}.{os.getpid()}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
