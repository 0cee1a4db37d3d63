"""Debian packages through apt with a private configuration and state.

The archive address comes from this machine's own apt configuration (deb822
`.sources` files and one-line `deb` entries); everything else (sources list,
package lists, cache, dpkg status) lives under a directory of ours, so the
system's apt state is never touched and no root is needed.  The native
architecture is ppc64el, so dependency resolution gives the ppc64el closure.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from powernest.lab.errors import LabBuildError

ARCH = "ppc64el"
ARCHITECTURES = ("amd64", ARCH)
# Debian release suites: an archive serving one of them serves bookworm(-backports) too.
_DEBIAN_SUITE = re.compile(
    r"(bullseye|bookworm|trixie|forky|sid|oldstable|stable|testing|unstable)(-updates|-backports)?")


@dataclass(frozen=True)
class AptSource:
    """One `deb` entry of an apt configuration."""

    uris: tuple[str, ...]
    suites: tuple[str, ...]
    signed_by: str | None
    origin: Path


@dataclass(frozen=True)
class DebFile:
    """A .deb as apt would fetch it: its package, file name, size and SHA256 (if known)."""

    package: str
    filename: str
    size: int
    sha256: str | None


def parse_one_line(text: str, origin: Path) -> list[AptSource]:
    """The `deb` entries of a one-line-style sources.list."""
    sources = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        options: dict[str, str] = {}
        rest = words[1:]
        if rest and rest[0].startswith("["):
            joined = " ".join(rest)
            inside, _, after = joined[1:].partition("]")
            options = dict(o.partition("=")[::2] for o in inside.split())
            rest = after.split()
        if len(rest) >= 2:
            sources.append(AptSource((rest[0],), (rest[1],), options.get("signed-by"), origin))
    return sources


def parse_deb822(text: str, origin: Path) -> list[AptSource]:
    """The enabled `Types: deb` stanzas of a deb822 `.sources` file."""
    sources = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by")
        if signed_by and ("\n" in signed_by or not signed_by.startswith("/")):
            signed_by = None  # an inline key: apt falls back to its trusted keys
        sources.append(AptSource(tuple(fields.get("uris", "").split()),
                                 tuple(fields.get("suites", "").split()), signed_by, origin))
    return sources


def read_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """All `deb` entries of the apt configuration under `etc`, in apt's reading order."""
    sources = []
    main = etc / "sources.list"
    if main.is_file():
        sources += parse_one_line(main.read_text(errors="replace"), main)
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list" and path.is_file():
                sources += parse_one_line(path.read_text(errors="replace"), path)
            elif path.suffix == ".sources" and path.is_file():
                sources += parse_deb822(path.read_text(errors="replace"), path)
    return sources


def debian_archive(etc: Path = Path("/etc/apt")) -> AptSource:
    """The first Debian archive (an entry for a Debian release suite, not a security one)."""
    for source in read_sources(etc):
        if source.uris and any(_DEBIAN_SUITE.fullmatch(s) for s in source.suites):
            return AptSource(source.uris[:1], source.suites, source.signed_by, source.origin)
    raise LabBuildError(
        f"no Debian archive in this machine's apt configuration: none of {etc}/sources.list, "
        f"{etc}/sources.list.d/*.list (one-line `deb URI SUITE ...`) or "
        f"{etc}/sources.list.d/*.sources (deb822 `URIs:`) names a Debian release suite such as "
        "bookworm; add the Debian archive this machine should use there, then build again")


