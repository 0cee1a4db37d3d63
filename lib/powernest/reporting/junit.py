"""JUnit XML from a results journal, for Jenkins and GitLab.

One `<testsuite>` per host and API (GitLab and Jenkins keep them apart), with
the properties all its cases share and a `timestamp` in UTC with its offset.
Each case carries its own properties in `<testcase><properties>`, as pytest
writes them and Jenkins' `keepProperties` reads them; with `strict`, the
output stays valid against Jenkins' junit-10.xsd, which has no properties on a
testcase: those differing from the suite's become `[[PROPERTY|name=value]]`
lines in the case's `system-out`.

Console logs stay files: `[[ATTACHMENT|path]]` lines in `system-out` name
them, relative to `base` (the CI workspace, where Jenkins' attachments plugin
and GitLab's artifact links resolve them), the log of the guest whose error
failed the case first (GitLab shows only the first).  A `<failure>`,
`<error>` or `<skipped>` text starts with its message (GitLab shows only the
text, Jenkins the message apart), then the details.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from powernest.reporting.journal import Case, Run

INTERRUPTED = "run interrupted"
FAILED_LOG = "failed_log"   # the case property naming the log of the guest that failed it
L0_STARVED = "l0_starved"   # the case property: its L0 was starved (powernest.schedstat)
PHASES = "phases"   # the case property: its seconds in each phase (powernest.timing), JSON
_MAX_DETAILS = 20000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|(.+?)\]\]")
_NO_MESSAGE = {"skipped": "skipped", "xfailed": "expected failure"}


def clean(text: str) -> str:
    """Console text made fit for XML 1.0: terminal escapes and control characters go."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


def utc(stamp: str) -> str:
    """An ISO 8601 time in UTC with its offset: `2026-11-30T00:45:24+00:00`.

    A time without an offset (journals before run.py recorded one) is the
    controller's local time, read in this machine's time zone; text that is no
    time is returned as it is.
    """
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return when.astimezone(UTC).isoformat(timespec="seconds")


def attachment_path(path: Path, base: Path) -> str:
    """How a junit.xml names the file `path` for a CI whose workspace is `base`.

    Relative to `base` when the file is under it (links such as
    `reports/latest` resolved, else as named); otherwise absolute: Jenkins'
    attachments plugin resolves `workspace.child(path)`, which takes an
    absolute path as it is, while GitLab's artifact links only reach files
    under the project directory, so only the first form opens in both.
    """
    for file, root in ((path.resolve(), base.resolve()),
                       (Path(os.path.abspath(path)), Path(os.path.abspath(base)))):
        if file.is_relative_to(root):
            return file.relative_to(root).as_posix()
    return str(path.resolve())


def _counts(cases: list[Case]) -> dict[str, str]:
    failures = sum(c.outcome == "failed" for c in cases)
    errors = sum(c.outcome in ("error", "interrupted") for c in cases)
    skipped = sum(c.outcome in ("skipped", "xfailed") for c in cases)
    return {"tests": str(len(cases)), "failures": str(failures), "errors": str(errors),
            "skipped": str(skipped), "time": f"{sum(c.duration for c in cases):.3f}"}


