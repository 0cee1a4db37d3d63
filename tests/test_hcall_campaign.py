"""Hcall campaigns: programs drawn from a seed, crash keys, minimizing, and a short
campaign on the lab that finds, deduplicates and minimizes a crash of QEMU's L0 whose
reproducer replays it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from powernest.hcalls import gsb
from powernest.hcalls.campaign import Campaign, Death, crash_key, slug
from powernest.hcalls.model import Alloc, Call, Stamp, Write, gsb_chunks
from powernest.hcalls.programs import (
    Programs,
    ProgramStep,
    parse_gsb,
    program,
    seeds,
)
from powernest.hcalls.runner import call_in_flight, in_flight
from powernest.hcalls.script import compile_case
from powernest.hcalls.verdict import parse_output
from powernest.lab import LabImages
from powernest.nested import API

POWERNEST = str(Path(sys.executable).parent / "powernest")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("api", list(API))
def test_the_same_seed_gives_the_same_programs(api: API) -> None:
    first, again, other = Programs(api, 7), Programs(api, 7), Programs(api, 8)
    drawn = [first.next() for _ in range(200)]
    assert drawn == [again.next() for _ in range(200)]
    assert drawn != [other.next() for _ in range(200)]
    assert len(set(drawn)) > 150       # mutated, not the seeds over and over


@pytest.mark.parametrize("api", list(API))
def test_programs_compile_to_scripts_and_mutate_their_gsbs(api: API) -> None:
    programs = Programs(api, 1)
    compiled = 0
    for n in range(300):
        steps = programs.next()
        assert all(isinstance(s, Alloc | Write | Call | Stamp) for s in steps)
        try:
            script = compile_case(program(api, f"p{n}", steps))
        except (ValueError, KeyError):
            continue
        compiled += 1
        assert script.startswith("#!/bin/sh") and "PNBEGIN p" in script
    assert compiled > 250
    if api is API.V2:
        table = {tuple(s) for s in seeds(api)}
        gsbs = [s for steps in (programs.next() for _ in range(300)) if steps not in table
                for s in steps if isinstance(s, Write) and s.buf == "gsb"]
        counts = [parse_gsb(w.data) for w in gsbs]
        assert any(c is None for c in counts), "no GSB whose count or sizes disagree"


def test_a_gsb_of_the_table_parses_and_encodes_back() -> None:
    writes = [s for steps in seeds(API.V2) for s in steps
              if isinstance(s, Write) and s.buf == "gsb"]
    assert len(writes) > 100
    for write in writes:
        elements = parse_gsb(write.data)
        if elements is not None:
            assert gsb_chunks(elements) == write.data
    assert parse_gsb((gsb.HEADER.pack(2), gsb.ELEMENT_HEADER.pack(0x1003, 8), bytes(8))) is None


@pytest.mark.parametrize(("said", "ended", "key"), [
    (["../hw/ppc/spapr_nested.c:600: get_vcpu_state_ptr: Assertion `x' failed."],
     "killed by SIGABRT", "get_vcpu_state_ptr (spapr_nested.c:600)"),
    (["ERROR:../hw/ppc/spapr_nested.c:712:copy_state_proctbl: code should not be reached"],
     "killed by SIGABRT", "copy_state_proctbl (spapr_nested.c:712)"),
    (["SUMMARY: AddressSanitizer: heap-use-after-free ../hw/ppc/spapr_nested.c:1501:9 in "
      "h_guest_run_vcpu"], "exited with status 1",
     "AddressSanitizer heap-use-after-free in h_guest_run_vcpu (spapr_nested.c:1501)"),
    (["SUMMARY: AddressSanitizer: FPE (/lib/x86_64-linux-gnu/libglib-2.0.so.0+0x41677) in "
      "g_hash_table_lookup"], "exited with status 1",
     "AddressSanitizer FPE in g_hash_table_lookup (libglib-2.0.so.0)"),
    (["../hw/ppc/spapr_nested.c:88:5: runtime error: shift exponent 64 is too large"],
     "killed by SIGABRT", "UBSan shift exponent 64 is too large (spapr_nested.c:88)"),
    ([], "killed by SIGSEGV", "killed by SIGSEGV in H_GUEST_SET_STATE"),
])
def test_a_crash_is_keyed_by_qemus_own_words(said: list[str], ended: str, key: str) -> None:
    assert crash_key(said, ended, "H_GUEST_SET_STATE") == key
    assert re.fullmatch(r"[\w.-]+", slug(key))


def test_the_call_in_flight_is_where_a_death_cuts_its_program() -> None:
    steps = [Call("a", "H_GUEST_GET_CAPABILITIES", (0,)), Call("b", "H_GUEST_CREATE", (0, 1)),
             Call("c", "H_GUEST_DELETE", (0, 1))]
    case = program(API.V2, "p", steps)
    run = parse_output("PNBEGIN p\nPNSTEP a rc=0 r4=0x6000000000000000 l1=ok\n")
    assert call_in_flight(case, run) == 1
    assert in_flight(case, run) == "H_GUEST_CREATE(0x0, 0x1) [0x470, step b]"
    assert call_in_flight(case, parse_output("PNBEGIN p\n" + "".join(
        f"PNSTEP {c.label} rc=0 l1=ok\n" for c in steps))) is None


class _FakeL0(Campaign):
    """A campaign whose L0 dies (key "boom") when a program calls both H_GUEST_CREATE and
    H_GUEST_DELETE with a guest ID argument of 5, the create first."""

    def __init__(self) -> None:
        self.runs = 0

    def _execute(self, name: str, steps: Sequence[ProgramStep],
                 fresh: bool = False) -> Death | None:
        self.runs += 1
        calls = [s for s in steps if isinstance(s, Call)]
        create = [i for i, c in enumerate(calls) if c.hcall == "H_GUEST_CREATE"]
        delete = [i for i, c in enumerate(calls) if c.hcall == "H_GUEST_DELETE"
                  and c.args[1:2] == (5,)]
        if create and delete and create[0] < delete[-1]:
            return Death("boom", "", "")
        return None


def test_minimizing_keeps_only_what_the_death_needs() -> None:
    noise = [Call(f"noise-{n}", "H_GUEST_GET_CAPABILITIES", (n, 7)) for n in range(6)]
    steps = [*noise[:3], Call("c", "H_GUEST_CREATE", (3, 9)), *noise[3:],
             Call("d", "H_GUEST_DELETE", (1, 5))]
    fake = _FakeL0()
    small, reproduces = fake.minimize(steps, "boom")
    assert reproduces
    assert [(c.hcall, c.args) for c in small if isinstance(c, Call)] == [
        ("H_GUEST_CREATE", (0, 0)), ("H_GUEST_DELETE", (0, 5))]
    assert not fake.minimize(steps[:3], "boom")[1]


def test_a_campaign_on_the_lab_finds_dedupes_and_minimizes_a_known_crash(
        tmp_path: Path, lab: LabImages) -> None:
    out = tmp_path / "campaign"
    done = subprocess.run([POWERNEST, "hcall", "campaign", "--host", "p10-emulated",
                           "--api", "nested-papr", "--seed", "1", "--programs", "12",
                           "--budget", "10m", "--out", str(out), "--inventory",
                           str(REPO / "hosts.yaml")],
                          capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["programs"] == 12 and summary["baseline_s"] > 0
    table_keys = summary["table_keys"]
    # the table's rows find QEMU 10.0.2's linear vCPU ID assertion, among others
    assert any("h_guest_create_vcpu (spapr_nested.c:" in k for k in table_keys), table_keys
    crashes = {c["key"]: c for c in summary["crashes"]}
    known = [c for c in crashes.values() if c["table_rows"]]
    assert known, crashes
    assert any(c["count"] > 1 for c in crashes.values()), "no key found twice"
    for crash in known:
        assert crash["reproduces"] and crash["steps_after"] < crash["steps_before"]
        folder = out / crash["folder"]
        assert crash["key"].split(" (")[0] in (folder / "qemu.txt").read_text()
        assert (folder / "original.sh").is_file()
    crash = known[0]
    replayed = subprocess.run([POWERNEST, "hcall", "replay",
                               str(out / crash["folder"] / "reproducer.sh"),
                               "--dir", str(tmp_path / "replays")],
                              capture_output=True, text=True, timeout=600)
    assert replayed.returncode == 2, replayed.stdout + replayed.stderr
    assert crash["key"].split(" (")[0] in replayed.stdout