class PrivateApt:
    """apt-get and apt-cache on private state under `state`, for `suites` of one archive."""

    def __init__(self, state: Path, archive: AptSource, suites: Sequence[str]) -> None:
        self.state = state
        for sub in ("lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        options = "arch=" + ",".join(ARCHITECTURES)
        if archive.signed_by:
            options += f" signed-by={archive.signed_by}"
        (state / "sources.list").write_text(
            "".join(f"deb [{options}] {archive.uris[0]} {s} main\n" for s in suites))
        (state / "status").write_text("")

    def options(self) -> list[str]:
        config = {
            "Dir::Etc::sourcelist": self.state / "sources.list",
            "Dir::Etc::sourceparts": "/dev/null",
            "Dir::State::Lists": self.state / "lists",
            "Dir::State::status": self.state / "status",
            "Dir::Cache": self.state / "cache",
            "APT::Architecture": ARCH,
            "Debug::NoLocking": "1",
        }
        if os.geteuid() == 0:
            config["APT::Sandbox::User"] = "root"  # our files need not be readable by _apt
        argv = [f"-o{k}={v}" for k, v in config.items()]
        return argv + ["-oAPT::Architectures::=" + a for a in ARCHITECTURES]

    def call(self, tool: str, args: Sequence[str],
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run apt-get or apt-cache with our options; `LabBuildError` if it fails."""
        argv = [tool, *self.options(), *args]
        try:
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                                  errors="replace", env={**os.environ, "LC_ALL": "C"})
        except OSError as exc:
            raise LabBuildError(f"cannot run {tool} ({exc}); the lab builder needs apt") from exc
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip())[-1500:]
            raise LabBuildError(
                f"`{tool} {' '.join(args)}` failed (exit {done.returncode}): {tail}")
        return done

    def run(self, tool: str, args: Sequence[str], cwd: Path | None = None) -> str:
        """Run apt-get or apt-cache with our options; its stdout."""
        return self.call(tool, args, cwd).stdout

    def update(self) -> list[str]:
        """Refresh the package lists; apt's warnings (it goes on with older lists if it has
        them).  `LabBuildError` if there are no lists at all afterwards."""
        warnings = [line for line in self.call("apt-get", ["-q", "update"]).stderr.splitlines()
                    if line.startswith(("W:", "E:"))]
        if not any((self.state / "lists").glob("*_Packages*")):
            raise LabBuildError(
                "apt fetched no package lists from the Debian archive, and there are none from "
                "an earlier build: " + (" ".join(warnings) or "no reason given")
                + "; check this machine's network access to the archive")
        return warnings

    def pkgnames(self, prefix: str) -> list[str]:
        return self.run("apt-cache", ["pkgnames", prefix]).split()

    def versions(self, names: Iterable[str], arch: str = ARCH) -> list[tuple[str, str, str]]:
        """(package, version, suite) for each `arch` version of the named packages."""
        names = list(names)
        if not names:
            return []
        found = []
        for line in self.run("apt-cache", ["madison", *names]).splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2].endswith(f" {arch} Packages"):
                suite = parts[2].split()[1].split("/")[0]
                found.append((parts[0], parts[1], suite))
        return found

    def resolve(self, packages: Sequence[str], release: str) -> dict[str, str]:
        """Package -> version of everything `install --no-install-recommends` would bring
        onto an empty ppc64el system, preferring `release` (a simulation: nothing is fetched)."""
        out = self.run("apt-get", ["-s", "-q", "-t", release, "install",
                                   "--no-install-recommends", *packages])
        found = dict(re.findall(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", out, re.M))
        if not found:
            raise LabBuildError(f"apt resolved nothing to install for {' '.join(packages)}")
        return found

    def deb_files(self, specs: Iterable[str]) -> list[DebFile]:
        """What `apt-get download SPECS` would fetch (nothing is fetched)."""
        out = self.run("apt-get", ["-q", "download", "--print-uris", *specs], cwd=self.state)
        files = []
        for _, filename, size, digest in re.findall(r"^'([^']+)' (\S+) (\d+) (\S+)$", out, re.M):
            sha = digest.partition(":")[2] if digest.upper().startswith("SHA256:") else None
            files.append(DebFile(filename.split("_")[0], filename, int(size), sha))
        return files

    def download(self, specs: Iterable[str], dest: Path) -> None:
        """Fetch the .debs of `specs` (name=version) into `dest`."""
        self.run("apt-get", ["-q", "download", *specs], cwd=dest)