def shared_properties(cases: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The properties every case of a suite has with the same value."""
    common = dict(cases[0]) if cases else {}
    for case in cases[1:]:
        common = {k: v for k, v in common.items() if case.get(k) == v}
    return common


def _body(message: str, details: str) -> str:
    """A result's text: the message, then the details (unless they are just that)."""
    details = clean(details[-_MAX_DETAILS:]).strip("\n")
    if not details or details == message:
        return message
    return f"{message}\n\n{details}" if message else details


def _result(case: Case) -> ET.Element | None:
    message = clean(case.message) or _NO_MESSAGE.get(case.outcome, "")
    if case.outcome == "failed":
        kind = "l0-died" if "l0_died" in case.properties else "failure"
        tag, details = "failure", case.details
    elif case.outcome == "error":
        kind = "infrastructure" if L0_STARVED in case.properties else "error"
        tag, details = "error", case.details
    elif case.outcome == "interrupted":
        tag, kind, message = "error", "interrupted", INTERRUPTED
        details = ("The run ended while this case was running (controller killed or lost); "
                   "its console logs are attached.")
    elif case.outcome == "skipped":
        tag, kind, details = "skipped", "skipped", ""
    elif case.outcome == "xfailed":
        tag, kind, details = "skipped", "known-deviation", case.details
    else:
        return None
    el = ET.Element(tag, message=message, type=kind)
    el.text = _body(message, details)
    return el


def _attachments(case: Case, run_dir: Path, base: Path) -> list[str]:
    """The case's files as the CI finds them, the log that failed it first."""
    first = case.properties.get(FAILED_LOG)
    ordered = sorted(case.attachments, key=lambda p: p != first)
    return [attachment_path(run_dir / p, base) for p in ordered]


def _testcase(case: Case, shared: dict[str, str], run_dir: Path, base: Path,
              strict: bool) -> ET.Element:
    el = ET.Element("testcase", name=case.name, classname=case.classname,
                    time=f"{case.duration:.3f}")
    if not strict and case.properties:
        _properties(el, case.properties)
    if (result := _result(case)) is not None:
        el.append(result)
    lines = [f"[[PROPERTY|{k}={clean(v)}]]" for k, v in sorted(case.properties.items())
             if strict and shared.get(k) != v]
    lines += [f"[[ATTACHMENT|{p}]]" for p in _attachments(case, run_dir, base)]
    if lines:
        ET.SubElement(el, "system-out").text = "\n".join(lines) + "\n"
    return el


def _properties(parent: ET.Element, properties: Mapping[str, str]) -> None:
    props = ET.SubElement(parent, "properties")
    for k, v in sorted(properties.items()):
        ET.SubElement(props, "property", name=k, value=clean(v))


def build(run: Run, hostname: str = "", *, run_dir: Path, base: Path | None = None,
          strict: bool = False) -> ET.ElementTree:
    """The JUnit tree of a run: a suite per `case.suite`, in first-seen order.

    The journal's attachments are relative to `run_dir`; they are written
    relative to `base` (default: the current directory, as pytest's
    `--attachments-base`).  `strict`: valid against junit-10.xsd.
    """
    base = Path.cwd() if base is None else base
    suites: dict[str, list[Case]] = defaultdict(list)
    for case in run.cases.values():
        suites[case.suite or "powernest"].append(case)
    root = ET.Element("testsuites", name=f"powernest {run.run_id}".strip())
    every = [c for cases in suites.values() for c in cases]
    counts = _counts(every)
    for key in ("tests", "failures", "errors", "time"):
        root.set(key, counts[key])
    for name, cases in suites.items():
        stamp = {"timestamp": utc(run.started)} if run.started else {}
        attrs = {"name": name, **stamp, "hostname": hostname, "id": run.run_id,
                 **_counts(cases)}
        suite = ET.SubElement(root, "testsuite", attrs)
        shared = shared_properties([c.properties for c in cases])
        if shared:
            _properties(suite, shared)
        for case in cases:
            suite.append(_testcase(case, shared, run_dir, base, strict))
    ET.indent(root)
    return ET.ElementTree(root)


def write(run: Run, path: Path, hostname: str = "", *, base: Path | None = None,
          strict: bool = False) -> Path:
    """Write junit.xml atomically (a reader never sees half a file).

    `path` is in the run directory, which the journal's attachments are relative to.
    """
    tmp = path.with_suffix(".xml.tmp")
    build(run, hostname, run_dir=path.parent, base=base, strict=strict).write(
        tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path


def check_ci(path: Path, workspace: Path) -> list[str]:
    """What Jenkins or GitLab would miss in the JUnit file `path` of a job in `workspace`.

    An attachment that is not a file at `workspace.child(path)` (Jenkins'
    rule), or one outside the workspace (GitLab cannot link it); a result
    without text, or whose text does not start with its message (GitLab shows
    only the text); a suite timestamp without a UTC offset.
    """
    problems = []
    for suite in ET.parse(path).getroot().iter("testsuite"):
        stamp = suite.get("timestamp")
        if stamp and not _has_offset(stamp):
            problems.append(f"{suite.get('name')}: timestamp {stamp} has no UTC offset")
        for case in suite.findall("testcase"):
            where = f"{suite.get('name')}: {case.get('name')}"
            for result in case:
                if result.tag not in ("failure", "error", "skipped"):
                    continue
                text, message = result.text or "", result.get("message") or ""
                if not text.strip():
                    problems.append(f"{where}: <{result.tag}> has no text")
                elif not text.startswith(message):
                    problems.append(f"{where}: <{result.tag}> text does not start with "
                                    f"its message {message[:80]!r}")
            for attachment in _ATTACHMENT.findall(case.findtext("system-out") or ""):
                name = attachment.partition("|")[0]
                if not (workspace / name).is_file():
                    problems.append(f"{where}: attachment {name} is no file in {workspace}")
                elif Path(name).is_absolute() or ".." in Path(name).parts:
                    problems.append(f"{where}: attachment {name} is outside the workspace")
    return problems


def _has_offset(stamp: str) -> bool:
    try:
        return datetime.fromisoformat(stamp).tzinfo is not None
    except ValueError:
        return False
