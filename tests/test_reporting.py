"""Reporting: the JUnit of real runs, a strict XPASS, the dashboard (merging: test_shards.py).

The real runs are child pytests of `suites/test_caps.py` (it boots nothing:
QEMU is started stopped and asked about its caps) on two emulated hosts.
Their outcomes depend on the L0 QEMU, so the checks compare the reports with
each other and with the journal rather than with fixed verdicts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from junitparser import JUnitXml, TestSuite
from lxml import html

from junit_xsd import validate  # junit-10.xsd; <testcase><properties> allowed
from powernest.cli import main
from powernest.reporting import dashboard, history, journal
from sshd import Sshd

REPO = Path(__file__).resolve().parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
CHROMIUM = shutil.which("chromium")
HOSTS = {"p9-tcg": "power9", "p10-tcg": "power10"}
ONE_HOST = "hosts:\n  - {name: p9-tcg, kind: tcg, cpu: power9}\n"
INVENTORY = "hosts:\n" + "".join(f"  - {{name: {n}, kind: tcg, cpu: {c}}}\n"
                                 for n, c in HOSTS.items())


# A directory of suites of its own, as a lab outside this tree would keep them.
SUITES_CONFTEST = """
from powernest.plugin import PLUGINS
from powernest.plugin.run import start_run

pytest_plugins = PLUGINS


def pytest_configure(config):
    start_run(config)
"""


def suites_dir(path: Path, **tests: str) -> None:
    """Make `path` a directory of suites: a conftest.py that starts a run, and `tests`."""
    (path / "conftest.py").write_text(SUITES_CONFTEST)
    for name, text in tests.items():
        (path / f"{name}.py").write_text(text)


def suite_ends(tmp_path: Path, run_id: str, **tests: str) -> tuple[Path, list[dict[str, Any]]]:
    """Run a suites directory of `tests` against one tcg host: the run directory and the
    journal's end events."""
    suites_dir(tmp_path, **tests)
    (tmp_path / "hosts.yaml").write_text(ONE_HOST)
    run = child_pytest(tmp_path, tmp_path / "reports", run_id, *(f"{n}.py" for n in tests),
                       "--inventory", "hosts.yaml")
    return run, [e for e in journal.events(run / journal.JOURNAL) if e["event"] == "end"]


