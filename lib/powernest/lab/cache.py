"""The content-addressed lab cache: where images live, their key, and their manifest.

Layout under the cache root:
    apt/              private apt state (lists, sources, dpkg status)
    debs/             downloaded .debs, kept and reused across builds
    lab/<key>/        one complete set of images with its manifest.json
    lab/.build-*      a build in progress (renamed to lab/<key> when complete)

The key is a SHA-256 over the recipe: this package's Python sources, the
files it puts into the images (init scripts, mkself), and pnhcall.ko's source
and cross toolchain (`module.recipe`).  The package list is part of the
sources, so any change to what is built gives a new key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from powernest.lab import module

RECIPE_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
# Uncompressed: an L1 under TCG spent 2 of its 4 s of boot gunzipping its initramfs.
L1_INITRD = "l1.cpio"
L2_INITRD = "l2.cpio"


@dataclass(frozen=True)
class LabImages:
    """A verified set of lab boot images."""

    root: Path
    key: str
    l1_initrd: Path
    l2_initrd: Path
    kernels: dict[str, Path]
    kernel_releases: dict[str, str]
    packages: dict[str, str]
    hcall_module: Path | None = None  # pnhcall.ko for kernels[module.HCALL_SERIES], if built
    hcall_modules: dict[str, Path] = field(default_factory=dict)  # kernel release: its module


def default_cache() -> Path:
    """$POWERNEST_CACHE, else $XDG_CACHE_HOME/powernest, else ~/.cache/powernest."""
    if os.environ.get("POWERNEST_CACHE"):
        return Path(os.environ["POWERNEST_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "powernest"
    return Path.home() / ".cache" / "powernest"


def recipe_files(recipe: Path = RECIPE_DIR) -> list[Path]:
    """The files whose content defines the images: *.py and files/*, sorted."""
    files = [*recipe.glob("*.py"), *(p for p in (recipe / "files").glob("*") if p.is_file())]
    return sorted(files, key=lambda p: p.relative_to(recipe).as_posix())


def recipe_key(recipe: Path = RECIPE_DIR) -> str:
    """SHA-256 over the names and contents of the recipe files, and `module.recipe()`."""
    digest = hashlib.sha256()
    for path in recipe_files(recipe):
        name = path.relative_to(recipe).as_posix().encode()
        data = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name, len(data)) + data)
    digest.update(module.recipe())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_record(path: Path) -> dict[str, int | str]:
    return {"sha256": file_digest(path), "size": path.stat().st_size}


def lab_dir(cache: Path, key: str) -> Path:
    return cache / "lab" / key


def load_lab(root: Path, key: str) -> LabImages | None:
    """The images in `root` if its manifest is for `key` and every file verifies, else None."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        releases = dict(manifest["kernel_releases"])
        required = {L1_INITRD, L2_INITRD, *(f"vmlinux-{series}" for series in releases)}
        if manifest["key"] != key or not required <= manifest["files"].keys():
            return None
        for name, record in manifest["files"].items():
            path = root / name
            if path.stat().st_size != record["size"] or file_digest(path) != record["sha256"]:
                return None
        return LabImages(
            root=root, key=key, l1_initrd=root / L1_INITRD, l2_initrd=root / L2_INITRD,
            kernels={series: root / f"vmlinux-{series}" for series in releases},
            kernel_releases=releases, packages=dict(manifest["packages"]),
            hcall_module=root / module.HCALL_MODULE if module.HCALL_MODULE in manifest["files"]
            else None,
            hcall_modules={release: root / name for series, release in releases.items()
                           if (name := module.hcall_module_file(series, release))
                           in manifest["files"]})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_lab(cache: Path | None = None) -> LabImages | None:
    """The verified, up-to-date images for the current recipe, or None (nothing is built)."""
    key = recipe_key()
    return load_lab(lab_dir(cache or default_cache(), key), key)
