"""Shards: CI jobs each driving some hosts of one run, joined by `powernest report merge`.

End to end, two controllers (`--shard 1/2`, `--shard 2/2`) run side by side
on the hosts of one inventory and are merged; the merge must give the cases
and outcomes of one controller driving both hosts.  The other tests build
shard directories from journals written here: which run a shard directory
gives, and what becomes of a case two shards disagree on.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from junit_xsd import validate
from powernest.cli import main
from powernest.lab import LabImages
from powernest.reporting import journal, junit, merge
from runs import PYTEST, REPO, outcomes

# Two emulated hosts, one L1 each: the caps checks (no boot) and one L1 boot per host.
INVENTORY = """hosts:
  - {name: p9-shards, kind: tcg, cpu: power9, apis: [nested-hv]}
  - {name: p10-shards, kind: tcg, cpu: power10, apis: [nested-papr]}
"""
SELECTION = ("-k", "test_caps or test_l1_boots")


def controller(tmp_path: Path, reports: str, run_id: str, *args: str) -> subprocess.Popen[str]:
    """A pytest controller of the suites on the inventory, its run in tmp_path/reports."""
    return subprocess.Popen(
        [*PYTEST, str(REPO / "suites"), "--inventory", str(tmp_path / "hosts.yaml"),
         "--reports", str(tmp_path / reports), "--run-id", run_id, "-q", *SELECTION, *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]


def cases_of(run_dir: Path) -> dict[str, str]:
    """Case name -> outcome, from a run's journal."""
    return {c.name: c.outcome for c in journal.read(run_dir / journal.JOURNAL).cases.values()}


def test_two_controllers_merged_equal_one_run_of_both(tmp_path: Path, lab: LabImages) -> None:
    (tmp_path / "hosts.yaml").write_text(INVENTORY)
    shards = [controller(tmp_path, f"ci/shard-{k}", "pipeline-7", "--shard", f"{k}/2")
              for k in (1, 2)]
    for proc in shards:
        finished(proc)
    finished(controller(tmp_path, "single", "one"))

    hosts = [journal.read(tmp_path / f"ci/shard-{k}/pipeline-7" / journal.JOURNAL)
             .info["hosts"] for k in (1, 2)]
    assert hosts == [["p10-shards"], ["p9-shards"]]   # by name, every 2nd from the K-th

    ci = tmp_path / "ci"
    done = CliRunner().invoke(main, ["report", "merge", str(ci / "shard-1"), str(ci / "shard-2"),
                                     "-o", str(ci), "--attachments-base", str(tmp_path)])
    assert done.exit_code == 0 and "warning" not in done.output, done.output
    merged, single = ci / "pipeline-7", tmp_path / "single" / "one"
    assert (ci / "latest").resolve() == merged.resolve()
    page = (ci / "index.html").read_text()
    assert "p9-shards" in page and "p10-shards" in page
    validate(merged / "junit.xml")
    assert junit.check_ci(merged / "junit.xml", tmp_path) == []   # tmp_path: the CI workspace
    assert outcomes(merged / "junit.xml") == outcomes(single / "junit.xml")
    assert cases_of(merged) == cases_of(single)
    assert sum(o == "passed" for o in cases_of(merged).values()) == 26   # 12 caps + 1 boot, x2
    run = journal.read(merged / journal.JOURNAL)
    assert sorted(run.info["hosts"]) == ["p10-shards", "p9-shards"]
    logs = [a for c in run.cases.values() for a in c.attachments]
    assert len(logs) == 2 and all((merged / a).is_file() for a in logs)


# ---- shard directories written here -----------------------------------------------

