"""One JUnit file from the junit.xml of several shards or controllers.

Suites stay apart per host and API; suites of the same name from different
files become one.  A case identical to one already kept (same name,
classname, outcome and message) is dropped, any other case is kept.  The
result keeps the design of `junit.py`: suite properties are those all its
cases share, the rest move into each case's `[[PROPERTY|k=v]]` lines, and
`[[ATTACHMENT|path]]` lines are rewritten relative to the merged file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Attr, JUnitXml, JUnitXmlError, SystemOut, TestCase, TestSuite
from lxml import etree

from powernest.reporting import junit

JUNIT = "junit.xml"
_PROPERTY, _ATTACHMENT = "[[PROPERTY|", "[[ATTACHMENT|"


class RunSuite(TestSuite):
    """A <testsuite> with the `id` (run id) attribute junit.py writes."""

    id = Attr()


class Report(JUnitXml):
    """A <testsuites> file whose suites are `RunSuite`s."""

    testsuite = RunSuite


def find(paths: Iterable[Path]) -> list[Path]:
    """The junit.xml files given, or found as DIR/junit.xml and DIR/*/junit.xml.

    A file reached twice counts once, under its real directory rather than
    through a link such as `reports/latest`.
    """
    found: dict[Path, Path] = {}
    for path in paths:
        runs = sorted(path.glob(f"*/{JUNIT}"), key=lambda f: (f.parent.is_symlink(), f))
        candidates = [path / JUNIT, *runs] if path.is_dir() else [path]
        for file in candidates:
            if file.is_file():
                found.setdefault(file.resolve(), file)
    return list(found.values())


@dataclass
class _Case:
    case: TestCase
    properties: dict[str, str]
    attachments: list[str]
    other: list[str]


@dataclass
class _Suite:
    name: str
    timestamps: list[str] = field(default_factory=list)
    hostnames: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    cases: list[_Case] = field(default_factory=list)
    seen: set[tuple[str, ...]] = field(default_factory=set)


def _key(case: TestCase) -> tuple[str, ...]:
    """Name, classname, outcome (tag and type) and message: what makes two cases the same."""
    results = case.result
    if not results:
        return case.name or "", case.classname or "", "passed", "", ""
    first = results[0]
    return (case.name or "", case.classname or "", type(first).__name__.lower(),
            first.type or "", first.message or "")


def _split_out(text: str | None) -> tuple[dict[str, str], list[str], list[str]]:
    """A case's system-out as (properties, attachments, other lines)."""
    props: dict[str, str] = {}
    attachments: list[str] = []
    other: list[str] = []
    for line in (text or "").splitlines():
        if line.startswith(_PROPERTY) and line.endswith("]]") and "=" in line:
            name, _, value = line[len(_PROPERTY):-2].partition("=")
            props[name] = value
        elif line.startswith(_ATTACHMENT) and line.endswith("]]"):
            attachments.append(line[len(_ATTACHMENT):-2])
        else:
            other.append(line)
    return props, attachments, other


def _add(suites: dict[str, _Suite], file: Path, out_dir: Path) -> None:
    for suite in Report.fromfile(str(file)):
        merged = suites.setdefault(suite.name, _Suite(suite.name))
        for attr, values in (("timestamp", merged.timestamps), ("hostname", merged.hostnames),
                             ("id", merged.ids)):
            value = getattr(suite, attr)
            if value and value not in values:
                values.append(value)
        shared = {p.name: p.value for p in suite.properties()}
        for case in suite:
            key = _key(case)
            if key in merged.seen:
                continue
            merged.seen.add(key)
            props, attachments, other = _split_out(case.system_out)
            rebased = [os.path.relpath(file.parent / a, out_dir) for a in attachments]
            merged.cases.append(_Case(case, {**shared, **props}, rebased, other))


def _testsuite(merged: _Suite) -> RunSuite:
    suite = RunSuite(merged.name)
    if merged.timestamps:
        suite.timestamp = min(merged.timestamps)
    if merged.hostnames:
        suite.hostname = ",".join(merged.hostnames)
    if merged.ids:
        suite.id = ",".join(merged.ids)
    shared = junit.shared_properties([c.properties for c in merged.cases])
    for name, value in sorted(shared.items()):
        suite.add_property(name, value)
    for entry in merged.cases:
        case = entry.case
        lines = [f"{_PROPERTY}{k}={v}]]" for k, v in sorted(entry.properties.items())
                 if shared.get(k) != v]
        lines += [f"{_ATTACHMENT}{a}]]" for a in entry.attachments]
        lines += [line for line in entry.other if line.strip()]
        out = case.child(SystemOut)
        if out is not None:
            case.remove(out)
        if lines:
            case.system_out = "\n".join(lines) + "\n"
        suite.append(case)
    suite.update_statistics()
    return suite


def merge(files: Iterable[Path], out: Path,
          warn: Callable[[str], None] | None = None) -> Report:
    """Merge `files` into one report written to `out`; return it.

    A file that is not JUnit XML is left out, and `warn` told why.
    """
    suites: dict[str, _Suite] = {}
    out_dir = out.resolve().parent
    read = 0
    for file in files:
        try:
            _add(suites, file, out_dir)
        except (etree.XMLSyntaxError, JUnitXmlError) as exc:
            if warn:
                warn(f"{file}: left out, not a readable JUnit file ({exc})")
            continue
        read += 1
    xml = Report(f"powernest merged from {read} reports")
    merged = [_testsuite(s) for s in suites.values()]
    for suite in merged:
        xml.add_testsuite(suite)
    # The schema allows no `skipped` on <testsuites>: set the totals it does allow.
    xml.tests = sum(s.tests for s in merged)
    xml.failures = sum(s.failures for s in merged)
    xml.errors = sum(s.errors for s in merged)
    xml.time = round(sum(s.time for s in merged), 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Re-indent: the cases keep the whitespace of the files they came from.
    root = etree.fromstring(xml.tostring(), etree.XMLParser(remove_blank_text=True))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    etree.ElementTree(root).write(str(tmp), encoding="utf-8", xml_declaration=True,
                                  pretty_print=True)
    os.replace(tmp, out)
    return xml
