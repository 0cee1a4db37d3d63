"""The results journal: one JSON line per event, appended and flushed as it happens.

Events: `run` (once, at start: run id, hosts), `start` (a case began),
`attach` (a console log now belongs to a case), `end` (a case finished, with
its outcome), `guest` (an L1 or L2 is up: how long it took, booted or
restored); each has its `time`, ISO 8601 with the UTC offset (older journals
have none).  A case with a `start` and no `end` was interrupted.
The journal is the source of truth for junit.xml, so a run killed mid-case
still yields a complete report (`powernest report rebuild`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

JOURNAL = "results.jsonl"
CASE_EVENTS = ("start", "attach", "end")   # the others: `run`, and `guest` (a guest up)


def now() -> str:
    """This moment, ISO 8601 in local time with the UTC offset: every event's `time`,
    the `run` event's `started`."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def append(journal: Path, event: str, **data: Any) -> None:
    """Append one event, with its `time` (`now()`) unless `data` has one, as a single
    write, flushed and synced to disk."""
    line = json.dumps({"event": event, "time": now(), **data}, sort_keys=True) + "\n"
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a journal; a torn last line (a crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


@dataclass
class Case:
    """One test case as the journal tells it."""

    nodeid: str
    name: str
    classname: str
    suite: str
    outcome: str = "interrupted"
    duration: float = 0.0
    message: str = ""
    details: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    attachments: list[str] = field(default_factory=list)


@dataclass
class Run:
    """A run read back from its journal."""

    run_id: str = ""
    started: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)


def read(path: Path) -> Run:
    """Fold a journal into cases; cases that never ended stay `interrupted`."""
    run = Run()
    for ev in events(path):
        kind = ev.get("event")
        if kind == "run":
            run.run_id, run.started = ev.get("run_id", ""), ev.get("started", "")
            run.info = ev
            continue
        if kind not in CASE_EVENTS:
            continue
        nodeid = ev.get("nodeid", "")
        case = run.cases.get(nodeid)
        if case is None:
            case = run.cases[nodeid] = Case(nodeid, ev.get("name", nodeid),
                                            ev.get("classname", ""), ev.get("suite", ""))
        if kind == "start":  # under pytest-xdist an attach event may come first
            case.name, case.classname, case.suite = ev["name"], ev["classname"], ev["suite"]
            case.properties.update(ev.get("properties", {}))
        elif kind == "attach":
            if ev["path"] not in case.attachments:
                case.attachments.append(ev["path"])
        elif kind == "end":
            case.outcome = ev["outcome"]
            case.duration = ev.get("duration", 0.0)
            case.message = ev.get("message", "")
            case.details = ev.get("details", "")
            case.properties.update(ev.get("properties", {}))
            for p in ev.get("attachments", []):
                if p not in case.attachments:
                    case.attachments.append(p)
    return run
