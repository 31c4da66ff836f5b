#!/bin/sh
# Makes a Debian 13 (trixie) root with a QEMU from Debian's archive, and a
# wrapper that runs that QEMU on this host through the root's own dynamic
# loader.
#
#   tests/trixie.sh [ROOT WRAPPER [SUITE]]
#
# With no arguments: .trixie, a root with trixie's QEMU 10 (Proxmox VE 9's
# base), and .trixie-qemu10 (`make check-e2e-qemu10`, `make check-deb`).
# ROOT and WRAPPER are names in the top directory; SUITE (say
# trixie-backports) adds that suite to the root's sources and takes
# qemu-system-x86 from it (tests/qemu11.sh). Needs root (debootstrap, chroot)
# and Debian's archive; does nothing when the root is there already.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/${1:-.trixie}
wrapper=$top/${2:-.trixie-qemu10}
suite=${3:-}
log=$root.log

if [ ! -e "$root/.puh-ready" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "error: making $root needs root (debootstrap)" >&2; exit 1; }
	echo "Making a trixie root in $root (debootstrap, then qemu-system-x86${suite:+ from $suite})"
	rm -rf "$root"
	debootstrap --variant=minbase trixie "$root" >"$log" 2>&1 ||
		{ tail -20 "$log" >&2; exit 1; }
	if [ -n "$suite" ]; then
		echo "deb http://deb.debian.org/debian $suite main" >"$root/etc/apt/sources.list.d/$suite.list"
	fi
	chroot "$root" sh -c 'apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends '"${suite:+-t $suite }"'qemu-system-x86' \
		>>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
	touch "$root/.puh-ready"
fi

cat >"$wrapper" <<WRAP
#!/bin/sh
# the QEMU of $root on this host (made by tests/trixie.sh)
R=$root
export QEMU_MODULE_DIR=\$R/usr/lib/x86_64-linux-gnu/qemu
exec \$R/lib64/ld-linux-x86-64.so.2 --library-path \$R/usr/lib/x86_64-linux-gnu:\$R/lib/x86_64-linux-gnu \\
	\$R/usr/bin/qemu-system-x86_64 -L \$R/usr/share/qemu "\$@"
WRAP
chmod +x "$wrapper"
"$wrapper" -version | head -1
