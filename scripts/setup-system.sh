#!/bin/sh
# Installs the system packages powernest needs on Debian bookworm, if missing:
#   qemu-system-ppc >= 9.0 (bookworm-backports), openssh-server (tests),
#   libxml2-utils (xmllint, JUnit validation), chromium (dashboard tests),
#   gcc-powerpc64le-linux-gnu and pahole (the lab cross-builds pnhcall.ko),
#   nodejs, npm and rsync (gitlab-ci-local runs ci/gitlab-ci.yml in make test).
# Uses the archive address this machine's apt configuration already names.
# Without root it prints what to install and exits non-zero.
set -eu

need=""
qemu_ok() {
    command -v qemu-system-ppc64 >/dev/null 2>&1 || return 1
    v=$(qemu-system-ppc64 --version | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
    [ "${v:-0}" -ge 9 ]
}
qemu_ok || need="$need qemu"
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v xmllint >/dev/null 2>&1 || need="$need libxml2-utils"
[ "${POWERNEST_WITH_CHROMIUM:-1}" = 0 ] || command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v powerpc64le-linux-gnu-gcc >/dev/null 2>&1 || need="$need gcc-powerpc64le-linux-gnu"
command -v pahole >/dev/null 2>&1 || need="$need pahole"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
command -v rsync >/dev/null 2>&1 || need="$need rsync"
[ -n "$need" ] || { echo "setup: system packages present"; exit 0; }

if [ "$(id -u)" != 0 ]; then
    echo "setup: missing:$need" >&2
    echo "setup: as root, install qemu-system-ppc (>= 9.0, from bookworm-backports)," >&2
    echo "       openssh-server, libxml2-utils, chromium, gcc-powerpc64le-linux-gnu, pahole," >&2
    echo "       nodejs, npm and rsync," >&2
    echo "       or run 'make setup' as root." >&2
    exit 1
fi

archive() {
    # The first Debian archive URI of this machine's own apt configuration.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' "$f"
    done | head -n 1
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | awk '$0 ~ / bookworm / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | head -n 1
}
mirror=$(archive | head -n 1)
[ -n "$mirror" ] || { echo "setup: no Debian archive found in the apt configuration" >&2; exit 1; }
bpo=/etc/apt/sources.list.d/powernest-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb $mirror bookworm-backports main" > "$bpo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup: installing:$need"
apt-get update -qq
pkgs=""
for n in $need; do
    case $n in
        qemu) ;;
        *) pkgs="$pkgs $n" ;;
    esac
done
[ -z "$pkgs" ] || apt-get install -y -q --no-install-recommends $pkgs
case " $need " in
    *" qemu "*) apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-ppc ;;
esac
qemu_ok || { echo "setup: qemu-system-ppc64 >= 9.0 still missing" >&2; exit 1; }
echo "setup: $(qemu-system-ppc64 --version | head -n 1)"
