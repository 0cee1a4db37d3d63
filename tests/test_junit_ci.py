"""junit.xml as Jenkins and GitLab read it (issue 12).

A run directory nested in a CI workspace, its journal written as the plugin
writes it: attachments must resolve from the workspace (Jenkins:
`workspace.child(path)`; GitLab: a path in the project's artifacts), the log
of the guest that failed a case first (GitLab shows only the first), result
texts start with their reasons (GitLab shows only the text), per-case
properties in `<testcase><properties>` unless strict, timestamps with an offset.
"""

from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from junitparser import JUnitXml

from junit_xsd import validate
from powernest.cli import main
from powernest.console import ConsoleError
from powernest.plugin.cases import failed_log
from powernest.reporting import journal, junit
from test_reporting import ONE_HOST, child_pytest, suites_dir

RUN = "r1"
SUITE = "h1/nested-papr"
START = {"host": "h1", "kind": "tcg", "cpu": "power10", "api": "nested-papr", "run_id": RUN}
KERNELS = {"l0": "QEMU 10.0.2 (TCG)", "l1_kernel": "6.12.95", "l2_kernel": "6.1.140"}
DEVIATION = "known deviation qemu-v2-vpa-element: QEMU has no handler for the VPA element"
SKIP = "QEMU 7.2.22 has no cap-nested-papr (added in QEMU 9.0)"
GITLAB_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|(?P<path>.+?)\]\]")   # its junit.rb


def jenkins_child(workspace: Path, name: str) -> Path:
    """Jenkins' `FilePath.child`: an absolute path as it is, else under the workspace."""
    return Path(name) if os.path.isabs(name) else workspace / name


