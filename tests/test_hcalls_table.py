"""The hcall case table, the GSB codec and the case scripts, with no L1."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from powernest.hcalls import gsb, numbers
from powernest.hcalls.cases import CASES, case, cases_for
from powernest.hcalls.deviations import HCALL_DEVIATIONS
from powernest.hcalls.language import COMMANDS, MAX_BUFFERS, MAX_SIZE, NESTED_HCALLS
from powernest.hcalls.model import (
    CAP_POWER9,
    CAP_POWER10,
    CAP_POWER11,
    Addr,
    Alloc,
    Bound,
    Call,
    Case,
    Expr,
    Guard,
    Modes,
    Read,
    Role,
    Stamp,
    Var,
    Write,
)
from powernest.hcalls.script import compile_case, labelled
from powernest.hcalls.verdict import Outcome, parse_output, verdict
from powernest.nested import API

IDS = [c.id for c in CASES]
SH: list[str] = (["busybox", "sh"] if shutil.which("busybox")
                 else ["sh"] if shutil.which("sh") else [])


# --- numbers -----------------------------------------------------------------------

def test_numbers_both_ways() -> None:
    assert numbers.opcode("H_GUEST_CREATE") == 0x470
    assert numbers.opcode_name(0xF804) == "H_ENTER_NESTED"
    assert numbers.rc("H_STATE") == -75 and numbers.rc_name(-56) == "H_P3"
    assert numbers.rc_name(-300) == "H_UNSUPPORTED_FLAG(-300)"
    assert numbers.rc("H_UNSUPPORTED_FLAG") == -256
    assert numbers.describe_rc(-79) == "H_INVALID_ELEMENT_ID (-79)"
    assert numbers.describe_rc(-123) == "rc -123"
    for table in (numbers.OPCODES, numbers.RETURN_CODES):
        assert len(set(table.values())) == len(table)


# --- the Guest State Buffer --------------------------------------------------------

def test_element_table_matches_the_document() -> None:
    assert gsb.BY_NAME["CTRL"] == 0x1052 and gsb.BY_NAME["PSPB"] == 0x200E
    assert gsb.BY_NAME["VSR63"] == 0x303F and gsb.BY_NAME["ASDR"] == 0xF003
    assert gsb.spec(0x0005).size == 0x18 and gsb.spec(0x0C00).scope is gsb.Scope.VCPU
    assert all(s.scope is gsb.Scope.GUEST for i, s in gsb.ELEMENTS.items() if 0 < i < 0x0C00)
    assert [i for i, s in gsb.ELEMENTS.items() if s.read_only] == [
        0x0001, 0x0002, 0xF000, 0xF001, 0xF002, 0xF003]
    assert not any(gsb.is_reserved(i) for i in gsb.ELEMENTS)
    assert gsb.is_reserved(0x0C03) and gsb.is_reserved(0x0007)


def test_decode_a_known_buffer() -> None:
    # Header: 2 elements; GPR3 (0x1003, 8 bytes) = 0x1234; CR (0x2000, 4 bytes) = 0x88.
    data = bytes.fromhex("00000002" "10030008" "0000000000001234" "20000004" "00000088"
                         "ffff")   # unused capacity after the last element
    assert gsb.decode(data) == [gsb.Element(0x1003, (0x1234).to_bytes(8, "big")),
                                gsb.Element(0x2000, bytes.fromhex("00000088"))]


@pytest.mark.parametrize("elements", [
    [],
    [gsb.element(0x1003, 0x1234)],
    [gsb.element(0x0005, 0x10000, 52, 1 << 16), gsb.element(0x3000, 1 << 127),
     gsb.Element(0x0000, b"any"), gsb.element(0x0003, 0x0F000006)],
])
def test_encode_decode_round_trip(elements: list[gsb.Element]) -> None:
    data = gsb.encode(elements)
    assert len(data) == 4 + sum(4 + e.size for e in elements)
    assert gsb.decode(data) == elements


def test_decode_refuses_truncated_buffers() -> None:
    whole = gsb.encode([gsb.element(0x1003, 1)])
    for cut in (0, 3, 6, len(whole) - 1):
        with pytest.raises(gsb.GsbError):
            gsb.decode(whole[:cut])
    with pytest.raises(gsb.GsbError):
        gsb.decode(gsb.encode([gsb.element(0x1003, 1)], count=2))


def test_element_sizes_and_problems() -> None:
    with pytest.raises(ValueError):
        gsb.element(0x0005, 1, 2)
    bad = [gsb.element(0x1003, 1), gsb.Element(0x0C03, bytes(8)), gsb.Element(0x1003, bytes(4)),
           gsb.element(0xF000, 0), gsb.element(0x0004, 0)]
    assert [p.split(":")[0] for p in gsb.problems(bad, guest_wide=False, setting=True)] == [
        "1", "2", "3", "4"]


# --- the table ---------------------------------------------------------------------

def test_table_shape() -> None:
    assert len(CASES) >= 40
    assert len(set(IDS)) == len(IDS)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in IDS)
    assert cases_for(API.V1) and cases_for(API.V2)
    assert {c.hcall for c in CASES} >= set(numbers.V1_HCALLS) | set(numbers.V2_HCALLS)


@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_row_is_complete(row: Case) -> None:
    assert row.source and row.summary and row.checks
    assert row.hcall in {c.hcall for c in row.checks}
    assert row.may_crash_l0 == bool(row.crash_evidence)
    assert set(row.deviations) <= {d.id for d in HCALL_DEVIATIONS}
    for call in row.calls:
        assert call.expect.codes and all(numbers.is_known_rc(n) for n in call.expect.codes)
        assert call.hcall in numbers.OPCODES


@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_values_flow_forward(row: Case) -> None:
    saved: set[str] = set()
    buffers: set[str] = set()
    labels: list[str] = []
    for label, step in labelled(row):
        labels.append(label)
        args = step.args if isinstance(step, Call) else ()
        chunks = step.data if isinstance(step, Write) else ()
        for value in (*args, *chunks):
            if isinstance(value, Var):
                assert value.name in saved, f"{label} uses {value.name} before it is saved"
            if isinstance(value, Addr):
                assert value.buf in buffers, f"{label} uses buffer {value.buf} before alloc"
            if isinstance(value, Expr):
                assert set(re.findall(r"{(\w+)}", value.text)) <= saved
        if isinstance(step, Alloc):
            assert step.size <= MAX_SIZE
            buffers.add(step.buf)
        if isinstance(step, Write):
            assert step.buf in buffers
        if isinstance(step, Call) and step.save:
            saved.add(step.save)
        for other in step.expect.distinct_from if isinstance(step, Call) else ():
            assert other in labels
    assert len(set(labels)) == len(labels) and len(buffers) <= MAX_BUFFERS


@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_state_flags_follow_the_steps(row: Case) -> None:
    set_caps = [c for c in row.calls if c.hcall == "H_GUEST_SET_CAPABILITIES"
                and c.expect.accepts(0)]
    if set_caps:
        assert row.leaves_state, "capabilities set: QEMU keeps them until reset"
    if any(c.expect.codes == ("H_SUCCESS",) for c in set_caps):
        assert row.needs_fresh, "a SET that must succeed needs an L0 where none happened"
    if row.api is API.V1:
        assert not any(c.hcall.startswith("H_GUEST_") and c.role is not Role.CHECK
                       for c in row.calls)


# --- scripts -----------------------------------------------------------------------

@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_script_uses_only_the_module_language(row: Case) -> None:
    text = compile_case(row)
    assert text.startswith("#!/bin/sh\n# powernest hcall case " + row.id)
    assert "insmod pnhcall.ko; sh THIS_FILE" in text
    assert " ".join(row.source.split()[:4]) in " ".join(
        line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    commands = [line.split()[1] for line in body if line.startswith("pn ")]
    assert commands and set(commands) <= set(COMMANDS)
    assert sum('>"$P"' in line for line in body) == 1   # only pn() writes to the module
    assert "set -e" not in text and body[-1] == "echo 'PNEND done'"


@pytest.mark.skipif(not SH, reason="no sh here")
@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_script_is_valid_sh(row: Case, tmp_path: Path) -> None:
    path = tmp_path / "case.sh"
    path.write_text(compile_case(row))
    assert subprocess.run([*SH, "-n", str(path)], capture_output=True).returncode == 0


def _run_against_a_file(row: Case, tmp_path: Path) -> str:
    """Run the script with a plain file as the module: each read gives back the command."""
    path, fake = tmp_path / "case.sh", tmp_path / "pnhcall"
    path.write_text(compile_case(row))
    fake.touch()
    done = subprocess.run([*SH, str(path)], capture_output=True, text=True, timeout=60,
                          env={"PNHCALL": str(fake), "PATH": "/usr/bin:/bin"})
    return done.stdout


@pytest.mark.skipif(not SH, reason="no sh here")
def test_script_sends_the_commands(tmp_path: Path) -> None:
    out = _run_against_a_file(case("v1-l0-rejects-guest-create"), tmp_path)
    assert out.splitlines() == ["PNBEGIN v1-l0-rejects-guest-create",
                                "PNSTEP call call 0x470 0x0 0x0 0x0 0x0 0x0", "PNEND done"]
    out = _run_against_a_file(case("v2-create"), tmp_path)   # no rc: setup stops at once
    assert out.splitlines()[-2:] == ["PNSTEP get-caps call 0x460 0x0",
                                     "PNEND setup-failed get-caps"]


TB0, TB1 = 0x1000, 0x2000       # the timebase around every synthetic call


def _kept_values(row: Case) -> dict[tuple[str, str], int]:
    """Values for the fields a row only keeps, chosen to meet the row's bounds."""
    kept = {}
    for step in row.steps:
        if isinstance(step, Bound):
            low = step.low if isinstance(step.low, int) else TB0 if step.low else None
            kept[step.value.step, step.value.key] = (TB0 if low is None else low) + step.shift
    return kept


