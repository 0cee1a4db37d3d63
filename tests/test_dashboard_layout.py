"""The dashboard's times, its logs' owners and its layout for a lab of five hosts.

Times carry their UTC offset (a journal's without one are the controller's
local time); "took" comes from the journal's events; each failure's log says
whose it is; in Chromium at 1280 px the matrix scrolls inside its card with
the test column fixed, and the trend's labels do not overlap.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import html

from powernest import naming
from powernest.nested import API
from powernest.reporting import dashboard, history, journal
from test_reporting import CHROMIUM, chromium, having

HOSTS = ("p9-tcg", "p10-tcg", "p9-qemu7.2", "p10-lpar", "p9-kvm")
L1 = naming.guest_name("r1", "p9-qemu7.2", naming.l1_role("gw0", 2), API.V1)
L2 = naming.l2_log_name(L1, naming.l2_role(1))
LPAR = "p10-lpar.lpar"      # powernest.pool names an LPAR's console log so
LPAR_L2 = naming.l2_log_name("p10-lpar", naming.guest_name("r1", "p10-lpar", naming.l2_role(3)))


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The controller's local time is Paris time (UTC+01:00 in winter)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _case(path: Path, host: str, api: str, test: str, outcome: str = "passed",
          message: str = "", logs: tuple[str, ...] = (), **times: str) -> None:
    """A case's `start` and `end` events; `times` gives each its `time`."""
    suite = f"{host}/{api}" if api else host
    nodeid = f"suites/test_x.py::{test}[{host}{'-' + api if api else ''}]@{host}"
    props = {"host": host, "kind": "tcg", "cpu": "power9"} | ({"api": api} if api else {})
    journal.append(path, "start", nodeid=nodeid, name=nodeid.split("::")[1].partition("@")[0],
                   classname="suites.test_x", suite=suite, properties=props,
                   **({"time": times["start"]} if "start" in times else {}))
    journal.append(path, "end", nodeid=nodeid, outcome=outcome, duration=1.0, message=message,
                   details="", properties={"l0": "QEMU 10.0.2 (TCG)"},
                   attachments=[f"consoles/{log}.log" for log in logs],
                   **({"time": times["end"]} if "end" in times else {}))


def _run(reports: Path, started: str = "2026-01-01T06:00:00", run_id: str = "r1") -> Path:
    run_dir = reports / run_id
    (run_dir / "consoles").mkdir(parents=True)
    path = run_dir / journal.JOURNAL
    journal.append(path, "run", run_id=run_id, hosts=list(HOSTS), started=started)
    latest = reports / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_id)
    return path


def _page(reports: Path) -> html.HtmlElement:
    return html.parse(str(dashboard.build(reports))).getroot()


def _text(element: html.HtmlElement) -> str:
    return " ".join(element.text_content().split())


def _header(page: html.HtmlElement) -> str:
    return _text(page.xpath(".//header")[0])


# ---- times ------------------------------------------------------------------------------

