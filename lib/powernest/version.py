"""Which powernest ran a run: its checkout's commit, and a digest of its uncommitted
changes, so that the dashboard can compare runs of the same code."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from powernest import __version__

_CHECKOUT = Path(__file__).resolve().parents[2]


def code_version() -> str:
    """`<commit>` of the checkout, `<commit>+<digest of git diff HEAD>` when it has
    uncommitted changes; `powernest <version>` where it is no git checkout."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD").decode().strip()
        diff = _git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return f"powernest {__version__}"
    return f"{head}+{hashlib.sha256(diff).hexdigest()[:8]}" if diff else head


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True,
                          check=True, timeout=30).stdout
