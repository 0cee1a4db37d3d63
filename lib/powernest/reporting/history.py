"""The run history behind the dashboard's trend: `reports/history/<run-id>.json`.

One small record per run (counts, failing cases, start, end and duration, the
code that ran and each case's outcome with its L0 and L1 kernel), written when
the dashboard is built for that run; the geometry of the trend chart drawn from
the last records; and the flaky cases: an outcome that changed between runs of
the same code on the same L0 and L1 kernel.  Times are ISO 8601 with their UTC
offset; a journal's times without one are the controller's local time.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from powernest.reporting import journal
from powernest.reporting.journal import Run

HISTORY = "history"
# Worst first: a dashboard cell of several cases takes the colour of its worst.
OUTCOMES = ("interrupted", "error", "failed", "xpassed", "xfailed", "passed", "skipped")
FAILING = ("interrupted", "error", "failed")
# What an outcome says of the product when the same case runs again (a skip or an
# interrupted run says nothing of it).
VERDICTS = {"passed": "passed", "failed": "failed", "error": "failed", "xfailed": "xfailed",
            "xpassed": "xpassed"}


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time, offset-aware; one without an offset is this machine's local time.

    The dashboard is built on the controller, whose local time a journal
    without offsets holds.
    """
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.astimezone()


def iso(when: datetime) -> str:
    """`2026-11-30T00:09:49+01:00`: ISO 8601 to the second, with the UTC offset."""
    return when.isoformat(timespec="seconds")


def _last_time(journal_path: Path) -> datetime | None:
    """The `time` of the journal's last event that has one (None: its events carry none)."""
    last = None
    for ev in journal.events(journal_path):
        last = parse_time(ev.get("time")) or last
    return last


def counts(run: Run) -> dict[str, int]:
    found = Counter(c.outcome for c in run.cases.values())
    return {o: found.get(o, 0) for o in OUTCOMES}


def summary(run: Run, run_dir: Path) -> dict[str, Any]:
    """The run's history record: small, enough for the trend and for "new" failures.

    Its duration is from the `run` event's start to the last event's time:
    unknown (None) when the events carry no time.
    """
    started = parse_time(run.started)
    ended = _last_time(run_dir / journal.JOURNAL)
    duration = max(0.0, (ended - started).total_seconds()) if started and ended else None
    return {"run_id": run.run_id or run_dir.name,
            "started": iso(started) if started else run.started,
            "ended": iso(ended) if ended else None, "duration": duration,
            "hosts": run.info.get("hosts", []), "counts": counts(run),
            "failing": sorted(c.name for c in run.cases.values() if c.outcome in FAILING),
            "code": run.info.get("code", ""),
            "cases": {c.name: [c.outcome, c.properties.get("l0", ""),
                               c.properties.get("l1_kernel", "")] for c in run.cases.values()}}