def test_took_is_from_the_run_start_to_the_last_event(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    path = _run(reports, started="2026-03-01T10:00:00+01:00")
    _case(path, "p9-tcg", "", "test_a", start="2026-03-01T10:00:05+01:00",
          end="2026-03-01T10:40:00+01:00")
    _case(path, "p10-tcg", "", "test_a", start="2026-03-01T09:41:00+00:00",
          end="2026-03-01T10:02:30+00:00")     # another offset, the same clock
    os.utime(path, (0, 0))                     # the file's times play no part
    page = _page(reports)
    record = json.loads((reports / history.HISTORY / "r1.json").read_text())
    assert record["duration"] == 3750 and record["ended"] == "2026-03-01T10:02:30+00:00"
    assert "took 1h 02m" in _header(page)
    assert "started 2026-03-01T10:00:00+01:00" in _header(page)
    (took,) = page.xpath(".//header//div[starts-with(normalize-space(), 'took')]")
    assert "2026-03-01T10:02:30+00:00" in took.get("title")


@pytest.mark.usefixtures("paris")
def test_times_without_an_offset_are_local_and_shown_with_it(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    _case(_run(reports), "p9-tcg", "", "test_a", start="2026-01-01T06:00:01",
          end="2026-01-01T06:05:00")                   # as journals were written before
    page = _page(reports)
    assert "started 2026-01-01T06:00:00+01:00" in _header(page)
    (took,) = page.xpath(".//header//div[starts-with(normalize-space(), 'took')]")
    assert _text(took) == "took 5m 00s" and "2026-01-01T06:05:00+01:00" in took.get("title")
    generated = page.xpath(".//footer/time")[0].get("datetime")
    assert generated[19:] in ("+01:00", "+02:00")          # now, in Paris
    assert "times UTC+01:00" in _text(page.xpath(".//section[h2[starts-with(., 'Trend')]]")[0])


def test_history_is_in_order_of_time_whatever_the_offsets(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for run_id, started in (("late", "2026-03-01T10:30:00+01:00"),     # 09:30 UTC
                            ("early", "2026-03-01T10:00:00+01:00"),    # 09:00 UTC
                            ("middle", "2026-03-01T09:15:00+00:00")):
        history.write(reports, {"run_id": run_id, "started": started})
    assert [r["run_id"] for r in history.read(reports)] == ["early", "middle", "late"]


# ---- logs -------------------------------------------------------------------------------

def test_each_log_says_whose_it_is() -> None:
    assert dashboard.whose(L1) == ("L1", "L1 console on p9-qemu7.2 · v1 nested-hv", "l1-gw0-2")
    assert dashboard.whose(L2) == ("L2", "L2 in L1 l1-gw0-2 on p9-qemu7.2 · v1 nested-hv",
                                   "l2-1")
    assert dashboard.whose(LPAR) == ("LPAR", "LPAR console of p10-lpar", "")
    assert dashboard.whose(LPAR_L2) == ("L2", "L2 on the LPAR of p10-lpar", "l2-3")


def test_a_failure_lists_its_logs_by_owner(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    path = _run(reports)
    for log in (L1, L2, LPAR, LPAR_L2):
        (path.parent / "consoles" / f"{log}.log").write_text("boot\n")
    _case(path, "p9-qemu7.2", "nested-hv", "test_l2", "failed", "L2 hung", (L1, L2))
    _case(path, "p10-lpar", "nested-papr", "test_l2", "failed", "L2 gone", (LPAR, LPAR_L2))
    page = _page(reports)
    owners = {}
    for failure in page.xpath(having("div", "failure")):
        items = failure.xpath(having("ul", "logs") + "/li")
        owners[_text(failure.xpath(having("div", "msg"))[0])] = [_text(li) for li in items]
        for link in failure.xpath(having("ul", "logs") + "/li/a"):
            assert (reports / link.get("href")).is_file()
    assert owners == {
        "L2 hung": ["L1 console on p9-qemu7.2 · v1 nested-hv l1-gw0-2",
                    "L2 in L1 l1-gw0-2 on p9-qemu7.2 · v1 nested-hv l2-1"],
        "L2 gone": ["LPAR console of p10-lpar", "L2 on the LPAR of p10-lpar l2-3"]}


# ---- layout -----------------------------------------------------------------------------

def test_trend_labels_keep_clear_of_each_other() -> None:
    for n in range(1, 41):
        records = [{"run_id": f"r{i}", "started": f"2026-03-{1 + i // 5:02d}T{i % 5 * 4:02d}:00:00"
                    f"+01:00", "counts": {"passed": i}} for i in range(n)]
        labels = history.trend(records, f"r{n - 1}").labels
        assert labels[-1].now and labels[-1].title == (
            f"r{n - 1}: started {records[-1]['started']}")
        reach = [history._extent(label.x, label.anchor) for label in labels]
        assert all(left[1] + history.LABEL_GAP <= right[0]
                   for left, right in zip(reach, reach[1:], strict=False)), n
        days = [label.title[-25:-15] for label in labels]
        assert [len(label.text) for label in labels] == [
            5 if i and days[i - 1] == day else 11 for i, day in enumerate(days)]


MEASURE = """<script>
const box = document.querySelector(".matrix-box"), card = document.getElementById("matrix");
const fn = () => box.querySelector("td.fn").getBoundingClientRect().left;
const first = () => box.querySelector("td.cell").getBoundingClientRect().left;
const before = [fn(), first()];
box.scrollLeft = 1e6;
const labels = [...document.querySelectorAll("svg.trend text.axis[text-anchor]")]
  .filter(t => t.querySelector("title")).map(t => t.getBBox()).map(b => [b.x, b.x + b.width]);
document.body.dataset.measured = JSON.stringify({
  overflows: box.scrollWidth > box.clientWidth, scrolled: box.scrollLeft > 0,
  inside: box.getBoundingClientRect().right <= card.getBoundingClientRect().right,
  page: document.documentElement.scrollWidth <= window.innerWidth,
  fn: [before[0], fn()], first: [before[1], first()], labels});
</script></body>"""


def test_five_hosts_at_1280_px_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium not installed")
    reports = tmp_path / "reports"
    for day in range(1, 9):        # a history of runs across days: labels of two lengths
        history.write(reports, {"run_id": f"old{day}", "started": f"2025-12-2{day}T23:5{day}:00",
                                "counts": {"passed": day}})
    path = _run(reports)
    for host in HOSTS:
        for api in ("", *API):
            _case(path, host, api, "test_a_rather_long_test_function_name")
    page = tmp_path / "page.html"
    page.write_text(dashboard.build(reports).read_text().replace("</body>", MEASURE))
    dom = chromium("--window-size=1280,900", "--dump-dom", page.as_uri(),
                   profile=tmp_path / "profile")
    measured = json.loads(html.fromstring(dom.stdout).find("body").get("data-measured"))
    assert measured["overflows"] and measured["scrolled"]          # it scrolls sideways
    assert measured["inside"] and measured["page"]                 # in its card, not the page
    assert measured["fn"][0] == measured["fn"][1]                  # the test column stays
    assert measured["first"][1] < measured["first"][0]            # the cells move
    labels = sorted(measured["labels"])
    assert len(labels) >= 3 and all(a[1] <= b[0] for a, b in zip(labels, labels[1:],
                                                                   strict=False))
