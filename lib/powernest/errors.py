"""The root of powernest's exceptions, and the one that means "not here".

Every error the library raises on purpose is a `PowernestError`: shells and
connections (`ShellError`), consoles (`ConsoleError`), the inventory
(`InventoryError`), the lab build (`LabBuildError`), leases (`LeaseBusy`).
"""

from __future__ import annotations


class PowernestError(Exception):
    """An error of powernest's own; its message says what happened and where."""


class Unavailable(PowernestError):
    """What a case asks for cannot be had on this host; the message is the skip reason."""
