#!/bin/sh
# Makes .trixie: a Debian 13 root (Proxmox VE 9's base) with its QEMU
# 10, and .trixie-qemu10, which runs that QEMU on this host through the root's
# own dynamic loader. Used by `make check-e2e-qemu10` and `make check-deb`.
# Needs root (debootstrap, chroot) and Debian's archive; does nothing when
# the root is there already.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
root=$top/.trixie
wrapper=$top/.trixie-qemu10

if [ ! -e "$root/.puh-ready" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "error: making $root needs root (debootstrap)" >&2; exit 1; }
	echo "Making a trixie root in $root (debootstrap, then qemu-system-x86)"
	rm -rf "$root"
	:
	debootstrap --variant=minbase trixie "$root" >"$top/.trixie.log" 2>&1 ||
		{ tail -20 "$top/.trixie.log" >&2; exit 1; }
	chroot "$root" sh -c 'apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86' \
		>>"$top/.trixie.log" 2>&1 || { tail -20 "$top/.trixie.log" >&2; exit 1; }
	touch "$root/.puh-ready"
fi

cat >"$wrapper" <<WRAP
#!/bin/sh
# trixie's QEMU on this host (made by tests/trixie.sh)
R=$root
export QEMU_MODULE_DIR=\$R/usr/lib/x86_64-linux-gnu/qemu
exec \$R/lib64/ld-linux-x86-64.so.2 --library-path \$R/usr/lib/x86_64-linux-gnu:\$R/lib/x86_64-linux-gnu \\
	\$R/usr/bin/qemu-system-x86_64 -L \$R/usr/share/qemu "\$@"
WRAP
chmod +x "$wrapper"
"$wrapper" -version | head -1
