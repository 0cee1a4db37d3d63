"""The run history behind the dashboard's trend: `reports/history/<run-id>.json`.

One small record per run (counts, failing cases, start and duration), written
when the dashboard is built for that run, and the geometry of the trend chart
drawn from the last records.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from powernest.reporting import journal
from powernest.reporting.journal import Run

HISTORY = "history"
# Worst first: a dashboard cell of several cases takes the colour of its worst.
OUTCOMES = ("interrupted", "error", "failed", "xpassed", "xfailed", "passed", "skipped")
FAILING = ("interrupted", "error", "failed")


def _started(run: Run) -> float | None:
    try:
        return datetime.strptime(run.started, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


def _duration(run: Run, journal_path: Path) -> float | None:
    """Start to the journal's last write (the last case to end)."""
    start = _started(run)
    return max(0.0, journal_path.stat().st_mtime - start) if start is not None else None


def counts(run: Run) -> dict[str, int]:
    found = Counter(c.outcome for c in run.cases.values())
    return {o: found.get(o, 0) for o in OUTCOMES}


def summary(run: Run, run_dir: Path) -> dict[str, Any]:
    """The run's history record: small, enough for the trend and for "new" failures."""
    return {"run_id": run.run_id or run_dir.name, "started": run.started,
            "duration": _duration(run, run_dir / journal.JOURNAL),
            "hosts": run.info.get("hosts", []), "counts": counts(run),
            "failing": sorted(c.name for c in run.cases.values() if c.outcome in FAILING)}


def write(reports: Path, record: dict[str, Any]) -> None:
    folder = reports / HISTORY
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record['run_id']}.json"
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read(reports: Path) -> list[dict[str, Any]]:
    """Every run's record, oldest first; unreadable files are left out."""
    records = []
    for path in (reports / HISTORY).glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(records, key=lambda r: (r.get("started", ""), r.get("run_id", "")))


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
    labels: list[tuple[float, str, bool, str]]
    series: list[dict[str, Any]]
    now: float | None


TREND_SERIES = (("passed", "passed", ("passed", "xpassed")),
                ("failed", "failed + errors", ("failed", "error", "interrupted")),
                ("xfailed", "known deviations", ("xfailed",)),
                ("skipped", "skipped", ("skipped",)))


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

    every = max(1, -(-len(records) // 6))
    shown = [i for i in range(len(records)) if i % every == 0 or i == len(records) - 1]
    if len(shown) > 1 and shown[-1] - shown[-2] < every:
        del shown[-2]   # keep the newest run's label clear of its neighbour
    labels = [(x(i), _label(records[i], records[shown[k - 1]] if k else None),
               records[i].get("run_id") == current, _anchor(i, len(records)))
              for k, i in enumerate(shown)]
    now = next((x(i) for i, r in enumerate(records) if r.get("run_id") == current), None)
    series = []
    for (cls, name, _), vals in zip(TREND_SERIES, values, strict=True):
        points = [(round(x(i), 1), round(y(v), 1), f"{r.get('run_id')}: {v} {name}")
                  for i, (r, v) in enumerate(zip(records, vals, strict=True))]
        series.append({"cls": cls, "name": name, "points": points,
                       "polyline": " ".join(f"{px},{py}" for px, py, _ in points)})
    return Trend(width, height, left, top, plot_w, plot_h,
                 [(round(y(step * k), 1), step * k) for k in range(5)], labels, series,
                 round(now, 1) if now is not None else None)


def _anchor(i: int, n: int) -> str:
    """Text anchor of an x label: the first and last stay inside the chart."""
    if n == 1 or 0 < i < n - 1:
        return "middle"
    return "start" if i == 0 else "end"


def _label(record: dict[str, Any], before: dict[str, Any] | None) -> str:
    """`11-25 01:27` for a run, just `01:27` when the label before it is of the same day."""
    started = record.get("started", "")
    if len(started) < 16:
        return str(record.get("run_id", ""))
    same_day = before is not None and before.get("started", "")[:10] == started[:10]
    return started[11:16] if same_day else started[5:16].replace("T", " ")
