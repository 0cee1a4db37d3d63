"""The dashboard's hcall section and the JUnit type of a case whose L0 died.

A journal of hcall cases against two L0s, written as the plugin writes it:
one case answered alike, one differently, one where the L0 died (a failure),
one known deviation where it died too, one skipped on one L0.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest
from lxml import html

from powernest.hcalls.campaign import Crash, Summary
from powernest.reporting import dashboard, journal, junit
from test_reporting import CHROMIUM, chromium, having

TCG = "QEMU 10.0.2 (TCG)"
POWERVM = "PowerVM (FW1060.10 (NL1060_042), seen from the LPAR p10-lpar)"
HOSTS = {TCG: "p10-tcg", POWERVM: "p10-lpar"}
CRASH = ("qemu-system-ppc64: ../hw/ppc/spapr_nested.c:1234: h_guest_create_vcpu: "
         "Assertion 'vcpuid == guest->nr_vcpus' failed. (killed by SIGABRT) "
         "during H_GUEST_CREATE_VCPU")
DEVIATION = "known deviation qemu-v2-vpa-element: QEMU has no handler for the VPA element"
LONG = ("H_INVALID_ELEMENT_ID (-79) or H_INVALID_ELEMENT_SIZE (-80) or "
        "H_INVALID_ELEMENT_VALUE (-81), R4=0x0")
FLAGS = "H_PARAMETER (-4) or H_UNSUPPORTED_FLAG_START..END (-256..-511)"

# case id, hcall, required, then per L0: (outcome, observed or None, l0_died or None)
CASES: list[tuple[str, str, str, dict[str, tuple[str, str | None, str | None]]]] = [
    ("v2-get-capabilities", "H_GUEST_GET_CAPABILITIES", "H_SUCCESS (0)",
     {TCG: ("passed", "H_SUCCESS (0)", None), POWERVM: ("passed", "H_SUCCESS (0)", None)}),
    ("v2-create-guest-bad-flags", "H_GUEST_CREATE", FLAGS,
     {TCG: ("failed", "H_SUCCESS (0)", None), POWERVM: ("passed", "H_PARAMETER (-4)", None)}),
    ("v2-create-vcpu-duplicate", "H_GUEST_CREATE_VCPU", "H_P3 (-56)",
     {TCG: ("failed", None, CRASH), POWERVM: ("passed", "H_P3 (-56)", None)}),
    ("v2-set-state-vpa", "H_GUEST_SET_STATE", LONG,
     {TCG: ("xfailed", None, "qemu-system-ppc64: (killed by SIGSEGV) during H_GUEST_SET_STATE")}),
    ("v2-delete-all", "H_GUEST_DELETE", "H_SUCCESS (0)",
     {TCG: ("passed", "H_SUCCESS (0)", None), POWERVM: ("skipped", None, None)}),
]
MISSING = "v2-delete-all"    # its reproducer is recorded but was not written


def _script(host: str, case_id: str) -> str:
    return f"hcalls/{host}-nested-papr-{case_id}.sh"


def _message(outcome: str, observed: str | None, died: str | None) -> str:
    return {"failed": f"AssertionError: {died or observed}", "xfailed": DEVIATION,
            "skipped": "needs a fresh L1"}.get(outcome, "")


def _write_case(path: Path, param: str, host: str, outcome: str, message: str,
                props: dict[str, str], attachments: tuple[str, ...] = ()) -> None:
    """A case's `start` and `end` events, as the plugin writes them."""
    nodeid = f"suites/test_hcalls.py::test_hcall[{host}-nested-papr-{param}]"
    journal.append(path, "start", nodeid=nodeid, name=nodeid.split("::")[1],
                   classname="suites.test_hcalls", suite=f"{host}/nested-papr",
                   properties={"host": host, "kind": "tcg", "cpu": "power10",
                               "api": "nested-papr"})
    journal.append(path, "end", nodeid=nodeid, outcome=outcome, duration=1.5,
                   message=message, details="", properties=props,
                   attachments=list(attachments))