def _read_result(label: str, read: Read, kept: dict[tuple[str, str], int]) -> str:
    if read.elements:
        return gsb.encode(gsb.Element(i, v) for i, v in read.elements).ljust(read.length,
                                                                             b"\0").hex()
    data = bytearray(read.length)
    for f in read.fields:
        want = f.want[0] if isinstance(f.want, tuple) else f.want
        value = kept.get((label, f.name), 0) if want is None else want
        data[f.offset - read.offset:f.offset - read.offset + f.size] = value.to_bytes(
            f.size, "little" if f.little else "big")
    return data.hex()


GENERATION = 10    # the synthetic L1's processor: POWER10, offered the POWER9 and POWER10 modes


def _synthetic(row: Case, change: dict[str, str] | None = None, stop: int | None = None) -> str:
    """The output of a row's script on an L0 that does all the row requires."""
    lines = [f"PNBEGIN {row.id}", "[  12.3] some kernel line"]
    kept = _kept_values(row)
    modes = {s.call: CAP_POWER9 | CAP_POWER10 for s in row.steps if isinstance(s, Modes)}
    for n, (label, step) in enumerate(labelled(row)):
        if stop is not None and n == stop:
            return "\n".join(lines)
        if isinstance(step, Bound):
            continue
        if isinstance(step, Alloc):
            result = f"addr=0x{0x100000 * (n + 1):x} size={step.size}"
        elif isinstance(step, Write | Guard):
            result = "ok"
        elif isinstance(step, Stamp):
            result = f"tb={TB0:#x}"
        elif isinstance(step, Read):
            result = _read_result(label, step, kept)
        elif isinstance(step, Modes):
            result = f"generation={GENERATION} pvr=0080"
        else:
            regs = {"r4": modes[label]} if label in modes else {}
            regs.update((reg, want[0] if isinstance(want, tuple) else want)
                        for reg, want in step.expect.regs)
            code = numbers.rc(step.expect.codes[0])
            result = f"rc={code} " + " ".join(
                f"r{i}=0x{regs.get(f'r{i}', n + i if i == 4 else 0):x}" for i in range(4, 13))
            result += f" tb0={TB0:#x} tb1={TB1:#x} l1=ok"
        lines.append(f"PNSTEP {label} {(change or {}).get(label, result)}")
    return "\n".join([*lines, "PNEND done"])


