"""The README's layout is true to the tree: every top-level entry and every module of
the library is listed at its place, and nothing listed is gone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION_COLUMN = 23   # where the lines' descriptions (and their continuations) start


def listed() -> set[str]:
    """The paths the README's layout block names, from its indentation (2 a level)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"^## Layout\n.*?^```\n(.*?)^```", text, re.M | re.S)
    assert block, "README.md has no layout block"
    paths, parents = set(), []
    for line in block[1].splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent >= DESCRIPTION_COLUMN:
            continue   # a description's continuation
        name = line.split()[0]
        level = indent // 2
        parents = parents[:level]
        path = "".join(parents) + name
        paths.add(path.rstrip("/"))
        if name.endswith("/"):
            parents.append(name)
    return paths


def test_every_top_level_entry_and_module_is_listed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    top = {p.split("/")[0] for p in tracked} - {"README.md", ".gitignore", ".ci"}
    top |= {p for p in tracked if p.startswith(".ci/")}
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "lib" / "powernest").rglob("*.py")
               if p.name != "__init__.py"}
    names = listed()
    names |= {str(parent) for name in names for parent in Path(name).parents}
    assert sorted(top - names) == []
    assert sorted(modules - names) == []


def test_nothing_listed_is_gone() -> None:
    assert sorted(p for p in listed() if not (ROOT / p).exists()) == []