def _case(path: Path, name: str, outcome: str | None, message: str = "", details: str = "",
          attached: tuple[str, ...] = (), ended: tuple[str, ...] = (), **props: str) -> None:
    """A case's events as the plugin writes them: start, the logs its guests opened
    (`attach`), then its end (none: interrupted)."""
    nodeid = f"suites/test_x.py::{name}[h1-nested-papr]"
    journal.append(path, "start", nodeid=nodeid, name=nodeid.split("::")[1],
                   classname="suites.test_x", suite=SUITE, properties=START)
    for log in attached:
        journal.append(path, "attach", nodeid=nodeid, path=log)
    if outcome is not None:
        journal.append(path, "end", nodeid=nodeid, outcome=outcome, duration=2.5,
                       message=message, details=details, properties={**KERNELS, **props},
                       attachments=list(ended))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A CI workspace whose reports/r1 holds a run of every outcome."""
    run_dir = tmp_path / "ws" / "reports" / RUN
    (run_dir / "consoles").mkdir(parents=True)
    (run_dir / "hcalls").mkdir()
    for name in ("consoles/l1.log", "consoles/l2.log", "hcalls/h1-case.sh"):
        (run_dir / name).write_text("boot\n")
    path = run_dir / journal.JOURNAL
    journal.append(path, "run", run_id=RUN, hosts=["h1"], started="2026-11-30T02:10:00+02:00")
    _case(path, "test_passes", "passed", attached=("consoles/l1.log",))
    # The L2's console was opened first (an attach event); the L1's error failed the case.
    _case(path, "test_l1_dies", "failed", "Failed: L0 DIED during H_GUEST_RUN_VCPU",
          "[gw0] linux -- Python 3.11\nFailed: L0 DIED during H_GUEST_RUN_VCPU",
          attached=("consoles/l2.log",),
          ended=("consoles/l1.log", "consoles/l2.log", "hcalls/h1-case.sh"),
          failed_log="consoles/l1.log")
    _case(path, "test_deviation", "xfailed", DEVIATION,
          "def test_deviation(l2):\n>       assert rc == 0\nE   assert -56 == 0",
          ended=("consoles/l2.log",))
    _case(path, "test_skipped", "skipped", SKIP)
    _case(path, "test_skipped_without_reason", "skipped")
    _case(path, "test_setup_error", "error", "GuestStartError: QEMU did not start",
          "GuestStartError: QEMU did not start\n(console log: consoles/l1.log)",
          ended=("consoles/l1.log",))
    _case(path, "test_interrupted", None, attached=("consoles/l2.log",))
    return tmp_path / "ws"


def _write(workspace: Path, strict: bool = False, base: Path | None = None) -> Path:
    run_dir = workspace / "reports" / RUN
    out = run_dir / ("strict.xml" if strict else "junit.xml")
    run = journal.read(run_dir / journal.JOURNAL)
    junit.build(run, "ci", run_dir=run_dir, base=base or workspace, strict=strict).write(
        out, encoding="utf-8", xml_declaration=True)
    return out


def _cases(file: Path) -> dict[str, ET.Element]:
    return {c.get("name", "").partition("[")[0]: c for c in ET.parse(file).iter("testcase")}


def _attachments(case: ET.Element) -> list[str]:
    return [m["path"] for m in GITLAB_ATTACHMENT.finditer(case.findtext("system-out") or "")]


def test_attachments_resolve_from_the_workspace_the_failed_log_first(workspace: Path) -> None:
    cases = _cases(_write(workspace))
    failed = _attachments(cases["test_l1_dies"])
    assert failed == [f"reports/{RUN}/consoles/l1.log", f"reports/{RUN}/consoles/l2.log",
                      f"reports/{RUN}/hcalls/h1-case.sh"]
    # GitLab takes the first match of its pattern: the L1's log, whose error failed it.
    match = GITLAB_ATTACHMENT.search(cases["test_l1_dies"].findtext("system-out") or "")
    assert match and match["path"].endswith("l1.log")
    every = [a for case in cases.values() for a in _attachments(case)]
    assert len(every) == 7
    assert all(jenkins_child(workspace, a).is_file() and not os.path.isabs(a) for a in every)
    assert _attachments(cases["test_interrupted"]) == [f"reports/{RUN}/consoles/l2.log"]


def test_a_run_outside_the_workspace_names_its_files_absolutely(workspace: Path,
                                                              tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    file = _write(workspace, base=elsewhere)
    every = [a for case in _cases(file).values() for a in _attachments(case)]
    assert every and all(os.path.isabs(a) and jenkins_child(elsewhere, a).is_file()
                         for a in every)
    problems = junit.check_ci(file, elsewhere)
    assert len(problems) == 7 and all("outside the workspace" in p for p in problems)
    assert junit.attachment_path(workspace / "reports" / "x.log", workspace) == "reports/x.log"


def test_result_texts_start_with_the_reason(workspace: Path) -> None:
    file = _write(workspace)
    cases = _cases(file)
    texts = {name: (r.tag, r.get("type"), r.get("message"), r.text or "")
             for name, case in cases.items() for r in case
             if r.tag in ("failure", "error", "skipped")}
    for tag, _, message, text in texts.values():
        assert message and text.startswith(message), (tag, message, text)
    assert texts["test_deviation"][:2] == ("skipped", "known-deviation")
    assert texts["test_deviation"][3].startswith(DEVIATION + "\n\n")
    assert "E   assert -56 == 0" in texts["test_deviation"][3]
    assert texts["test_skipped"][3] == SKIP
    assert texts["test_skipped_without_reason"][2:] == ("skipped", "skipped")
    assert texts["test_l1_dies"][3].startswith("Failed: L0 DIED during H_GUEST_RUN_VCPU\n\n[gw0]")
    assert texts["test_setup_error"][3].startswith("GuestStartError: QEMU did not start\n\n")
    assert texts["test_interrupted"][:3] == ("error", "interrupted", junit.INTERRUPTED)
    assert "test_passes" not in texts
    assert junit.check_ci(file, workspace) == []


def test_properties_are_in_each_testcase_by_default(workspace: Path) -> None:
    file = _write(workspace)
    validate(file)                 # junit-10.xsd plus <testcase><properties>
    root = ET.parse(file).getroot()
    (suite,) = root.iter("testsuite")
    assert {p.get("name"): p.get("value") for p in suite.findall("properties/property")} == START
    run = journal.read(workspace / "reports" / RUN / journal.JOURNAL)
    for case in run.cases.values():
        (el,) = [c for c in suite.iter("testcase") if c.get("name") == case.name]
        props = {p.get("name"): p.get("value") for p in el.findall("properties/property")}
        assert props == case.properties
        assert el[0].tag == "properties"           # first, as pytest writes it
        assert "[[PROPERTY|" not in (el.findtext("system-out") or "")
    dies = _cases(file)["test_l1_dies"].findall("properties/property")
    assert {"host", "api", "cpu", "l0", "l1_kernel", "l2_kernel"} <= {p.get("name") for p in dies}


def test_strict_output_is_valid_junit_10_with_the_same_counts(workspace: Path) -> None:
    strict, default = _write(workspace, strict=True), _write(workspace)
    validate(strict, strict=True)
    with pytest.raises(AssertionError, match="properties"):
        validate(default, strict=True)
    cases = _cases(strict)
    assert all(c.find("properties") is None for c in cases.values())
    out = cases["test_l1_dies"].findtext("system-out") or ""
    assert "[[PROPERTY|l2_kernel=6.1.140]]" in out and "[[PROPERTY|host=" not in out
    assert _attachments(cases["test_l1_dies"]) == _attachments(_cases(default)["test_l1_dies"])
    counts = [(x.tests, x.failures, x.errors, x.skipped)
              for x in (s for f in (strict, default) for s in JUnitXml.fromfile(str(f)))]
    assert counts[0] == counts[1] == (7, 1, 2, 3)
    parsed = [case for suite in JUnitXml.fromfile(str(default)) for case in suite]
    assert sum(c.is_skipped for c in parsed) == 3 and sum(c.is_passed for c in parsed) == 1


@pytest.fixture
def zone() -> Iterator[None]:
    """The controller in Central European Time (UTC+1 in November)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_timestamps_are_utc_with_the_offset(workspace: Path, zone: None) -> None:
    assert junit.utc("2026-11-30T02:10:00+02:00") == "2026-11-30T00:10:00+00:00"
    assert junit.utc("2026-11-30T01:10:00") == "2026-11-30T00:10:00+00:00"  # local, naive
    assert junit.utc("not a time") == "not a time"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+01:00", journal.now())
    for strict in (False, True):
        (suite,) = ET.parse(_write(workspace, strict=strict)).iter("testsuite")
        assert suite.get("timestamp") == "2026-11-30T00:10:00+00:00"