def flaky(record: dict[str, Any], earlier: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The cases of `record` that had another outcome in an `earlier` record of the same
    code, on the same L0 and L1 kernel: case name -> `<run id>: <outcome>` of each."""
    code = record.get("code")
    found: dict[str, list[str]] = {}
    if not code:
        return found
    for name, (outcome, *ran_on) in record.get("cases", {}).items():
        if outcome not in VERDICTS:
            continue
        for other in earlier:
            then = other.get("cases", {}).get(name) if other.get("code") == code else None
            if then and then[1:] == ran_on and VERDICTS.get(then[0], VERDICTS[outcome]) \
                    != VERDICTS[outcome]:
                found.setdefault(name, []).append(f"{other.get('run_id', '?')}: {then[0]}")
    return found


def write(reports: Path, record: dict[str, Any]) -> None:
    folder = reports / HISTORY
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['run_id']}.json"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _when(record: dict[str, Any]) -> float:
    started = parse_time(record.get("started"))
    return started.timestamp() if started else float("-inf")


def read(reports: Path) -> list[dict[str, Any]]:
    """Every run's record, oldest first; unreadable files are left out."""
    records = []
    for path in (reports / HISTORY).glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(records, key=lambda r: (_when(r), r.get("run_id", "")))


@dataclass
class Label:
    """An x-axis label of the trend: a run's start, `title` its full time and run id."""

    x: float
    text: str
    now: bool
    anchor: str
    title: str


@dataclass
class Trend:
    """The geometry of the trend chart (an SVG drawn by the template)."""

    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    ticks: list[tuple[float, int]]
    labels: list[Label]
    series: list[dict[str, Any]]
    now: float | None
    offset: str


TREND_SERIES = (("passed", "passed", ("passed", "xpassed")),
                ("failed", "failed + errors", ("failed", "error", "interrupted")),
                ("xfailed", "known deviations", ("xfailed",)),
                ("skipped", "skipped", ("skipped",)))
# The widest label, `11-30 00:09` in the chart's 11 px bold, and the room between two.
LABEL_W, LABEL_GAP = 11 * 7.7, 8.0


def trend(records: list[dict[str, Any]], current: str) -> Trend:
    """Lines of pass/fail/known-deviation/skip counts of `records`, `current` marked."""
    width, height, left, top, right, bottom = 480, 200, 34, 10, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [[sum(r.get("counts", {}).get(o, 0) for o in outs) for r in records]
              for _, _, outs in TREND_SERIES]
    peak = max([v for series in values for v in series] + [1])
    step = max(1, -(-peak // 4))
    ymax = step * 4

    def x(i: int) -> float:
        return left + (plot_w * i / (len(records) - 1) if len(records) > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / ymax

    now = next((i for i, r in enumerate(records) if r.get("run_id") == current), None)
    start = parse_time(records[now].get("started")) if now is not None else None
    zone = start.tzinfo if start else None   # labels in the current run's offset
    series = []
    for (cls, name, _), vals in zip(TREND_SERIES, values, strict=True):
        points = [(round(x(i), 1), round(y(v), 1), f"{r.get('run_id')}: {v} {name}")
                  for i, (r, v) in enumerate(zip(records, vals, strict=True))]
        series.append({"cls": cls, "name": name, "points": points,
                       "polyline": " ".join(f"{px},{py}" for px, py, _ in points)})
    return Trend(width, height, left, top, plot_w, plot_h,
                 [(round(y(step * k), 1), step * k) for k in range(5)],
                 _labels(records, [x(i) for i in range(len(records))], current, zone),
                 series, round(x(now), 1) if now is not None else None,
                 iso(start)[19:] if start else "")


def _anchor(i: int, n: int) -> str:
    """Text anchor of an x label: the first and last stay inside the chart."""
    if n == 1 or 0 < i < n - 1:
        return "middle"
    return "start" if i == 0 else "end"


def _extent(x: float, anchor: str) -> tuple[float, float]:
    """Where the widest label at `x` would reach, left and right."""
    shift = {"start": 0.0, "middle": LABEL_W / 2, "end": LABEL_W}[anchor]
    return x - shift, x - shift + LABEL_W


def _labels(records: list[dict[str, Any]], xs: list[float], current: str,
            zone: tzinfo | None) -> list[Label]:
    """The newest run's label, then each older one that fits clear of those kept.

    Times are in `zone`: `11-29 22:56` for a run, `22:56` when the label left
    of it is of the same day.
    """
    n = len(records)
    kept: list[tuple[int, float]] = []
    for i in reversed(range(n)):
        low, high = _extent(xs[i], _anchor(i, n))
        if not kept or high + LABEL_GAP <= kept[-1][1]:
            kept.append((i, low))
    labels: list[Label] = []
    day: date | None = None
    for i, _ in reversed(kept):
        run_id = str(records[i].get("run_id", ""))
        started = parse_time(records[i].get("started"))
        text, title = "?", f"{run_id}: started ?"
        if started is not None:
            local = started.astimezone(zone)
            text = local.strftime("%H:%M" if local.date() == day else "%m-%d %H:%M")
            day, title = local.date(), f"{run_id}: started {iso(started)}"
        labels.append(Label(xs[i], text, run_id == current, _anchor(i, n), title))
    return labels