def fake_run(reports: Path, run_id: str, cases: dict[str, str],
             started: str = "2026-01-01T10:00:00", logs: dict[str, str] | None = None,
             at: int | None = None, shard: str = "") -> Path:
    """A run directory as a controller writes it.

    `cases` maps a case name (`test_x[<host>-nested-hv]`) to its outcome;
    `logs` maps a console log's name to its text, attached to its host's cases;
    with `at`, the n-th event happens at second `at + 2n`; `shard` is its --shard.
    """
    run = reports / run_id
    (run / "consoles").mkdir(parents=True)
    path = run / journal.JOURNAL
    events = 0

    def event(kind: str, **data: object) -> None:
        nonlocal events
        when = {} if at is None else {"time": f"2026-01-01T10:00:{at + 2 * events:02d}+00:00"}
        journal.append(path, kind, **data, **when)
        events += 1

    def host(name: str) -> str:
        return name.partition("[")[2].split("-")[0]

    event("run", run_id=run_id, hosts=list(dict.fromkeys(map(host, cases))), started=started,
          controller=f"ctl-{reports.name}", **({"shard": shard} if shard else {}))
    for name, text in (logs or {}).items():
        (run / "consoles" / name).write_text(text)
    for name, outcome in cases.items():
        nodeid = f"suites/test_x.py::{name}"
        event("start", nodeid=nodeid, name=name, classname="suites.test_x",
              suite=f"{host(name)}/nested-hv", properties={"host": host(name), "run_id": run_id})
        for log in logs or {}:
            if f".{host(name)}-" in log:
                event("attach", nodeid=nodeid, path=f"consoles/{log}")
        if outcome != "interrupted":
            event("end", nodeid=nodeid, outcome=outcome, duration=1.0,
                  message="" if outcome == "passed" else f"{outcome} in {reports.name}",
                  details="" if outcome == "passed" else "E   assert False",
                  properties={"l0": "QEMU 9"})
    return run


def merge_cli(*args: str | Path) -> tuple[int, str]:
    done = CliRunner().invoke(main, ["report", "merge", *map(str, args)])
    return done.exit_code, done.output


def test_a_shard_directory_gives_the_run_asked_for_else_its_newest(tmp_path: Path) -> None:
    shard = tmp_path / "shard-1"
    old = fake_run(shard, "7", {"test_a[h1-nested-hv]": "passed"}, "2026-01-02T09:00:00")
    new = fake_run(shard, "6", {"test_a[h1-nested-hv]": "failed"}, "2026-01-02T10:00:00")
    (shard / "latest").symlink_to("7")
    assert merge.pick(shard) == new            # started last, whatever the names
    assert merge.pick(shard, "7") == old
    assert merge.pick(old, "6") == old         # a run directory is taken as it is
    with pytest.raises(merge.MergeError, match=r"no run 8 \(runs there: 6, 7\)"):
        merge.pick(shard, "8")
    with pytest.raises(merge.MergeError, match="no run directory"):
        merge.pick(tmp_path / "shard-1" / "7" / "consoles")

    code, out = merge_cli(shard, "-o", tmp_path / "out")
    assert code == 0, out
    assert (tmp_path / "out" / "6" / "junit.xml").is_file()
    code, out = merge_cli(tmp_path / "out", "-o", tmp_path / "again")   # merges are no shards
    assert code == 1 and "no run directory" in out