def _write_hcall(path: Path, case_id: str, hcall: str, required: str, l0: str,
                 result: tuple[str, str | None, str | None]) -> None:
    outcome, observed, died = result
    host = HOSTS[l0]
    props = {"l0": l0, "hcall_case": case_id, "hcall": hcall, "hcall_required": required,
             "reproducer": _script(host, case_id)}
    props |= {"hcall_observed": observed} if observed else {}
    props |= {"l0_died": died} if died else {}
    _write_case(path, case_id, host, outcome, _message(*result), props,
                (props["reproducer"],))   # attached too, as the suite does for JUnit


def _run(reports: Path, hcalls: bool = True) -> Path:
    """A run `r1` under `reports` (its latest): a case of another kind, and the hcall cases."""
    run_dir = reports / "r1"
    run_dir.mkdir(parents=True)
    path = run_dir / journal.JOURNAL
    journal.append(path, "run", run_id="r1", hosts=list(HOSTS.values()),
                   started="2026-01-01T06:00:00")
    _write_case(path, "boot", HOSTS[TCG], "passed", "", {"l0": TCG})
    for case_id, hcall, required, results in CASES if hcalls else []:
        for l0, result in results.items():
            _write_hcall(path, case_id, hcall, required, l0, result)
            script = run_dir / _script(HOSTS[l0], case_id)
            if case_id != MISSING:
                script.parent.mkdir(exist_ok=True)
                script.write_text("#!/bin/sh\n")
    (reports / "latest").symlink_to("r1")
    return run_dir


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    _run(reports)
    return reports


@pytest.fixture
def page(reports: Path) -> html.HtmlElement:
    return html.parse(str(dashboard.build(reports))).getroot()


def _section(page: html.HtmlElement) -> html.HtmlElement:
    (section,) = page.xpath(".//section[@id='hcalls']")
    return section


