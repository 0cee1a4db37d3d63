"""The shards of one run joined into one run directory.

Labs outgrow one controller: CI jobs each drive some hosts of one inventory
(`--shard K/N`, or `--hosts`), under a run id they share, each into a reports
directory of its own.  `merge` takes one run from each shard directory (the
given run id, else the newest there) and writes `OUT/<run-id>/` as if one
controller had driven every host: the journals' events joined in time order
(`results.jsonl`), the files their cases attach (hard-linked, else copied)
and a `junit.xml` built from the joined journal, so the dashboard and
`powernest report rebuild` read it like any run.

A case is its test id (classname and name; the name holds the host).  Seen in
two shards with one outcome it is kept once.  Seen with two outcomes, the
shards overlapped or are not of one run: the case becomes an error whose
message names each outcome and where it came from (property `outcomes`),
with every shard's details and logs.  Runs started with `--shard K/N` say
so, and a shard of the N that none of the runs is counts as missing.
"""

from __future__ import annotations

import contextlib
import filecmp
import heapq
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from textwrap import indent
from typing import Any

from powernest import shard as sharding
from powernest.errors import PowernestError
from powernest.inventory import InventoryError
from powernest.reporting import journal, junit
from powernest.reporting.journal import JOURNAL, Case, Run

JUNIT = "junit.xml"
OUTCOMES = "outcomes"   # the property a case with two outcomes gets
_NOT_RUNS = ("latest", "history")


class MergeError(PowernestError):
    """A shard directory without the run asked for, or an output that is no merge."""


def _run_event(path: Path) -> dict[str, Any]:
    """A journal's `run` event (its first line), {} if it has none."""
    first = next(journal.events(path), {})
    return first if first.get("event") == "run" else {}


def _when(text: object) -> float | None:
    """The timestamp of an ISO 8601 time; one without an offset is local time."""
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def runs_in(reports: Path) -> list[Path]:
    """The run directories of a reports directory: not `latest`, not merges."""
    return sorted(d for d in reports.iterdir()
                  if d.name not in _NOT_RUNS and not d.is_symlink()
                  and (d / JOURNAL).is_file() and "merged_from" not in _run_event(d / JOURNAL))


def pick(path: Path, run_id: str = "") -> Path:
    """The run a shard directory holds for the merge.

    `path` itself when it is a run directory, else its run `run_id`, else its
    newest run (latest start, then latest journal write).
    """
    if (path / JOURNAL).is_file():
        return path
    runs = runs_in(path) if path.is_dir() else []
    if run_id:
        if not (path / run_id / JOURNAL).is_file():
            known = ", ".join(r.name for r in runs) or "none"
            raise MergeError(f"{path}: no run {run_id} (runs there: {known})")
        return path / run_id
    if not runs:
        raise MergeError(f"{path}: no run directory (no */{JOURNAL})")
    return max(runs, key=lambda r: (_when(_run_event(r / JOURNAL).get("started")) or 0.0,
                                    (r / JOURNAL).stat().st_mtime))


@dataclass
class Shard:
    """One shard's run: its directory, its journal folded, and where its files went."""

    run_dir: Path
    run: Run
    label: str
    renamed: dict[str, str] = field(default_factory=dict)   # path in its run -> in the merge

    def rebased(self, value: str) -> str:
        return self.renamed.get(value, value)

    def key(self, nodeid: str) -> tuple[str, str]:
        case = self.run.cases[nodeid]
        return case.classname, case.name


@dataclass
class Conflict:
    """A case seen with two outcomes: each shard's outcome and run directory."""

    name: str
    seen: list[tuple[str, Path]]

    @property
    def said(self) -> str:
        return ", ".join(f"{outcome} in {run_dir}" for outcome, run_dir in self.seen)


@dataclass
class _Plan:
    """What the merge keeps of one case: whose events, and the end of a conflict."""

    owner: int
    nodeid: str
    end: dict[str, Any] | None = None   # set for a conflict: the end event that replaces theirs
    ends_left: int = 0


@dataclass
class Merged:
    """The merged run and what the merge found on the way."""

    run_dir: Path
    run: Run
    shards: list[Shard]
    conflicts: list[Conflict]
    repeated: list[str]   # cases in several shards with one outcome, kept once
    missing: list[str]    # shards `K/N` the runs name (`--shard`) that none of them is
    warnings: list[str]