@pytest.mark.parametrize("row", CASES, ids=IDS)
def test_output_round_trip_matches(row: Case) -> None:
    run = parse_output(_synthetic(row))
    assert run.case_id == row.id and run.end == "done"
    assert verdict(row, run).outcome is Outcome.MATCHES, verdict(row, run)


def test_verdicts_name_the_codes() -> None:
    row = case("v2-create-vcpu-out-of-range")
    got = verdict(row, parse_output(_synthetic(row, {"create-vcpu-2048-guest": "rc=-77 r4=0x0"})))
    assert got.outcome is Outcome.DIFFERS
    assert "required H_P3 (-56), observed H_IN_USE (-77)" in str(got)
    regs = case("v2-set-state-bad-second-element")
    got = verdict(regs, parse_output(_synthetic(regs, {"set": "rc=-79 r4=0x0"})))
    assert got.outcome is Outcome.DIFFERS and "required R4=0x1, observed 0x0" in str(got)


def test_verdicts_for_runs_that_did_not_finish() -> None:
    row = case("v2-create-vcpu-not-sequential")
    failed = _synthetic(row).replace("PNEND done", "PNEND setup-failed create-guest")
    assert verdict(row, parse_output(failed)).outcome is Outcome.SETUP_FAILED
    died = verdict(row, parse_output(_synthetic(row, stop=3)))
    assert died.outcome is Outcome.INCOMPLETE and "assert(vcpuid" in str(died)
    refused = verdict(row, parse_output(_synthetic(row, {"create-vcpu-5-guest": "error: busy"})))
    assert refused.outcome is Outcome.SETUP_FAILED