def child_pytest(cwd: Path, reports: Path, run_id: str, *args: str) -> Path:
    """Run pytest with the powernest plugin; return the run directory."""
    done = subprocess.run(
        [*PYTEST, "--reports", str(reports), "--run-id", run_id, "-q", *args],
        capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    run = reports / run_id
    assert (run / "junit.xml").is_file(), done.stdout[-3000:]
    return run


def caps_run(inventory: Path, reports: Path, run_id: str, *args: str) -> Path:
    return child_pytest(REPO, reports, run_id, str(REPO / "suites" / "test_caps.py"),
                        "--inventory", str(inventory), *args)


def names(xml: JUnitXml) -> list[str]:
    return [case.name for suite in xml for case in suite]


def having(tag: str, *classes: str) -> str:
    """XPath for `tag` elements with all `classes` (lxml's cssselect needs another package)."""
    tests = "".join(f"[contains(concat(' ', normalize-space(@class), ' '), ' {c} ')]"
                    for c in classes)
    return f".//{tag}{tests}"


def properties(suite: TestSuite) -> dict[str, str]:
    return {p.name: p.value for p in suite.properties()}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inventory") / "hosts.yaml"
    path.write_text(INVENTORY)
    return path


@pytest.fixture(scope="module")
def parallel_runs(inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports directory with two runs of both hosts side by side (pytest-xdist)."""
    reports = tmp_path_factory.mktemp("parallel") / "reports"
    for run_id in ("day1", "day2"):
        caps_run(inventory, reports, run_id, "-n", "2", "--dist", "loadgroup")
    return reports


# ---- JUnit of a real run ---------------------------------------------------------

def test_parallel_run_has_one_suite_per_host_with_its_own_properties(
        parallel_runs: Path) -> None:
    file = parallel_runs / "day1" / "junit.xml"
    validate(file)
    xml = JUnitXml.fromfile(str(file))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == set(HOSTS)
    for host, cpu in HOSTS.items():
        props = properties(suites[host])
        assert props["host"] == host and props["cpu"] == cpu and props["kind"] == "tcg"
        assert props["run_id"] == "day1" and props["l0"].startswith("QEMU ")
        cases = list(suites[host])
        assert cases and all(f"[{host}-" in c.name for c in cases)
        assert suites[host].tests == len(cases)
    found = names(xml)
    assert len(found) == len(set(found))
    run = journal.read(parallel_runs / "day1" / journal.JOURNAL)
    assert sorted(found) == sorted(c.name for c in run.cases.values())
    assert xml.tests == len(found) == len(suites["p9-tcg"]) * 2


# ---- a known deviation fixed upstream --------------------------------------------

STRICT_XPASS = '''
import pytest

@pytest.mark.xfail(strict=True, reason="known deviation demo-fixed: the L0 used to drop it")
def test_deviation_now_passes(host):
    pass
'''


def test_strict_xpass_of_a_known_deviation_is_a_failure_naming_it(tmp_path: Path) -> None:
    run, ends = suite_ends(tmp_path, "xpass", test_fixed=STRICT_XPASS)
    assert [e["outcome"] for e in ends] == ["failed"]
    assert "known deviation demo-fixed" in ends[0]["message"] + ends[0]["details"]
    validate(run / "junit.xml")
    (case,) = [c for s in JUnitXml.fromfile(str(run / "junit.xml")) for c in s]
    assert case.is_failure and "known deviation demo-fixed" in case.result[0].text
    page = html.parse(str(tmp_path / "reports" / dashboard.INDEX)).getroot()
    failure = page.xpath(having("div", "failure", "failed"))[0].text_content()
    assert "demo-fixed" in failure and "deviation fixed?" in failure


# ---- the dashboard -------------------------------------------------------------------

def test_a_dashboard_that_cannot_be_built_does_not_fail_the_run(tmp_path: Path) -> None:
    suites_dir(tmp_path, test_ok="def test_ok(host):\n    pass\n")
    (tmp_path / "hosts.yaml").write_text(ONE_HOST)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / history.HISTORY).write_text("not a directory")
    done = subprocess.run([*PYTEST, "test_ok.py", "--inventory", "hosts.yaml", "-q"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout
    warnings = [line for line in done.stdout.splitlines() if "dashboard not rebuilt" in line]
    assert len(warnings) == 1 and warnings[0].startswith("powernest: warning:")
    assert not (tmp_path / "reports" / dashboard.INDEX).exists()


def test_dashboard_shows_every_outcome_and_finds_logs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run_dir = reports / "r1"
    (run_dir / "consoles").mkdir(parents=True)
    guest = "pn.r1.h1-nested-papr.l1-1"
    (run_dir / "consoles" / f"{guest}.log").write_text("boot\n")
    path = run_dir / journal.JOURNAL
    journal.append(path, "run", run_id="r1", hosts=["h1"], started="2026-01-01T06:00:00")
    outcomes = {"passed": "", "error": f"GuestStartError: {guest}: QEMU did not start",
                "xfailed": "known deviation qemu-v2-vpa-element: no handler",
                "skipped": "not here", "interrupted": None}
    for api, (outcome, message) in zip(("nested-hv", "nested-papr") * 3, outcomes.items(),
                                       strict=False):
        nodeid = f"suites/test_x.py::test_{outcome}[h1-{api}]"
        journal.append(path, "start", nodeid=nodeid, name=nodeid.split("::")[1],
                       classname="suites.test_x", suite=f"h1/{api}",
                       properties={"host": "h1", "kind": "tcg", "cpu": "power9", "api": api})
        if message is not None:
            journal.append(path, "end", nodeid=nodeid, outcome=outcome, message=message,
                           details="", properties={"l0": "QEMU 10.0.2 (TCG)"})
    (reports / "latest").symlink_to("r1")
    page = html.parse(str(dashboard.build(reports))).getroot()
    cells = {c.get("data-test"): c for c in page.xpath(having("td", "cell") + "[@data-test]")}
    assert {t: c.get("data-outcome") for t, c in cells.items()} == {
        f"test_{o}": o for o in outcomes}
    assert "qemu-v2-vpa-element" in cells["test_xfailed"].get("title")
    assert cells["test_xfailed"].xpath(having("span", "dev"))[0].text == "qemu-v2-vpa-element"
    (log,) = cells["test_error"].xpath(having("div", "logs") + "/a")
    assert (reports / unquote(log.get("href"))).is_file()
    assert json.loads((reports / history.HISTORY / "r1.json").read_text())["counts"]["error"] == 1


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,1000", *args],
        capture_output=True, text=True, timeout=90)


def test_dashboard_of_real_runs_in_chromium(parallel_runs: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (`make setup` installs it)")
    index = parallel_runs / dashboard.INDEX
    assert index.is_file()       # written by the plugin when day2 ended
    result = CliRunner().invoke(main, ["report", "dashboard", str(parallel_runs)])
    assert result.exit_code == 0, result.output

    dom = chromium("--dump-dom", index.as_uri(), profile=tmp_path / "profile")
    page = html.fromstring(dom.stdout)
    run = journal.read(parallel_runs / "day2" / journal.JOURNAL)
    expected: dict[tuple[str, str], list[str]] = {}
    for case in run.cases.values():
        expected.setdefault((case.name.partition("[")[0], case.suite), []).append(case.outcome)
    cells = page.xpath(having("table", "matrix") + having("td", "cell")[1:] + "[@data-test]")
    assert len(cells) == len(expected) >= 2      # test_cap_acceptance x two hosts, at least
    for cell in cells:
        outcomes = expected[(cell.get("data-test"), cell.get("data-column"))]
        worst = min(outcomes, key=history.OUTCOMES.index)
        assert worst in cell.get("class").split()
        assert len(cell.xpath(having("a", "pip"))) == len(outcomes)
    points = Counter(c.get("class") for c in page.xpath(having("svg", "trend")
                                                        + having("circle", "point")[1:]))
    assert points == {f"point {s}": 2 for s in ("passed", "failed", "xfailed", "skipped")}
    counts = history.counts(run)
    passed = page.xpath(having("circle", "point", "passed"))
    assert passed[-1].findtext("title") == f"day2: {counts['passed'] + counts['xpassed']} passed"
    assert not page.xpath("//script") and "http" not in " ".join(
        page.xpath("//@src | //link/@href"))
    for link in page.xpath("//a/@href[not(starts-with(., '#'))]"):
        assert (parallel_runs / unquote(link)).exists(), link

    png = tmp_path / "dashboard.png"
    chromium(f"--screenshot={png}", index.as_uri(), profile=tmp_path / "profile")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- an SSH host key opt-out is visible ------------------------------------------------

def test_host_key_opt_out_is_printed_and_in_the_report(tmp_path: Path, sshd: Sshd) -> None:
    suites_dir(tmp_path, test_ok="def test_ok(host):\n    pass\n")
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n  - name: p9-ssh\n    kind: tcg\n    cpu: power9\n    ssh:\n"
        f"      {{host: {sshd.host}, port: {sshd.port}, user: {sshd.user}, "
        f"key_file: {sshd.key_file}, verify_host_key: false}}\n")
    done = subprocess.run([*PYTEST, "--reports", "reports", "--run-id", "optout", "-q",
                           "test_ok.py", "--inventory", "hosts.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    hop = f"{sshd.host}:{sshd.port}"
    assert f"p9-ssh: SSH host key NOT verified for {hop} (verify_host_key: false)" in done.stdout
    (suite,) = JUnitXml.fromfile(str(tmp_path / "reports" / "optout" / "junit.xml"))
    assert {p.name: p.value for p in suite.properties()}["ssh_host_key_not_verified"] == hop


# ---- a case that cannot run here is skipped with the reason ------------------------------

UNAVAILABLE = '''
import pytest
from powernest.errors import Unavailable


@pytest.fixture(scope="session")
def needs_more(host):
    raise Unavailable("this host has no such thing")


def test_first(needs_more):
    pass


def test_second(needs_more):   # the session fixture's error comes from pytest's cache
    pass


def test_body(host):
    raise Unavailable("nor this")
'''


def test_unavailable_skips_every_case_with_its_reason(tmp_path: Path) -> None:
    _, ends = suite_ends(tmp_path, "unavailable", test_unavailable=UNAVAILABLE)
    assert [(e["outcome"], e["message"]) for e in ends] == [
        ("skipped", "this host has no such thing"), ("skipped", "this host has no such thing"),
        ("skipped", "nor this")]


def _run_of(reports: Path, run_id: str, code: str, started: str,
            cases: dict[str, tuple[str, str]]) -> None:
    """A run's journal: `cases` maps a test name to its outcome and L1 kernel."""
    path = reports / run_id / journal.JOURNAL
    path.parent.mkdir(parents=True)
    journal.append(path, "run", run_id=run_id, hosts=["h1"], started=started, code=code)
    for name, (outcome, kernel) in cases.items():
        nodeid = f"suites/test_x.py::{name}"
        journal.append(path, "start", nodeid=nodeid, name=name, classname="suites.test_x",
                       suite="h1/nested-hv", properties={"host": "h1", "api": "nested-hv"})
        journal.append(path, "end", nodeid=nodeid, outcome=outcome, message=f"{outcome} here",
                       details="", properties={"l0": "QEMU 10.0.2 (TCG)", "l1_kernel": kernel})


def test_an_outcome_that_changed_with_the_same_code_l0_and_kernel_is_marked_flaky(
        tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    k, other = "6.12.95+deb12-powerpc64le", "6.1.0-50-powerpc64le"
    _run_of(reports, "r1", "abc", "2026-01-01T06:00:00+00:00",
            {"test_a[h1-nested-hv]": ("passed", k), "test_b[h1-nested-hv]": ("passed", k),
             "test_c[h1-nested-hv]": ("passed", other), "test_d[h1-nested-hv]": ("skipped", k)})
    _run_of(reports, "r2", "older", "2026-01-01T07:00:00+00:00",
            {"test_e[h1-nested-hv]": ("passed", k)})
    _run_of(reports, "r3", "abc", "2026-01-01T08:00:00+00:00",
            {"test_a[h1-nested-hv]": ("failed", k), "test_b[h1-nested-hv]": ("passed", k),
             "test_c[h1-nested-hv]": ("failed", k), "test_d[h1-nested-hv]": ("failed", k),
             "test_e[h1-nested-hv]": ("failed", k)})
    for run in ("r1", "r2"):
        dashboard.build(reports, reports / run)
    page = html.parse(str(dashboard.build(reports, reports / "r3"))).getroot()

    # a: failed where the same code passed on the same L0 and kernel. c: another kernel then;
    # d: skipped then (it says nothing); e: passed only with other code: a regression, "new"
    rows = page.xpath("//section[@id='flaky']//tr[td]")
    assert [r.xpath("td")[0].text for r in rows] == ["test_a[h1-nested-hv]"]
    assert "r1: passed" in rows[0].xpath("td")[2].text_content()
    cells = {c.get("data-test"): c for c in page.xpath(having("td", "cell") + "[@data-test]")}
    assert cells["test_a"].xpath(having("span", "flaky"))
    assert not cells["test_e"].xpath(having("span", "flaky"))
    badges = {li.xpath("code")[0].text: [b.text for b in li.xpath(having("span", "badge"))]
              for li in page.xpath("//div[contains(@class, 'failure')]//ul[@class='cases']/li")}
    assert badges["test_a[h1-nested-hv]"] == ["flaky"]
    assert badges["test_e[h1-nested-hv]"] == ["new"]
    record = json.loads((reports / history.HISTORY / "r3.json").read_text())
    assert record["code"] == "abc" and record["cases"]["test_b[h1-nested-hv]"][0] == "passed"
