"""End-to-end tests, area disk_safety (`make check-e2e AREA=disk_safety` runs it alone): a
disk the host uses never reaches a guest, whatever uses it: a btrfs mount (whose
mountinfo line shows no device numbers), a mount in another mount namespace, a
program holding it exclusively. Real loop devices, real filesystems, real QEMU."""
import os
import re
import subprocess
import time

from .harness import Case, LoopDisks, PlainGuest
from . import test_disks

SCSI = test_disks.SCSI


class DiskSafety(Case, LoopDisks):
    disks = test_disks.Disks.disks
    nodes = test_disks.Disks.nodes
    qemu_opens = test_disks.Disks.qemu_opens

    def big_disk(self, port, name, serial, partition=False):
        """A disk on a 160 MB loop device (btrfs wants more than 109 MB); with
        partition, one partition over most of it (sdb1, a real loopNp1)."""
        dev = self.loop(160 << 20)
        d = self.host.plug_disk(port, name, serial, os.stat(dev).st_rdev, size=160 << 20)
        d.dev = dev
        if partition:
            subprocess.run(["sfdisk", "-q", dev], input="start=2048, type=83\n", text=True,
                           check=True, capture_output=True)
            subprocess.run(["losetup", "-c", dev], check=True)   # the kernel reads the table
            part = dev + "p1"
            subprocess.run(["partx", "-u", dev], capture_output=True)
            for _ in range(100):
                if os.path.exists(part):
                    break
                time.sleep(0.02)
            d.partitions.append((name + "1", os.stat(part).st_rdev))
            d.part = part
        os.symlink(dev, os.path.join(self.tool.disk_dir, d.link))
        return d

    def mkfs(self, dev, fs):
        subprocess.run(["mkfs." + fs, "-q", "-f" if fs == "btrfs" else "-F", dev], check=True,
                       capture_output=True)

    def mounted_start(self, src, argv, env):
        """Runs argv with src mounted in a mount namespace of its own, which the
        program runs in (so its mountinfo shows the mount)."""
        mnt = os.path.join(self.dir, "mnt")
        os.makedirs(mnt, exist_ok=True)
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount "$0" "$1" && shift && exec "$@"', src, mnt] + argv,
                           env=env, capture_output=True, text=True, timeout=60)
        return r, mnt

    def refused(self, g, r, why):
        self.failed(r)
        self.assertIn("VM 100: disk WD_Elements_57584C-0:0 (sdb, 167.8 MB) is not attached: " + why, r.stderr)
        # nothing half-attached
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))

    def test_btrfs_on_the_disk_is_refused(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.big_disk("3-4", "sdb", "57584C")
        self.mkfs(d.dev, "btrfs")
        argv, env = self.tool.cmd(["100", "post-start"], self.host)
        r, mnt = self.mounted_start(d.dev, argv, env)
        self.refused(g, r, "/dev/sdb is mounted on the host at %s; a disk must be in one place at a time" % mnt)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))   # unmounted
        self.assertEqual(len(self.disks(g)), 1)

    def test_btrfs_on_a_partition_is_refused(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.big_disk("3-4", "sdb", "57584C", partition=True)
        self.mkfs(d.part, "btrfs")
        argv, env = self.tool.cmd(["100", "post-start"], self.host)
        r, mnt = self.mounted_start(d.part, argv, env)
        self.refused(g, r, "/dev/sdb1 is mounted on the host at %s; a disk must be in one place at a time" % mnt)

    def test_ext4_mounted_only_in_another_mount_namespace_is_refused(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.big_disk("3-4", "sdb", "57584C")
        self.mkfs(d.dev, "ext4")
        mnt = os.path.join(self.dir, "ctmnt")
        os.mkdir(mnt)
        # a container's mount: its namespace only, the program's mountinfo has no line of it
        holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   'mount "$0" "$1" && echo up && exec sleep 60', d.dev, mnt],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline().strip(), "up")
        r = self.tool.run(["100", "post-start"], host=self.host)
        self.failed(r)
        self.assertRegex(r.stderr, re.escape("VM 100: disk WD_Elements_57584C-0:0 (sdb, 167.8 MB) is not attached: /dev/sdb is mounted in the mount namespace of process ")
                         + r"\d+" + re.escape(" at %s; a disk must be in one place at a time" % mnt))
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        holder.kill()
        holder.wait()
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(len(self.disks(g)), 1)

    def test_a_disk_a_program_holds_exclusively_is_refused(self):
        # stands for an active LVM volume or md array (no device-mapper here)
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.big_disk("3-4", "sdb", "57584C")
        fd = os.open(d.dev, os.O_RDONLY | os.O_EXCL)
        try:
            r = self.tool.run(["100", "post-start"], host=self.host)
            self.refused(g, r, "/dev/sdb is in use on the host (something holds it exclusively: a mount, possibly in another mount namespace, a device-mapper, md or LVM holder, or a program); a disk must be in one place at a time")
            # the same on a plug
            r = self.disk_event("add", d)
            self.assertIn("is in use on the host (something holds it exclusively", r.stderr)
            self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        finally:
            os.close(fd)
        self.ok(self.disk_event("add", d))
        self.assertEqual(len(self.disks(g)), 1)

    def test_a_second_enclosure_with_the_same_serial_leaves_the_first_in_place(self):
        # cheap bridges report one serial for every unit: the second is
        # announced while the first is still plugged in and in the guest
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        first = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", first))
        self.assertTrue(self.qemu_opens(g, first.dev))
        dev = self.loop()
        second = self.host.plug_disk("3-5", "sdc", "57584C", os.stat(dev).st_rdev)
        second.dev = dev
        link = os.path.join(self.tool.disk_dir, second.link)
        os.unlink(link)                 # udev points the link at the newer one
        os.symlink(dev, link)
        r = self.failed(self.disk_event("add", second))
        self.assertIn("VM 100: disk WD_Elements_57584C-0:0 (sdc, 67.1 MB) is not attached: /dev/sdb reports the same serial and is attached as usbdisk-", r.stderr)
        self.assertNotIn("replaced", r.stdout + r.stderr)
        # the first stays in the guest, open; the second is not opened
        self.assertEqual(len(self.disks(g)), 1)
        self.assertTrue(self.qemu_opens(g, first.dev))
        self.assertFalse(self.qemu_opens(g, second.dev))
        # once the first is really gone, the second takes its place
        self.host.unplug("3-4")
        self.ok(self.disk_event("add", second))
        self.assertTrue(self.qemu_opens(g, second.dev))

    def test_sync_and_a_start_leave_a_disk_with_the_guest_that_has_it(self):
        # equal disk claims: VM 500 got the disk while VM 502 was stopped
        a = self.guest(500, extra=[SCSI])
        self.tool.usb_conf(500, "disk WXA1D65ABCDE\n")
        self.tool.usb_conf(502, "disk WD_Elements_WXA1D65ABCDE-0:0\n")
        self.tool.write_settings(extra="[lock]\ntimeout_ms = 2000\n")
        d = self.plug_disk("3-4", "sdb", "WXA1D65ABCDE")
        self.ok(self.disk_event("add", d))
        self.assertEqual(len(self.disks(a)), 1)
        b = self.guest(502, extra=[SCSI])
        r = self.ok(self.tool.run(["502", "post-start"], host=self.host))
        # nothing false at the start: no conflict over the enclosure
        self.assertNotIn("claimed equally", r.stderr)
        self.assertIn("stays with VM 500, which has it now", r.stdout)
        # sync holds VM 500's lock and asks VM 500 on that connection
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertNotIn("another pve-usb-hotplug still works", r.stderr)
        self.assertEqual((len(self.disks(a)), self.disks(b)), (1, {}))
        self.assertTrue(self.qemu_opens(a, d.dev))

    def test_a_guest_without_a_pid_file_gets_a_disk_replaced_after_a_missed_remove(self):
        # QEMU started by hand (no pid file): its pid comes from its QMP
        # socket, so "cannot tell" no longer counts as "holds"
        g = PlainGuest(os.path.join(self.dir, "desk.qmp"),
                       ["-device", "pci-bridge,id=pci.1,chassis_nr=1",
                        "-device", "virtio-scsi-pci,id=scsi0"])
        self.guests.append(g)
        self.tool.declare("[qemu desk]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("desk", "disk 57584C\n")
        first = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", first))
        self.assertTrue(self.qemu_opens(g, first.dev))
        self.pull_disk(first)                   # its remove never arrives
        again = self.plug_disk("3-4", "sdc", "57584C")
        r = self.ok(self.disk_event("add", again))
        self.assertIn("QEMU guest desk: disk WD_Elements_57584C-0:0 (sdc, 67.1 MB) is attached as usbdisk-", r.stderr)
        self.assertIn("whose removal was missed): replaced", r.stderr)
        self.assertTrue(self.qemu_opens(g, again.dev))
        self.assertFalse(self.qemu_opens(g, first.dev))
