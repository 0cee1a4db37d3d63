"""JUnit XML from a results journal, valid against the Jenkins xUnit schema.

One `<testsuite>` per host and API (GitLab and Jenkins keep them apart), with
the properties all its cases share; properties that differ between cases and
the console logs go into each case's short `system-out` as
`[[PROPERTY|name=value]]` and `[[ATTACHMENT|path]]` lines (the schema allows
no properties on a testcase).  Logs stay files; only their paths are written.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from powernest.reporting.journal import Case, Run

INTERRUPTED = "run interrupted"
_MAX_DETAILS = 20000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """Console text made fit for XML 1.0: terminal escapes and control characters go."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


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


def _testcase(case: Case, shared: dict[str, str]) -> ET.Element:
    el = ET.Element("testcase", name=case.name, classname=case.classname,
                    time=f"{case.duration:.3f}")
    details = clean(case.details[-_MAX_DETAILS:])
    message = clean(case.message)
    if case.outcome == "failed":
        kind = "l0-died" if "l0_died" in case.properties else "failure"
        ET.SubElement(el, "failure", message=message, type=kind).text = details
    elif case.outcome == "error":
        ET.SubElement(el, "error", message=message, type="error").text = details
    elif case.outcome == "interrupted":
        ET.SubElement(el, "error", message=INTERRUPTED, type="interrupted").text = (
            "The run ended while this case was running (controller killed or lost); "
            "its console logs are attached.")
    elif case.outcome == "skipped":
        ET.SubElement(el, "skipped", message=message, type="skipped")
    elif case.outcome == "xfailed":
        ET.SubElement(el, "skipped", message=message, type="known-deviation").text = details
    lines = [f"[[PROPERTY|{k}={clean(v)}]]" for k, v in sorted(case.properties.items())
             if shared.get(k) != v]
    lines += [f"[[ATTACHMENT|{p}]]" for p in case.attachments]
    if lines:
        ET.SubElement(el, "system-out").text = "\n".join(lines) + "\n"
    return el


def build(run: Run, hostname: str = "") -> ET.ElementTree:
    """The JUnit tree of a run: a suite per `case.suite`, in first-seen order."""
    suites: dict[str, list[Case]] = defaultdict(list)
    for case in run.cases.values():
        suites[case.suite or "powernest"].append(case)
    root = ET.Element("testsuites", name=f"powernest {run.run_id}".strip())
    every = [c for cases in suites.values() for c in cases]
    counts = _counts(every)
    for key in ("tests", "failures", "errors", "time"):
        root.set(key, counts[key])
    for name, cases in suites.items():
        attrs = {"name": name, "timestamp": run.started, "hostname": hostname,
                 "id": run.run_id, **_counts(cases)}
        suite = ET.SubElement(root, "testsuite", attrs)
        shared = shared_properties([c.properties for c in cases])
        if shared:
            props = ET.SubElement(suite, "properties")
            for k, v in sorted(shared.items()):
                ET.SubElement(props, "property", name=k, value=clean(v))
        for case in cases:
            suite.append(_testcase(case, shared))
    ET.indent(root)
    return ET.ElementTree(root)


def write(run: Run, path: Path, hostname: str = "") -> Path:
    """Write junit.xml atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".xml.tmp")
    build(run, hostname).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path