def _text(element: html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def test_cases_are_grouped_by_l0_one_row_each(page: html.HtmlElement) -> None:
    section = _section(page)
    tables = {t.get("data-l0"): t for t in section.xpath(having("table", "hcall-cases"))}
    assert list(tables) == [POWERVM, TCG]
    for l0, table in tables.items():
        rows = table.xpath("./tr[@id]")
        expected = [(c, r[l0][0]) for c, _, _, r in CASES if l0 in r]
        assert [(r.get("data-case"), r.get("data-outcome")) for r in rows] == expected
    (row,) = tables[POWERVM].xpath("./tr[@id][@data-case='v2-create-guest-bad-flags']")
    cells = [_text(td) for td in row.xpath("./td")]
    assert cells == ["v2-create-guest-bad-flags", "H_GUEST_CREATE", FLAGS, "H_PARAMETER (-4)",
                     "✓ passed", "reproducer"]
    (skipped,) = tables[POWERVM].xpath("./tr[@id][@data-case='v2-delete-all']")
    assert "skipped" in _text(skipped.xpath("./td")[4])
    (deviation,) = tables[TCG].xpath("./tr[@id][@data-case='v2-set-state-vpa']")
    assert "known deviation qemu-v2-vpa-element" in _text(deviation)
    for coverage in section.xpath(".//table[@class='spec-matrix']"):
        coverage.getparent().remove(coverage)   # the spec's clauses speak of boots
    assert "boot" not in _text(section)


def test_l0_deaths_are_marked_with_their_last_words(page: html.HtmlElement) -> None:
    (table,) = _section(page).xpath(having("table", "hcall-cases") + f"[@data-l0='{TCG}']")
    died = table.xpath(having("tr", "died") + "[@id]")
    assert [(r.get("data-case"), r.get("data-outcome")) for r in died] == [
        ("v2-create-vcpu-duplicate", "failed"), ("v2-set-state-vpa", "xfailed")]
    for row in died:
        assert row.xpath(".//span[@class='badge died']")[0].text == "L0 DIED"
        words = row.getnext()
        assert "lastwords" in words.get("class") and words.get("data-case") == row.get("data-case")
        assert _text(words).startswith("L0 DIED qemu-system-ppc64:")
    assert CRASH in _text(died[0].getnext())
    (chip,) = died[0].xpath(having("a", "chip"))
    (failure,) = page.xpath(having("div", "failure") + f"[@id='{chip.get('href')[1:]}']")
    assert "no console log" in _text(failure)        # the attached script is none


def test_reproducer_links_point_at_the_scripts(reports: Path, page: html.HtmlElement) -> None:
    links = _section(page).xpath(".//a[text()='reproducer']")
    assert len(links) == sum(len(r) for c, _, _, r in CASES if c != MISSING)
    for link in links:
        assert (reports / unquote(link.get("href"))).is_file(), link.get("href")
        assert link.get("href").startswith("r1/hcalls/")
    missing = _section(page).xpath(".//tr[@data-case='v2-delete-all']//span[@title]")
    assert {m.text for m in missing} >= {"not written"}


def test_a_case_seen_by_both_l0s_shows_whether_they_differ(page: html.HtmlElement) -> None:
    (matrix,) = _section(page).xpath(having("table", "hcall-matrix"))
    heads = [_text(th) for th in matrix.xpath(having("th", "l0"))]
    assert heads == [POWERVM, TCG]
    lines = {tr.get("data-case"): tr for tr in matrix.xpath("./tbody/tr")}
    assert list(lines) == ["v2-create-guest-bad-flags", "v2-create-vcpu-duplicate",
                           "v2-get-capabilities", "v2-delete-all"]     # differing first
    differs = {c for c, tr in lines.items() if "differs" in (tr.get("class") or "")}
    assert differs == {"v2-create-guest-bad-flags", "v2-create-vcpu-duplicate"}

    def observed(case_id: str) -> dict[str, tuple[str, str]]:
        return {td.get("data-l0"): (td.get("data-outcome"), _text(td))
                for td in lines[case_id].xpath("./td[@data-l0]")}

    assert observed("v2-create-guest-bad-flags") == {
        POWERVM: ("passed", "H_PARAMETER (-4)"), TCG: ("failed", "H_SUCCESS (0)")}
    assert observed("v2-create-vcpu-duplicate")[TCG] == ("failed", "L0 DIED")
    assert observed("v2-delete-all")[POWERVM] == ("skipped", "– skipped")
    assert "2 of 4 answered differently" in _text(_section(page).xpath("./h2")[0])


def test_the_spec_coverage_sets_the_clauses_against_each_target(
        page: html.HtmlElement) -> None:
    (counts,) = _section(page).xpath(having("table", "spec-counts"))
    targets = [r.get("data-target") for r in counts.xpath("./tr[@data-target]")]
    assert targets == ["p10-lpar/nested-papr", "p10-tcg/nested-papr"]
    (matrix,) = _section(page).xpath(having("table", "spec-matrix"))

    def cell(clause: str, target: int) -> html.HtmlElement:
        (row,) = matrix.xpath(f"./tr[@data-clause='{clause}']")
        return row.xpath("./td")[1 + target]

    def status(clause: str, target: int) -> str:
        return (cell(clause, target).text or "").strip()

    # v2-get-capabilities passed on both; v2-set-state-vpa met its deviation, named in
    # its cell; a clause no row checks says why beside its text
    assert status("v2-get-capabilities-r4-bitmap", 0) == "conforms"
    assert status("v2-gsb-0x0c02-vpa", 1) == "deviates"
    assert _text(cell("v2-gsb-0x0c02-vpa", 1)) == "deviatesqemu-v2-vpa-element"
    assert status("v2-gsb-0x0c02-vpa", 0) == "not run"
    (unchecked,) = matrix.xpath("./tr[@data-clause='v2-create-not-enough-resources']/td[1]")
    assert "not checked: needs the L0's memory exhausted" in _text(unchecked)


def test_campaign_crashes_are_listed_beside_the_table(reports: Path) -> None:
    folder = reports / "campaigns" / "p10-tcg-nested-papr-1"
    summary = Summary("p10-tcg", "nested-papr", 1, 600.0, "QEMU 10.0.2 (TCG)", baseline_s=40.0,
                      table_keys={"h_guest_create_vcpu (spapr_nested.c:1430)": ["v2-x"]})
    summary.crashes = [
        Crash("h_guest_create_vcpu (spapr_nested.c:1430)", "assertion (killed by SIGABRT)",
              "H_GUEST_CREATE_VCPU(0x0, guest=0x1, 0x2)", 20.0, 7, 3, 12, 4, True, ["v2-x"],
              "crashes/h_guest_create_vcpu"),
        Crash("killed by SIGSEGV in H_GUEST_RUN_VCPU", "it printed no error (killed by SIGSEGV)",
              "H_GUEST_RUN_VCPU(0x0, guest=0x1, 0x0)", 90.0, 40, 1, 9, 5, True, [],
              "crashes/killed-by-SIGSEGV-in-H_GUEST_RUN_VCPU")]
    folder.mkdir(parents=True)
    summary.write(folder)
    page = html.parse(str(dashboard.build(reports))).getroot()
    (table,) = _section(page).xpath(having("table", "campaign-crashes"))
    rows = table.xpath("./tr[@data-key]")
    assert [r.get("data-key") for r in rows] == [   # the new one first
        "killed by SIGSEGV in H_GUEST_RUN_VCPU", "h_guest_create_vcpu (spapr_nested.c:1430)"]
    assert _text(rows[0].xpath("./td[@class='rows']")[0]) == "new"
    assert _text(rows[1].xpath("./td[@class='rows']")[0]) == "v2-x"
    assert "9 → 5" in _text(rows[0])
    (link,) = rows[0].xpath(".//a")
    assert link.get("href") == ("campaigns/p10-tcg-nested-papr-1/crashes/"
                                "killed-by-SIGSEGV-in-H_GUEST_RUN_VCPU/reproducer.sh")


def test_a_run_without_hcall_cases_has_no_section(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _run(reports, hcalls=False)
    page = html.parse(str(dashboard.build(reports))).getroot()
    assert not page.xpath(".//section[@id='hcalls']")
    assert not page.xpath(having("table", "hcall-matrix") + " | " + having("table", "hcall-cases"))


def test_junit_failure_of_a_dead_l0_is_typed_l0_died(reports: Path) -> None:
    run = journal.read(reports / "r1" / journal.JOURNAL)
    tree = ET.parse(junit.write(run, reports / "r1" / "junit.xml"))
    types = {c.get("name", "").partition("nested-papr-")[2][:-1]: (r.tag, r.get("type"))
             for c in tree.iter("testcase") for r in c if r.tag in ("failure", "skipped")}
    assert types == {"v2-create-guest-bad-flags": ("failure", "failure"),
                     "v2-create-vcpu-duplicate": ("failure", "l0-died"),
                     "v2-set-state-vpa": ("skipped", "known-deviation"),
                     "v2-delete-all": ("skipped", "skipped")}


# Measures, in a copy of the page, how far anything reaches past the window or the section.
MEASURE = """<script>
addEventListener("load", () => {
  const doc = document.documentElement, section = document.getElementById("hcalls");
  const edge = section.getBoundingClientRect().right;
  const over = [...section.querySelectorAll("*")].filter(
    e => e.getBoundingClientRect().right > edge + 0.5).map(e => e.tagName + "." + e.className);
  document.body.dataset.overflow = JSON.stringify(
    {page: doc.scrollWidth - doc.clientWidth, section: over});
});
</script>"""


def test_section_fits_1400_px_in_chromium(reports: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (`make setup` installs it)")
    index = dashboard.build(reports)
    probe = reports / "probe.html"
    probe.write_text(index.read_text().replace("</body>", MEASURE + "</body>"))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri(),
                   profile=tmp_path / "profile")
    (body,) = html.fromstring(dom.stdout).xpath("//body")
    assert body.get("data-overflow") == '{"page":0,"section":[]}', dom.stderr[-2000:]