def test_a_case_with_two_outcomes_is_an_error_naming_both(tmp_path: Path) -> None:
    ci = tmp_path / "ci"
    logs = {"pn.9.h1-nested-hv.l1-1.log": "boot"}
    fake_run(ci / "shard-1", "9", {"test_a[h1-nested-hv]": "passed",
                                   "test_b[h1-nested-hv]": "passed"}, logs=logs)
    fake_run(ci / "shard-2", "9", {"test_a[h1-nested-hv]": "failed",
                                   "test_c[h2-nested-hv]": "passed"},
             logs={"pn.9.h1-nested-hv.l1-1.log": "panic"})
    code, out = merge_cli(ci / "shard-1", ci / "shard-2", "--run-id", "9", "-o", ci,
                          "--junit-strict")
    assert code == 1
    assert "error: test_a[h1-nested-hv]: two outcomes: passed in" in out
    assert "differs from another shard's: kept as shard-2/consoles/" in out

    run = journal.read(ci / "9" / journal.JOURNAL)
    assert {c.name: c.outcome for c in run.cases.values()} == {
        "test_a[h1-nested-hv]": "error", "test_b[h1-nested-hv]": "passed",
        "test_c[h2-nested-hv]": "passed"}
    case = next(c for c in run.cases.values() if c.name == "test_a[h1-nested-hv]")
    said = f"passed in {ci / 'shard-1' / '9'}, failed in {ci / 'shard-2' / '9'}"
    assert case.message == f"two outcomes in the shards of one run: {said}"
    assert case.properties[merge.OUTCOMES] == said and case.properties["l0"] == "QEMU 9"
    assert "    E   assert False" in case.details          # indented: not the summary
    assert case.attachments == ["consoles/pn.9.h1-nested-hv.l1-1.log",
                                "shard-2/consoles/pn.9.h1-nested-hv.l1-1.log"]
    assert [(ci / "9" / a).read_text() for a in case.attachments] == ["boot", "panic"]
    validate(ci / "9" / "junit.xml", strict=True)
    assert outcomes(ci / "9" / "junit.xml")["test_a[h1-nested-hv]"] == "error"
    assert "two outcomes in the shards of one run" in (ci / "index.html").read_text()


def test_a_case_in_two_shards_with_one_outcome_is_kept_once(tmp_path: Path) -> None:
    ci = tmp_path / "ci"
    for k in (1, 2):
        fake_run(ci / f"shard-{k}", "9", {"test_a[h1-nested-hv]": "failed",
                                          f"test_{k}[h{k}-nested-hv]": "interrupted"})
    code, out = merge_cli(ci / "shard-1", ci / "shard-2", "-o", ci)
    assert code == 0, out
    assert "1 cases ran in several shards with one outcome" in out
    assert cases_of(ci / "9") == {"test_a[h1-nested-hv]": "failed",
                                  "test_1[h1-nested-hv]": "interrupted",
                                  "test_2[h2-nested-hv]": "interrupted"}
    assert outcomes(ci / "9" / "junit.xml")["test_2[h2-nested-hv]"] == "error"


def test_the_merged_journal_is_in_time_order_and_one_run(tmp_path: Path) -> None:
    ci = tmp_path / "ci"
    fake_run(ci / "shard-1", "9", {"test_a[h1-nested-hv]": "passed"}, at=0,
             started="2026-01-01T10:00:00+00:00")
    fake_run(ci / "shard-2", "9", {"test_b[h2-nested-hv]": "skipped"}, at=1,
             started="2026-01-01T09:59:59+00:00")
    code, out = merge_cli(ci / "shard-1", ci / "shard-2", "-o", ci)
    assert code == 0, out
    events = list(journal.events(ci / "9" / journal.JOURNAL))
    times = [e["time"] for e in events[1:]]
    assert times == sorted(times) and len(times) == 4
    assert [e["event"] for e in events[1:]] == ["start", "start", "end", "end"]
    first = events[0]
    assert first["event"] == "run" and first["run_id"] == "9"
    assert first["hosts"] == ["h1", "h2"] and first["started"] == "2026-01-01T09:59:59+00:00"
    assert first["controller"] == "ctl-shard-1,ctl-shard-2"
    assert first["merged_from"] == [str(ci / "shard-1" / "9"), str(ci / "shard-2" / "9")]


def test_shards_of_different_runs_merge_under_the_newest_ones_name(tmp_path: Path) -> None:
    fake_run(tmp_path / "shard-1", "a", {"test_a[h1-nested-hv]": "passed"}, "2026-01-01T10:00:00")
    fake_run(tmp_path / "shard-2", "b", {"test_b[h2-nested-hv]": "passed"}, "2026-01-01T11:00:00")
    code, out = merge_cli(tmp_path / "shard-1", tmp_path / "shard-2", "-o", tmp_path)
    assert code == 0, out
    assert (tmp_path / "latest").resolve().name == "merged-b"
    assert len(cases_of(tmp_path / "merged-b")) == 2