def _link_files(shard: Shard, dst: Path, warnings: list[str]) -> None:
    """Link (or copy) a shard's files into the merge; a name taken by another
    shard's different file goes under the shard's label, `shard.renamed` says so."""
    for file in sorted(shard.run_dir.rglob("*")):
        rel = file.relative_to(shard.run_dir).as_posix()
        if not file.is_file() or rel in (JOURNAL, JUNIT):
            continue
        target = dst / rel
        if target.exists():
            if filecmp.cmp(file, target, shallow=False):
                continue
            shard.renamed[rel] = f"{shard.label}/{rel}"
            target = dst / shard.renamed[rel]
            warnings.append(f"{shard.run_dir}: {rel} differs from another shard's: "
                            f"kept as {shard.renamed[rel]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, target)
        except OSError:
            shutil.copy2(file, target)


def _conflict_end(seen: list[tuple[Shard, Case]], conflict: Conflict) -> dict[str, Any]:
    """The end event of a case with two outcomes: an error naming them, all details kept."""
    owner, first = seen[0]
    details = "\n".join(f"{shard.run_dir}: {case.outcome}"
                        + (f": {case.message}" if case.message else "") + "\n"
                        + indent(case.details, "    ") for shard, case in seen)
    return {"event": "end", "nodeid": first.nodeid, "outcome": "error",
            "duration": max(case.duration for _, case in seen),
            "message": f"two outcomes in the shards of one run: {conflict.said}",
            "details": details,
            "properties": {**{k: owner.rebased(v) for k, v in first.properties.items()},
                           OUTCOMES: conflict.said},
            "attachments": list(dict.fromkeys(shard.rebased(a) for shard, case in seen
                                              for a in case.attachments))}


def _plan(shards: list[Shard]) -> tuple[dict[tuple[str, str], _Plan], list[Conflict], list[str]]:
    """Which shard's events each case keeps; the cases seen twice, with two outcomes or one."""
    seen: dict[tuple[str, str], list[tuple[int, Case]]] = {}
    for i, shard in enumerate(shards):
        for case in shard.run.cases.values():
            seen.setdefault((case.classname, case.name), []).append((i, case))
    plans, conflicts, repeated = {}, [], []
    for key, copies in seen.items():
        owner, first = copies[0]
        plan = plans[key] = _Plan(owner, first.nodeid)
        if len(copies) == 1:
            continue
        if len({case.outcome for _, case in copies}) == 1:
            repeated.append(first.name)
            continue
        conflict = Conflict(first.name, [(c.outcome, shards[i].run_dir) for i, c in copies])
        conflicts.append(conflict)
        plan.end = _conflict_end([(shards[i], c) for i, c in copies], conflict)
        plan.ends_left = sum(c.outcome != "interrupted" for _, c in copies)
    return plans, conflicts, repeated


def _timed(index: int, shard: Shard) -> Iterator[tuple[float, int, dict[str, Any]]]:
    """A shard's case events with the time to merge them by (an event without one
    takes its predecessor's)."""
    last = float("-inf")
    for ev in journal.events(shard.run_dir / JOURNAL):
        last = _when(ev.get("time")) or last
        if ev.get("event") != "run":
            yield last, index, ev


def _rebase(ev: dict[str, Any], shard: Shard) -> dict[str, Any]:
    """An event with the shard's paths as they are in the merge."""
    if not shard.renamed:
        return ev
    ev = dict(ev)
    if "path" in ev:
        ev["path"] = shard.rebased(ev["path"])
    if "attachments" in ev:
        ev["attachments"] = [shard.rebased(a) for a in ev["attachments"]]
    if "properties" in ev:
        ev["properties"] = {k: shard.rebased(v) for k, v in ev["properties"].items()}
    return ev


def _case_events(shards: list[Shard],
                 plans: dict[tuple[str, str], _Plan]) -> Iterator[dict[str, Any]]:
    """The kept case events of every shard, in time order."""
    streams = [_timed(i, s) for i, s in enumerate(shards)]
    for _, index, ev in heapq.merge(*streams, key=lambda t: t[0]):
        shard = shards[index]
        if ev.get("event") not in journal.CASE_EVENTS:   # a `guest` figure
            yield _rebase(ev, shard)
            continue
        plan = plans[shard.key(ev.get("nodeid", ""))]
        if plan.end is None:
            if index == plan.owner:
                yield _rebase(ev, shard)
            continue
        kind = ev.get("event")
        if kind == "start" and index != plan.owner:
            continue
        if kind == "end":
            plan.ends_left -= 1
            if plan.ends_left:
                continue
            ev = {**ev, **plan.end}
        yield {**_rebase(ev, shard), "nodeid": plan.nodeid}


def _missing(shards: list[Shard]) -> list[str]:
    """The shards K/N of the runs' `--shard` (their `run` event's `shard`) not among them."""
    seen: set[tuple[int, int]] = set()
    for part in shards:
        with contextlib.suppress(InventoryError):
            if spec := sharding.parse(str(part.run.info.get("shard") or "")):
                seen.add(spec)
    totals = sorted({n for _, n in seen})
    return [f"{k}/{n}" for n in totals for k in range(1, n + 1) if (k, n) not in seen]


def _run_info(shards: list[Shard], run_id: str) -> dict[str, Any]:
    """The merged `run` event: the first shard's, with every shard's hosts and controller,
    the earliest start, and where it was merged from."""
    infos = [s.run.info for s in shards]
    starts = [i["started"] for i in infos if _when(i.get("started")) is not None]
    info = {**infos[0], "event": "run", "run_id": run_id,
            "hosts": list(dict.fromkeys(h for i in infos for h in i.get("hosts", []))),
            "controller": ",".join(dict.fromkeys(i.get("controller", "") for i in infos)),
            "merged_from": [str(s.run_dir) for s in shards]}
    info.pop("shard", None)
    if starts:
        info["started"] = min(starts, key=lambda t: _when(t) or 0.0)
    return info


def _merged_id(shards: list[Shard]) -> str:
    """The shards' run id when they share one, else `merged-<the newest one's>`."""
    ids = list(dict.fromkeys(s.run.run_id or s.run_dir.name for s in shards))
    if len(ids) == 1:
        return ids[0]
    newest = max(shards, key=lambda s: _when(s.run.started) or 0.0)
    return f"merged-{newest.run.run_id or newest.run_dir.name}"


def _point_latest(reports: Path, run_dir: Path) -> None:
    tmp = reports / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, reports / "latest")


