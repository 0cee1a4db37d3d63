"""The spec's clauses as data stay true to the table, and a run's coverage of them reads
right: every clause is checked by a row or listed as not checked with its reason, every
row names only clauses that exist, of its own API."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from powernest.cli import main
from powernest.hcalls.cases import CASES, case
from powernest.hcalls.clauses import (
    CLAUSES,
    DEVIATION_CLAUSES,
    ROW_CLAUSES,
    UNCOVERED,
    rows_checking,
)
from powernest.hcalls.deviations import HCALL_DEVIATIONS
from powernest.reporting import coverage, journal

IDS = {c.id: c for c in CLAUSES}


def test_clause_ids_are_unique_and_sourced() -> None:
    assert len(IDS) == len(CLAUSES)
    assert all(c.text and c.source.startswith("kvm-nested.rst, ") for c in CLAUSES)


def test_every_row_names_its_clauses_and_only_existing_ones_of_its_api() -> None:
    assert set(ROW_CLAUSES) == {c.id for c in CASES}
    wrong = {(row, cid) for row, ids in ROW_CLAUSES.items() for cid in ids
             if cid not in IDS or IDS[cid].api is not case(row).api}
    assert sorted(wrong) == []


def test_a_clause_no_row_checks_is_listed_with_the_reason() -> None:
    unchecked = {c.id for c in CLAUSES if not rows_checking(c.id)}
    assert set(UNCOVERED) == unchecked
    assert all(reason.strip() for reason in UNCOVERED.values())


def test_a_deviation_names_the_clauses_it_breaks_among_those_its_rows_check() -> None:
    assert set(DEVIATION_CLAUSES) == {d.id for d in HCALL_DEVIATIONS}
    for deviation, ids in DEVIATION_CLAUSES.items():
        rows = [c.id for c in CASES if deviation in c.deviations]
        named = {cid for row in rows for cid in ROW_CLAUSES[row]}
        assert set(ids) <= named, (deviation, sorted(set(ids) - named))


def _run(tmp_path: Path, outcomes: dict[str, tuple[str, str]]) -> Path:
    """A run directory whose journal holds `outcomes` (row: outcome, message) on p10/v2."""
    path = tmp_path / journal.JOURNAL
    journal.append(path, "run", run_id="r1", started="now")
    for row, (outcome, message) in outcomes.items():
        nodeid = f"suites/test_hcalls.py::test_hcall[p10-nested-papr-{row}]"
        journal.append(path, "start", nodeid=nodeid, name=nodeid, classname="c",
                       suite="p10/nested-papr", properties={"hcall_case": row})
        journal.append(path, "end", nodeid=nodeid, outcome=outcome, message=message)
    return tmp_path


def test_coverage_says_conforms_deviates_differs_not_run_and_not_checked(
        tmp_path: Path) -> None:
    run_dir = _run(tmp_path, {
        "v2-get-capabilities": ("passed", ""),
        "v2-get-capabilities-processor-mode": ("passed", ""),
        "v2-set-capabilities-reserved-flags": ("failed", "required H_PARAMETER"),
        "v2-set-capabilities-mode-not-offered": (
            "xfailed", "known deviation qemu-v2-set-capabilities-unoffered: ..."),
        "v2-create": ("skipped", "no v2 here"),
    })
    cov = coverage.coverage(journal.read(run_dir / journal.JOURNAL))
    assert cov.targets == ["p10/nested-papr"]
    assert all(c.api.value == "nested-papr" for c in cov.clauses)

    def status(clause_id: str) -> str:
        cell = cov.cell(IDS[clause_id], "p10/nested-papr")
        assert cell is not None
        return cell.status

    assert status("v2-get-capabilities-cpu-versions") == coverage.CONFORMS
    assert status("v2-set-capabilities-flags-reserved") == coverage.DIFFERS
    unchecked = next(iter(UNCOVERED))
    if IDS[unchecked].api.value == "nested-papr":
        assert status(unchecked) == coverage.NOT_CHECKED
    broken = DEVIATION_CLAUSES["qemu-v2-set-capabilities-unoffered"]
    assert broken and all(status(cid) == coverage.DEVIATES for cid in broken)
    kept = set(ROW_CLAUSES["v2-set-capabilities-mode-not-offered"]) - set(broken)
    assert all(status(cid) == coverage.CONFORMS for cid in kept)   # checked, not broken
    assert any(status(cid) == coverage.NOT_RUN for cid in ROW_CLAUSES["v2-create"])
    out = CliRunner().invoke(main, ["hcall", "coverage", str(run_dir)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("p10/nested-papr: ")
    assert "v2-get-capabilities-cpu-versions" in out.output
