"""Hcall-level conformance of the two POWER nested APIs.

A kernel module in the L1 (`pnhcall.ko`, `/proc/pnhcall`) issues raw hcalls
to the L0.  This package is the pure-Python side: hcall numbers and return
codes (`numbers`), the Guest State Buffer format (`gsb`), the table of cases
with their sources (`cases`, built from `cases_v1`, `cases_v2`,
`cases_v2_state` on the data model in `model`), and the compiler of one case
into a busybox sh script that doubles as its reproducer (`script`).
"""
