#!/bin/busybox sh
# PID 1 of the test bed's initramfs: the host's / over 9p (read-only) under
# a tmpfs overlay, the guest kernel's modules and the bed's files over 9p,
# then the stock systemd with the bed's own target.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m || echo "init: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /lower || exec sh
mount -t tmpfs -o size=1536m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || exec sh
mkdir -p /newroot/lib/modules /newroot/bed
mount -t 9p -o trans=virtio,version=9p2000.L,ro kmod /newroot/lib/modules
mount -t 9p -o trans=virtio,version=9p2000.L,ro bed /newroot/bed
# systemd must not think it is in a container; its own /tmp (tmpfiles would
# clean the host's through 9p); a clean /run
rm -f /newroot/.dockerenv
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
for u in /newroot/bed/units/*; do cp "$u" /newroot/etc/systemd/system/; done
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /lib/systemd/systemd