def test_the_module_makes_every_hcall_of_the_table_without_being_told() -> None:
    nested = {numbers.opcode(n) for n in (*numbers.V1_HCALLS, *numbers.V2_HCALLS)}
    assert nested | {numbers.opcode("H_GUEST_COPY_MEMORY")} == set(NESTED_HCALLS)
    assert {call.opcode for row in CASES for call in row.calls} <= set(NESTED_HCALLS)


@pytest.mark.parametrize(("mode", "offered", "found"), [
    ("generation=10 pvr=0080", CAP_POWER9 | CAP_POWER10, ""),
    ("generation=10 pvr=0080", CAP_POWER10, ""),
    ("generation=10 pvr=0080", CAP_POWER9 | CAP_POWER10 | CAP_POWER11,
     "offers the POWER11 mode, newer than the L1's POWER10 processor"),
    ("generation=10 pvr=0080", CAP_POWER9, "lacks the L1's own POWER10 mode"),
    ("generation=11 pvr=0082", CAP_POWER9 | CAP_POWER10, "lacks the L1's own POWER11 mode"),
    ("generation=9 pvr=004e", CAP_POWER9 | CAP_POWER10,
     "offers the POWER10 mode, newer than the L1's POWER9 processor"),
    # an LPAR in POWER9 compatibility mode on a POWER10: a POWER10 mode may be offered
    ("generation=9 pvr=0080", CAP_POWER9 | CAP_POWER10, ""),
    ("generation=9 pvr=0080", CAP_POWER10, "lacks the L1's own POWER9 mode"),
])
def test_a_processor_dependent_row_is_judged_by_the_l1s_processor(
        mode: str, offered: int, found: str) -> None:
    row = case("v2-get-capabilities-processor-mode")
    out = _synthetic(row, {"get-caps": f"rc=0 r4={offered:#x} " + " ".join(
        f"r{i}=0x0" for i in range(5, 13)) + " tb0=0x1 tb1=0x2 l1=ok", "modes": mode})
    judged = verdict(row, parse_output(out))
    if found:
        assert judged.outcome is Outcome.DIFFERS and found in judged.details[0], judged
    else:
        assert judged.outcome is Outcome.MATCHES, judged


def test_the_script_reads_the_processor_generation_as_linux_prints_it(tmp_path: Path) -> None:
    script = compile_case(case("v2-get-capabilities-processor-mode"))
    line = next(x for x in script.splitlines() if x.startswith("R=\"generation="))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu\t\t: POWER10 (architected), altivec supported\n"
                       "clock\t\t: 1000.000000MHz\nrevision\t: 2.0 (pvr 0080 1200)\n")
    said = subprocess.run(["sh", "-c", f"{line.replace('/proc/cpuinfo', str(cpuinfo))}; "
                           'echo "$R"'], capture_output=True, text=True, check=True)
    assert said.stdout.strip() == "generation=10 pvr=0080"
