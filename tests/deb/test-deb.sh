#!/bin/bash
# Tests the built .deb without installing anything on this machine: its
# metadata and contents, lintian, then an install, upgrade, remove and purge
# into a scratch root (dpkg --root), where the installed program must run,
# the hookscript link must reach it and the udev rule must parse.
set -uo pipefail
deb=$(readlink -f "$1")
top=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$top/debian/changelog")
work=$(mktemp -d /tmp/puh-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
passed=0 failed=0

ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
has() { grep -qF -- "$2" <<<"$1"; }

dpkg_root() {
	dpkg --root="$root" --force-script-chrootless --force-depends --force-confdef \
		--force-confold --log=/dev/null "$@"
}

# --- metadata and contents
fields=$(dpkg-deb -f "$deb")
check "package name" has "$fields" "Package: pve-usb-hotplug"
check "version $version from debian/changelog" has "$fields" "Version: $version"
for dep in "libjansson4 (" "libudev1 (" "libinih1 (" "udev"; do
	check "Depends names $dep" has "$(dpkg-deb -f "$deb" Depends)" "$dep"
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/pve-usb-hotplug ./usr/lib/udev/rules.d/60-pve-usb-hotplug.rules \
	./usr/lib/tmpfiles.d/pve-usb-hotplug.conf ./usr/lib/systemd/system/pve-usb-hotplug@.service \
	./usr/lib/systemd/system/pve-usb-hotplug.service \
	./usr/share/doc/pve-usb-hotplug/examples/other-guests/guests.conf \
	./etc/pve-usb-hotplug.conf ./usr/share/man/man8/pve-usb-hotplug.8.gz \
	./usr/share/doc/pve-usb-hotplug/examples/100.usb.conf \
	./usr/share/doc/pve-usb-hotplug/examples/100.conf \
	./usr/share/doc/pve-usb-hotplug/examples/pve-usb-hotplug.conf \
	"./var/lib/vz/snippets/pve-usb-hotplug -> /usr/sbin/pve-usb-hotplug"; do
	check "contains $f" has "$contents" "$f"
done
dpkg-deb -e "$deb" "$work/control"
check "/etc/pve-usb-hotplug.conf is a conffile" grep -qx /etc/pve-usb-hotplug.conf "$work/control/conffiles"
check "postinst makes the state directory (systemd-tmpfiles)" grep -q "systemd-tmpfiles.*pve-usb-hotplug" "$work/control/postinst"
check "lintian: no errors, no warnings" lintian --fail-on error,warning "$deb"

# --- install into a scratch root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
check "dpkg --root installs it" dpkg_root -i "$deb"
status=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' pve-usb-hotplug 2>&1)
check "status is installed" has "$status" "install ok installed"

out=$("$root/usr/sbin/pve-usb-hotplug" --version 2>&1)
check "installed binary runs" has "$out" "pve-usb-hotplug $version"
link=$(readlink "$root/var/lib/vz/snippets/pve-usb-hotplug")
check "hookscript link resolves to an executable" test -x "$root$link" -a "$link" = /usr/sbin/pve-usb-hotplug

# the installed settings file as shipped, only its paths pointed at the scratch tree
mkdir -p "$work/vms"
echo 3-4 >"$work/vms/100.usb.conf"
{ cat "$root/etc/pve-usb-hotplug.conf"; printf '[paths]\nvm_config_dir = %s\nstate_dir = %s/state\n[log]\nsyslog = no\n' "$work/vms" "$work"; } >"$work/settings.conf"
out=$(PVE_USB_HOTPLUG_CONFIG=$work/settings.conf "$root/usr/sbin/pve-usb-hotplug" check 2>&1)
check "installed settings file and check command" has "$out" "$work/settings.conf: valid"

# the rule, read by udev's own parser, in a private mount namespace where
# the rules directories hold only this package's rule and /run/udev is scratch
out=$(unshare -m sh -c '
	mount --bind "$1/usr/lib/udev/rules.d" /usr/lib/udev/rules.d &&
	mount -t tmpfs none /etc/udev/rules.d &&
	mkdir -p /run/udev && mount -t tmpfs none /run/udev &&
	udevadm test --action=add /sys/class/net/lo' sh "$root" 2>&1)
check "udev reads the rule" has "$out" "Reading rules file: /usr/lib/udev/rules.d/60-pve-usb-hotplug.rules"
if grep -q "60-pve-usb-hotplug.rules:[0-9]" <<<"$out"; then
	bad "udev rule parses without complaint: $(grep "60-pve-usb-hotplug.rules:" <<<"$out")"
else
	ok "udev rule parses without complaint"
fi

# which events the rule runs the program for, decided by udev itself over a
# umockdev USB tree: whole devices on add and remove, nothing else
cat >"$work/tree.umockdev" <<'TREE'
P: /devices/pci0000:00/0000:00:14.0/usb3
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
A: bDeviceClass=09

P: /devices/pci0000:00/0000:00:14.0/usb3/3-4
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
A: bDeviceClass=00
A: idVendor=046d
A: idProduct=c52b

P: /devices/pci0000:00/0000:00:14.0/usb3/3-4/3-4:1.0
E: SUBSYSTEM=usb
E: DEVTYPE=usb_interface
A: bInterfaceClass=03

P: /devices/pci0000:00/0000:00:14.0/usb3/3-5
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
A: bDeviceClass=00

P: /devices/pci0000:00/0000:00:14.0/usb3/3-5/3-5:1.0/host6/target6:0:0/6:0:0:0/block/sdb
E: SUBSYSTEM=block
E: DEVTYPE=disk
E: DEVNAME=/dev/sdb
E: MAJOR=8
E: MINOR=16
E: ID_PATH=pci-0000:00:14.0-usb-0:5:1.0-scsi-0:0:0:0
A: size=1000

P: /devices/pci0000:00/0000:00:14.0/usb3/3-5/3-5:1.0/host6/target6:0:0/6:0:0:0/block/sdb/sdb1
E: SUBSYSTEM=block
E: DEVTYPE=partition
E: DEVNAME=/dev/sdb1
E: MAJOR=8
E: MINOR=17
E: ID_PATH=pci-0000:00:14.0-usb-0:5:1.0-scsi-0:0:0:0

P: /devices/pci0000:00/0000:00:14.0/usb3/3-6/3-6:1.0/host7/target7:0:0/7:0:0:0/block/sdd
E: SUBSYSTEM=block
E: DEVTYPE=disk
E: DEVNAME=/dev/sdd
E: MAJOR=8
E: MINOR=48
E: DISK_MEDIA_CHANGE=1
E: ID_PATH=pci-0000:00:14.0-usb-0:6:1.0-scsi-0:0:0:0

P: /devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda
E: SUBSYSTEM=block
E: DEVTYPE=disk
E: DEVNAME=/dev/sda
E: MAJOR=8
E: MINOR=0
E: ID_PATH=pci-0000:00:1f.2-ata-1
TREE
udev_test() { # DEVICE-UNDER-usb3 (or /devices/...) ACTION -> what udev decides for the event
	local dev="/sys/devices/pci0000:00/0000:00:14.0/usb3/$1"
	[ "${1#/}" != "$1" ] && dev="/sys$1"
	unshare -m sh -c '
		mount --bind "$1/usr/lib/udev/rules.d" /usr/lib/udev/rules.d &&
		mount -t tmpfs none /etc/udev/rules.d &&
		mkdir -p /run/udev && mount -t tmpfs none /run/udev &&
		umockdev-run --device "$2" -- udevadm test --action="$4" "$3"' \
		sh "$root" "$work/tree.umockdev" "$dev" "$2" 2>&1
}
udev_runs() { udev_test "$@" | grep -E "^run: |^SYSTEMD_WANTS="; }
usb_disk=3-5/3-5:1.0/host6/target6:0:0/6:0:0:0/block/sdb
# add: systemd starts the service once udev has announced the device;
# remove: the program runs at once
out=$(udev_test 3-4 add)
check "a device add wants pve-usb-hotplug@3-4.service" has "$out" "SYSTEMD_WANTS=pve-usb-hotplug@3-4.service"
check "a device add is tagged for systemd" has "$out" ":systemd:"
check "a device add runs nothing itself" test -z "$(grep "^run: " <<<"$out")"
check "rule runs the program for a device remove" has "$(udev_runs 3-4 remove)" "run: '/usr/sbin/pve-usb-hotplug'"
for a in add remove; do
	check "rule does nothing for an interface $a" test -z "$(udev_runs 3-4/3-4:1.0 $a)"
done
check "rule does nothing for a device change" test -z "$(udev_runs 3-4 change)"
check "rule does nothing for a device bind" test -z "$(udev_runs 3-4 bind)"
# USB disks: the whole disk on add and remove, from RUN; no partition, no
# disk elsewhere (sda is on the SATA controller: reached by a path from usb3)
for a in add remove; do
	check "rule runs the program for a USB disk $a" has "$(udev_runs $usb_disk $a)" "run: '/usr/sbin/pve-usb-hotplug'"
	check "rule does nothing for a USB disk's partition $a" test -z "$(udev_runs $usb_disk/sdb1 $a)"
	sata=$(udev_test /devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda $a)
	check "udev sees the SATA disk ($a)" has "$sata" "ID_PATH=pci-0000:00:1f.2-ata-1"
	check "rule does nothing for a SATA disk $a" test -z "$(grep "^run: " <<<"$sata")"
done
check "rule does nothing for a USB disk change" test -z "$(udev_runs $usb_disk change)"
check "rule runs the program for a card reader's change of medium" has "$(udev_runs 3-6/3-6:1.0/host7/target7:0:0/7:0:0:0/block/sdd change)" "run: '/usr/sbin/pve-usb-hotplug'"
unit=$(cat "$root/usr/lib/systemd/system/pve-usb-hotplug@.service")
check "the service runs 'pve-usb-hotplug plugged %i'" has "$unit" "ExecStart=/usr/sbin/pve-usb-hotplug plugged %i"
check "the service stands aside while the listener runs" has "$unit" "ConditionPathExists=!/run/pve-usb-hotplug/listening"
unit=$(cat "$root/usr/lib/systemd/system/pve-usb-hotplug.service")
check "the listener runs 'pve-usb-hotplug listen'" has "$unit" "ExecStart=/usr/sbin/pve-usb-hotplug listen"
check "the listener is enabled on install" test -L "$root/etc/systemd/system/multi-user.target.wants/pve-usb-hotplug.service"

tmpfiles=$(cat "$root/usr/lib/tmpfiles.d/pve-usb-hotplug.conf")
check "tmpfiles.d: /run/pve-usb-hotplug, 0700, root" has "$tmpfiles" "d /run/pve-usb-hotplug 0700 root root -"

# --- upgrade keeps the admin's edit; remove keeps it; purge removes it
echo "# edited by the admin" >>"$root/etc/pve-usb-hotplug.conf"
check "reinstall (upgrade) works" dpkg_root -i "$deb"
check "upgrade keeps the edited conffile" grep -q "edited by the admin" "$root/etc/pve-usb-hotplug.conf"
check "remove works" dpkg_root -r pve-usb-hotplug
check "remove takes the binary" test ! -e "$root/usr/sbin/pve-usb-hotplug"
check "remove takes the rule" test ! -e "$root/usr/lib/udev/rules.d/60-pve-usb-hotplug.rules"
check "remove keeps the conffile" test -e "$root/etc/pve-usb-hotplug.conf"
check "purge works" dpkg_root -P pve-usb-hotplug
check "purge takes the conffile" test ! -e "$root/etc/pve-usb-hotplug.conf"

# --- the same .deb on Debian 13 (Proxmox VE 9's base), with apt and its
# own dependencies, in a trixie root (tests/trixie.sh)
if [ -n "${TRIXIE_ROOT:-}" ]; then
	t=$TRIXIE_ROOT
	cp "$deb" "$t/tmp/puh.deb"
	chroot "$t" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/puh.deb' \
		>"$work/trixie-install.log" 2>&1
	status=$(chroot "$t" dpkg-query -W -f='${Status}' pve-usb-hotplug 2>&1)
	check "trixie: apt installs the .deb built on bookworm" has "$status" "install ok installed"
	out=$(chroot "$t" /usr/sbin/pve-usb-hotplug --version 2>&1)
	check "trixie: the installed binary runs" has "$out" "pve-usb-hotplug $version"
	mkdir -p "$t/tmp/puh/vms"
	echo 3-4 >"$t/tmp/puh/vms/100.usb.conf"
	printf 'memory: 512\n' >"$t/tmp/puh/vms/100.conf"
	{ cat "$t/etc/pve-usb-hotplug.conf"; printf '[paths]\nvm_config_dir = /tmp/puh/vms\nstate_dir = /tmp/puh/state\n[log]\nsyslog = no\n'; } >"$t/tmp/puh/settings.conf"
	out=$(chroot "$t" env PVE_USB_HOTPLUG_CONFIG=/tmp/puh/settings.conf /usr/sbin/pve-usb-hotplug check 2>&1)
	check "trixie: installed settings file and check command" has "$out" "/tmp/puh/vms/100.usb.conf: 1 rule(s), all valid"
	check "trixie: the rule is in /usr/lib/udev/rules.d" test -f "$t/usr/lib/udev/rules.d/60-pve-usb-hotplug.rules"
	out=$(chroot "$t" udevadm verify /usr/lib/udev/rules.d/60-pve-usb-hotplug.rules 2>&1)
	check "trixie: udevadm verify (systemd 257) accepts the rule" has "$out" "Success: 1"
	out=$(chroot "$t" systemd-analyze verify --man=no /usr/lib/systemd/system/pve-usb-hotplug@3-4.service 2>&1)
	check "trixie: systemd-analyze verify accepts the service" test -z "$(grep -i pve-usb-hotplug <<<"$out")"
	out=$(chroot "$t" systemd-analyze verify --man=no /usr/lib/systemd/system/pve-usb-hotplug.service 2>&1)
	check "trixie: systemd-analyze verify accepts the listener" test -z "$(grep -i pve-usb-hotplug <<<"$out")"
	chroot "$t" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq pve-usb-hotplug' >>"$work/trixie-install.log" 2>&1
	check "trixie: purge removes it" test ! -e "$t/usr/sbin/pve-usb-hotplug"
	rm -rf "$t/tmp/puh" "$t/tmp/puh.deb"
	[ "$failed" -eq 0 ] || tail -20 "$work/trixie-install.log"
fi

echo "deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