def merge(run_dirs: Sequence[Path], out: Path, run_id: str = "", *,
          base: Path | None = None, strict: bool = False) -> Merged:
    """Join the runs `run_dirs` into `out/<run-id>/` (see the module docstring); point
    `out/latest` at it.  `run_id` names it (default: the runs' shared id).

    Its junit.xml is written as a run's (`junit.write`): attachments relative
    to `base`, `strict` for junit-10.xsd.  A previous merge of that name is
    replaced; a run of its own is not.
    """
    shards = [Shard(d, journal.read(d / JOURNAL), f"shard-{i}")
              for i, d in enumerate(run_dirs, start=1)]
    if not shards:
        raise MergeError("no run to merge")
    run_id = run_id or _merged_id(shards)
    target = out / run_id
    if target.resolve() in {d.resolve() for d in run_dirs}:
        raise MergeError(f"{target}: the merge would overwrite a shard it reads")
    if (target / JOURNAL).is_file() and "merged_from" not in _run_event(target / JOURNAL):
        raise MergeError(f"{target}: a run of its own, not a merge: give another output")
    tmp = out / f".{run_id}.merging-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    warnings: list[str] = []
    try:
        for shard in shards:
            _link_files(shard, tmp, warnings)
        plans, conflicts, repeated = _plan(shards)
        events = [_run_info(shards, run_id), *_case_events(shards, plans)]
        path = tmp / JOURNAL
        path.write_text("".join(json.dumps(ev, sort_keys=True) + "\n" for ev in events),
                        encoding="utf-8")
        last = max((s.run_dir / JOURNAL).stat().st_mtime for s in shards)
        os.utime(path, (last, last))   # the run ended when its last shard did
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        run = journal.read(target / JOURNAL)
        junit.write(run, target / JUNIT, hostname=run.info["controller"], base=base,
                    strict=strict)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _point_latest(out, target)
    return Merged(target, run, shards, conflicts, repeated, _missing(shards), warnings)