def test_check_ci_finds_what_the_old_report_lost(tmp_path: Path) -> None:
    (tmp_path / "r1" / "consoles").mkdir(parents=True)
    (tmp_path / "r1" / "consoles" / "l1.log").write_text("boot\n")
    file = tmp_path / "r1" / "junit.xml"
    file.write_text(
        '<testsuites><testsuite name="h1" timestamp="2026-11-30T00:10:00" tests="2" '
        'failures="0" errors="0"><testcase name="a"><skipped message="not here"/>'
        '<system-out>[[ATTACHMENT|consoles/l1.log]]\n</system-out></testcase>'
        f'<testcase name="b"><skipped message="{DEVIATION}">Traceback</skipped></testcase>'
        '</testsuite></testsuites>')
    assert junit.check_ci(file, tmp_path) == [
        "h1: timestamp 2026-11-30T00:10:00 has no UTC offset",
        "h1: a: <skipped> has no text",
        f"h1: a: attachment consoles/l1.log is no file in {tmp_path}",
        f"h1: b: <skipped> text does not start with its message {DEVIATION[:80]!r}"]
    said = CliRunner().invoke(main, ["report", "check", str(file), "--workspace", str(tmp_path)])
    assert said.exit_code == 1 and "4 problems" in said.output


def test_report_check_passes_what_powernest_writes(workspace: Path) -> None:
    file = _write(workspace)
    said = CliRunner().invoke(main, ["report", "check", str(file), "--workspace", str(workspace)])
    assert said.exit_code == 0 and "0 problems" in said.output


# ---- through the plugin: the log of the guest that failed a case ------------------------

L1_DIES = '''
import pytest
from powernest.console import ConsoleError
from powernest.plugin.run import context


def test_l1_dies(request, record_property):
    ctx = context(request.config)
    for name in ("l2.log", "l1.log"):
        (ctx.console_dir / name).write_text("boot\\n")
    record_property("attachment", "consoles/l2.log")
    record_property("attachment", "consoles/l1.log")
    try:
        raise ConsoleError("l1: its L0 QEMU died", ctx.console_dir / "l1.log")
    except ConsoleError:
        pytest.fail("L0 DIED during H_ENTER_NESTED")
'''


@pytest.mark.parametrize("strict", [False, True])
def test_a_run_attaches_the_failed_guests_log_first(tmp_path: Path, strict: bool) -> None:
    suites_dir(tmp_path, test_dies=L1_DIES)
    (tmp_path / "hosts.yaml").write_text(ONE_HOST)
    run = child_pytest(tmp_path, tmp_path / "reports", "dies", "test_dies.py",
                       "--inventory", "hosts.yaml", *(["--junit-strict"] * strict))
    (end,) = [e for e in journal.events(run / journal.JOURNAL) if e["event"] == "end"]
    assert end["properties"]["failed_log"] == "consoles/l1.log"
    assert end["attachments"] == ["consoles/l1.log", "consoles/l2.log"]
    file = run / "junit.xml"
    validate(file, strict=strict)
    (case,) = _cases(file).values()
    assert _attachments(case) == ["reports/dies/consoles/l1.log", "reports/dies/consoles/l2.log"]
    assert (case.find("properties") is None) == strict
    assert junit.check_ci(file, tmp_path) == []


def test_failed_log_follows_the_exception_chain(tmp_path: Path) -> None:
    try:
        try:
            raise ConsoleError("l2 hung", tmp_path / "l2.log")
        except ConsoleError as exc:
            raise RuntimeError("the case gave up") from exc
    except RuntimeError as exc:
        assert failed_log(exc) == tmp_path / "l2.log"
    assert failed_log(ValueError("no console")) is None