def test_a_shard_without_the_run_is_left_out_and_fails_the_merge(tmp_path: Path) -> None:
    fake_run(tmp_path / "shard-1", "9", {"test_a[h1-nested-hv]": "passed"})
    (tmp_path / "shard-2").mkdir()
    code, out = merge_cli(tmp_path / "shard-1", tmp_path / "shard-2", "--run-id", "9",
                          "-o", tmp_path)
    assert code == 1
    assert f"error: {tmp_path / 'shard-2'}: no run 9 (runs there: none): left out" in out
    assert list(cases_of(tmp_path / "9")) == ["test_a[h1-nested-hv]"]


def test_a_shard_none_of_the_runs_is_fails_the_merge(tmp_path: Path) -> None:
    for k in (1, 3):
        fake_run(tmp_path / f"shard-{k}", "9", {f"test_a[h{k}-nested-hv]": "passed"},
                 shard=f"{k}/3")
    code, out = merge_cli(tmp_path / "shard-1", tmp_path / "shard-3", "-o", tmp_path)
    assert code == 1 and "error: shard 2/3: none of the runs merged" in out
    assert len(cases_of(tmp_path / "9")) == 2
    assert "shard" not in journal.read(tmp_path / "9" / journal.JOURNAL).info


def test_a_merge_replaces_its_previous_self_but_never_a_run(tmp_path: Path) -> None:
    shard = fake_run(tmp_path / "shard-1", "9", {"test_a[h1-nested-hv]": "passed"})
    assert merge_cli(shard, "-o", tmp_path / "out")[0] == 0
    (tmp_path / "out" / "9" / "stale.txt").write_text("")
    assert merge_cli(shard, "-o", tmp_path / "out")[0] == 0
    assert not (tmp_path / "out" / "9" / "stale.txt").exists()

    fake_run(tmp_path / "out2", "9", {"test_z[h9-nested-hv]": "passed"})
    code, out = merge_cli(shard, "-o", tmp_path / "out2")
    assert code == 1 and "a run of its own, not a merge" in out
    code, out = merge_cli(tmp_path / "shard-1", "-o", tmp_path / "shard-1")
    assert code == 1 and "would overwrite a shard it reads" in out
    assert json.loads((shard / journal.JOURNAL).read_text().splitlines()[0])["run_id"] == "9"


def test_xdist_args_count_the_shards_hosts(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n" + "".join(f"  - {{name: h{i}, kind: tcg, cpu: power9, apis: [nested-hv]}}\n"
                             for i in range(5))
        + "  - {name: both, kind: tcg, cpu: power9}\n")

    def args(*extra: str) -> str:
        done = CliRunner().invoke(main, ["inventory", "xdist-args", str(tmp_path / "hosts.yaml"),
                                         *extra])
        assert done.exit_code == 0, done.output
        return done.output.strip()

    cores = os.cpu_count() or 1
    assert args("--hosts", "h0,h1,h2,h3,h4", "--shard", "1/2") == (
        f"-n {min(3, cores)} --dist loadgroup --no-loadscope-reorder" if cores > 1 else "")
    assert args("--hosts", "h0,h1,h2,h3,h4", "--shard", "2/4") == ""   # one target: plain
    # the two targets of one host run side by side (scheduling.run_group)
    assert args("--hosts", "both") == ("-n 2 --dist loadgroup --no-loadscope-reorder"
                                       if cores > 1 else "")
    assert args("--hosts", "h1,h2,h3", "--shard", "3/3") == ""
    bad = CliRunner().invoke(main, ["inventory", "xdist-args", str(tmp_path / "hosts.yaml"),
                                    "--shard", "3/2"])
    assert bad.exit_code == 1 and "expected K/N" in bad.output
