"""ci/gitlab-ci.yml run by a GitLab pipeline engine (gitlab-ci-local, shell executor,
artifacts isolated as a runner's): two shard jobs side by side, then the report job
that joins them, against an inventory of two emulated hosts.  Its merged junit.xml
must hold the cases and outcomes of one unsharded run, and every attachment must
resolve from the report job's workspace."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml

from powernest.lab import default_cache

ROOT = Path(__file__).resolve().parent.parent
ENGINE = sorted(ROOT.glob(".tools/gitlab-ci-local-*/node_modules/.bin/gitlab-ci-local"))
# A few cases per host: L1 boots, an hcall row that matches and one with a known deviation.
STRAY_WAIT = 15   # s: a QEMU stopped as the last job ended may take a moment to exit
SELECTION = "-k 'test_l1_boots or v2-get-capabilities or v2-set-capabilities-twice'"
HOSTS = [{"name": "gl-p10", "kind": "tcg", "cpu": "power10", "apis": ["nested-papr"]},
         {"name": "gl-p9", "kind": "tcg", "cpu": "power9", "apis": ["nested-papr"]}]
_JOB_TIME = re.compile(r"^(shard: \[\d/\d\]|report)\s+finished in ([\d.]+) (m?s)$", re.M)


def _workspace(dest: Path) -> Path:
    """The tracked files of this tree as they are now, committed in a repository of
    their own: what a runner checks out."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=powernest", "-c", "user.email=powernest@localhost"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "tree"]):
        subprocess.run([*git, *argv], cwd=dest, check=True)
    return dest


def _outcomes(junit: Path) -> dict[str, str]:
    """Each case's outcome in a junit.xml: passed, failure, error, skipped."""
    found = {}
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            kinds = [type(r).__name__.lower() for r in case.result]
            found[f"{case.classname}::{case.name}"] = kinds[0] if kinds else "passed"
    return found


def test_the_gitlab_pipeline_shards_and_joins_a_run(tmp_path: Path) -> None:
    assert ENGINE, "gitlab-ci-local is missing: make test installs it (.tools/)"
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": HOSTS}))
    repo = _workspace(tmp_path / "repo")
    started = time.monotonic()
    pipeline = subprocess.run(
        [str(ENGINE[-1]), "--file", "ci/gitlab-ci.yml", "--shell-isolation",
         "--no-artifacts-to-source",
         "--variable", f"INVENTORY={inventory}", "--variable", f"PYTEST_ARGS={SELECTION}",
         "--variable", f"POWERNEST_CACHE={default_cache()}"],   # the lab this run built
        cwd=repo, capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - started
    log = pipeline.stdout + pipeline.stderr
    (tmp_path / "pipeline.log").write_text(log)
    jobs = {job: float(n) / (1000 if unit == "ms" else 1)
            for job, n, unit in _JOB_TIME.findall(log)}
    print(f"pipeline: {took:.0f} s; jobs: {jobs}")
    assert pipeline.returncode == 0, log[-5000:]
    assert set(jobs) == {"shard: [1/2]", "shard: [2/2]", "report"}, log[-3000:]
    # side by side: the pipeline took less than its jobs one after another
    assert took < sum(jobs.values()), jobs

    artifacts = repo / ".gitlab-ci-local" / "artifacts" / "report"
    merged = sorted(artifacts.glob("reports/*/junit.xml"))
    assert len(merged) == 1, sorted(str(p) for p in artifacts.rglob("*"))[:50]
    text = merged[0].read_text()
    attachments = re.findall(r"\[\[ATTACHMENT\|(.+?)\]\]", text)
    assert attachments and all((artifacts / a).is_file() for a in attachments), [
        a for a in attachments if not (artifacts / a).is_file()]

    unsharded = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites", "-q",
         "--inventory", str(inventory), "--reports", str(tmp_path / "unsharded"),
         "-k", SELECTION.split("'")[1]], cwd=ROOT, capture_output=True, text=True)
    assert unsharded.returncode == 0, unsharded.stdout[-3000:]
    one_run = _outcomes(next((tmp_path / "unsharded").glob("*/junit.xml")))
    pipeline_run = _outcomes(merged[0])
    print(f"cases: {len(pipeline_run)} joined, {len(one_run)} in one run; outcomes "
          f"{sorted(set(pipeline_run.values()))}")
    assert pipeline_run == one_run
    assert {"passed", "skipped"} <= set(one_run.values()), one_run


@pytest.fixture(autouse=True)
def _no_stray_guests() -> Iterator[None]:
    """The jobs' L1s are gone once the pipeline is: no QEMU of theirs is left (one that
    was stopped as the last job ended has a few seconds to exit)."""
    yield
    for _ in range(STRAY_WAIT):
        left = subprocess.run(["pgrep", "-af", "pn\\..*gl-p"], capture_output=True, text=True)
        if not left.stdout.strip():
            return
        time.sleep(1)
    assert not left.stdout.strip(), left.stdout
