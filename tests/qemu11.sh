#!/bin/sh
# Makes .trixie-bpo, a Debian 13 root with qemu-system-x86 from
# trixie-backports (QEMU 11, as in Proxmox VE 9.2), and .qemu11, which runs
# that QEMU on this host. Used by `make check-e2e-qemu11`; see tests/trixie.sh.
exec "$(dirname "$0")/trixie.sh" .trixie-bpo .qemu11 trixie-backports
