#!/bin/sh
# Installs, on Debian 12, what building and testing pve-usb-hotplug needs.
# Does nothing when everything is there already.
set -eu

# libvirt's daemon and virsh: the end-to-end suite runs a libvirtd of its own
pkgs="pkg-config libjansson-dev libudev-dev libinih-dev libcmocka-dev umockdev libumockdev-dev
      qemu-system-x86 python3 udev debootstrap libvirt-daemon-system libvirt-clients
      btrfs-progs fdisk libfuse3-dev fuse3 lxc busybox-static"
[ "${WITH_DEB_TOOLS:-0}" = 1 ] && pkgs="$pkgs debhelper dpkg-dev fakeroot lintian"
[ "${WITH_FUZZ:-0}" = 1 ] && pkgs="$pkgs clang libclang-rt-14-dev"
[ "${WITH_REALHOST:-0}" = 1 ] && pkgs="$pkgs debhelper dpkg-dev fakeroot lintian kmod cpio systemd"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null; then
	sudo="sudo"
else
	echo "error: need root to install:$missing (apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
