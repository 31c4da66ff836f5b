"""End-to-end tests, area disks (`make check-e2e AREA=disks` runs it alone): USB disks passed as
virtual disks (SCSI or virtio)."""
import json
import os
import subprocess

from .harness import Case, LoopDisks, Qmp


SCSI = "virtio-scsi-pci,id=scsihw0,bus=pci.0,addr=0x5"


class Disks(Case, LoopDisks):
    """USB disks as virtual disks: real loop devices for QEMU to open, the
    umockdev tree for what udev tells."""

    def disks(self, g):
        """{id: (driver, parent bus, node's file)} of the guest's usbdisk-* devices."""
        q = Qmp(g.qmp_path)
        try:
            nodes = {n["node-name"]: n["file"] for n in q.cmd("query-named-block-nodes", flat=True)}
            out = {}
            for item in q.cmd("qom-list", path="/machine/peripheral"):
                if not item["name"].startswith("usbdisk-"):
                    continue
                p = "/machine/peripheral/" + item["name"]
                drive = q.cmd("qom-get", path=p, property="drive")
                out[item["name"]] = (item["type"][6:-1],
                                     q.cmd("qom-get", path=p, property="parent_bus").rsplit("/", 1)[-1],
                                     nodes.get(drive))
            return out
        finally:
            q.close()

    def nodes(self, g):
        return sorted(n["node-name"] for n in g.qmp("query-named-block-nodes", flat=True)
                      if n["node-name"].startswith("usbdisk-"))

    def qemu_opens(self, g, dev):
        """Whether the guest's QEMU has the host block device open."""
        fds = "/proc/%d/fd" % g.proc.pid
        opened = []
        for f in os.listdir(fds):
            try:
                opened.append(os.readlink(os.path.join(fds, f)))
            except FileNotFoundError:   # closed while looked at
                pass
        return dev in opened

    def test_post_start_attaches_a_disk_as_scsi_and_not_its_usb_device(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "3-4\ndisk WD_Elements_57584C\n")
        self.host.hub("3-4")
        d = self.plug_disk("3-4.1", "sdb", "57584C")
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        # the hub's other device as a USB device; the enclosure only as its disk
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertIn("3-4.1 (1058:25a2 \"Elements 25A2\") carries a disk that VM 100 takes as a disk ('disk WD_Elements_57584C'", r.stdout)
        disks = self.disks(g)
        self.assertEqual(list(disks.values()), [("scsi-hd", "scsihw0.0", os.path.join(self.tool.disk_dir, d.link))])
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/%s" % list(disks)[0], property="scsi-id"), 1)
        self.assertIn("VM 100: attached disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) as a SCSI disk on scsihw0, scsi-id 1", r.stdout)
        self.assertTrue(self.qemu_opens(g, d.dev))

    def test_plug_and_pull_through_udev_leaves_nothing_open(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.tool.event(self.host, "add", "3-4"))      # the enclosure: left for its disk
        self.assertEqual(g.ports(), [])
        r = self.ok(self.disk_event("add", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        self.assertTrue(self.qemu_opens(g, d.dev))
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertEqual(self.disks(g), {})
        self.assertEqual(self.nodes(g), [])
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.assertRegex(r.stdout, r"VM 100: detached disk WD_Elements_57584C-0:0 \(sdb\) \(usbdisk-[0-9a-f]{16}\): it was pulled out \(data the guest had not written to it yet is lost")

    def test_virtio_where_asked_or_without_a_scsi_controller(self):
        g = self.guest(100)                      # no SCSI controller
        self.tool.usb_conf(100, "disk 57584C\ndisk AAAA as virtio\ndisk BBBB as scsi\n")
        a = self.plug_disk("3-4", "sdb", "57584C")
        b = self.plug_disk("3-5", "sdc", "AAAA")
        self.plug_disk("3-6", "sdd", "BBBB")
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        got = sorted((drv, bus) for drv, bus, _ in self.disks(g).values())
        # in Proxmox's spare bridge slots, as the tool's own USB controller
        self.assertEqual(got, [("virtio-blk-pci", "pci.1"), ("virtio-blk-pci", "pci.2")])
        self.assertIn("VM 100: attached disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) as a virtio disk at pci.1.0x1f", r.stdout)
        self.assertIn("VM 100: disk WD_Elements_BBBB-0:0 (sdd, 67.1 MB) is to go in as SCSI, but the VM has no virtio-scsi controller to put it on", r.stderr)
        self.assertTrue(self.qemu_opens(g, a.dev) and self.qemu_opens(g, b.dev))
        self.assertEqual(len(self.nodes(g)), 4)   # nothing left of the refused one
        # the guest sees the disk's own serial
        ids = {v[2]: k for k, v in self.disks(g).items()}
        dev = ids[os.path.join(self.tool.disk_dir, a.link)]
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/" + dev, property="serial"), "57584C")

    def test_as_scsi_goes_on_scsihw0_next_to_proxmox_disks(self):
        g = self.guest(100, extra=[SCSI])
        # a disk of Proxmox's own at scsi-id 0, lun 1, and someone at scsi-id 1
        spare = self.loop()
        for node, dev in (("drive-scsi1", spare),):
            g.qmp("blockdev-add", driver="host_device", **{"node-name": node}, filename=dev)
        g.qmp("blockdev-add", driver="null-co", **{"node-name": "other"})
        g.qmp("device_add", driver="scsi-hd", id="scsi1", drive="drive-scsi1", bus="scsihw0.0",
              **{"scsi-id": 0}, lun=1)
        g.qmp("device_add", driver="scsi-hd", id="someone", drive="other", bus="scsihw0.0",
              **{"scsi-id": 1}, lun=0)
        self.tool.usb_conf(100, "disk 57584C as scsi\n")
        self.plug_disk("3-4", "sdb", "57584C")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("as a SCSI disk on scsihw0, scsi-id 2", r.stdout)
        (dev,) = self.disks(g)
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/" + dev, property="lun"), 0)

    def test_deny_disk_keeps_the_disk_and_its_usb_device_on_the_host(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "3-4\ndeny disk WD_Elements_57584C\n")
        self.host.hub("3-4")
        d = self.plug_disk("3-4.1", "sdb", "57584C")
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertEqual(self.disks(g), {})
        r = self.ok(self.disk_event("add", d))
        self.assertEqual(self.disks(g), {})
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.assertIn("kept out of VM 100 by 'deny disk WD_Elements_57584C'", r.stdout)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertIn("3-4.1 (1058:25a2 \"Elements 25A2\") is kept out of VM 100 by 'deny disk WD_Elements_57584C'", r.stdout)

    def test_check_names_bad_disk_lines(self):
        f = self.tool.usb_conf(100, "disk\ndisk \"\"\ndisk X as floppy\ndeny disk X as scsi\ndisk X Y\n"
                                    "disk \"WD Elements 1\" as virtio\ndeny disk Z\n")
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s:1: 'disk' needs a value, e.g. 'disk WD-WX12A3456789'; line ignored" % f, r.stderr)
        self.assertIn("%s:2: an empty serial matches nothing; leave the line out; line ignored" % f, r.stderr)
        self.assertIn("%s:3: 'as floppy': a disk goes in as scsi or virtio; line ignored" % f, r.stderr)
        self.assertIn("%s:4: 'deny disk' takes a serial alone; 'as' says how a disk is passed, and a denied one is not; line ignored" % f, r.stderr)
        self.assertIn("%s:5: unexpected 'Y'; a line is 'disk SERIAL [as scsi|virtio]' (quote a serial with spaces); line ignored" % f, r.stderr)
        self.assertIn("%s: 5 bad line(s), 2 good rule(s)" % f, r.stderr)

    def test_status_shows_disks_and_who_has_them(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        self.tool.usb_conf(101, "deny disk CCCC\n")
        self.plug_disk("3-4", "sdb", "57584C")
        self.plug_disk("3-5", "sdc", "CCCC")
        self.plug_disk("3-6", "sdd", "DDDD")
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("  sdb      67.1 MB  WD_Elements_57584C-0:0 at 3-4  VM 100: NOT attached ('disk 57584C', 100.usb.conf:1); 'pve-usb-hotplug sync' attaches it", r.stdout)
        self.ok(self.tool.run(["sync"], host=self.host))
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertRegex(r.stdout, r"  sdb      67.1 MB  WD_Elements_57584C-0:0 at 3-4  VM 100: attached as scsi-hd usbdisk-[0-9a-f]{16} \('disk 57584C', 100.usb.conf:1\)")
        self.assertIn("  sdc      67.1 MB  WD_Elements_CCCC-0:0 at 3-5  denied to VM 101 ('deny disk CCCC', 101.usb.conf:1); stays on the host", r.stdout)
        self.assertIn("  sdd      67.1 MB  WD_Elements_DDDD-0:0 at 3-6  on the host (no disk rule names it)", r.stdout)
        self.assertIn("3-4              1058:25a2    480M  \"Elements 25A2\"          carries a disk for VM 100 ('disk 57584C', 100.usb.conf:1); see USB disks below", r.stdout)
        j = json.loads(self.ok(self.tool.run(["status", "100", "--json"], host=self.host)).stdout)
        self.assertEqual([(d["name"], d["serial"], d["serial_short"], d["size"], d["state"], d["driver"], d["held_by"])
                          for d in j["disks"]],
                         [("sdb", "WD_Elements_57584C-0:0", "57584C", 64 << 20, "attached", "scsi-hd", ["100"])])
        self.assertEqual(j["vms"][0]["disks"], [j["disks"][0]["device"]])

    def test_release_lets_go_of_disks_and_sync_brings_them_back(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        r = self.ok(self.tool.run(["release", "100"], host=self.host))
        self.assertIn("VM 100: detached disk %s (" % d.link, r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))
        self.ok(self.disk_event("add", d))          # a released VM takes nothing
        self.assertEqual(self.disks(g), {})
        self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertEqual(len(self.disks(g)), 1)
        # rules changed: sync takes it away again
        self.tool.usb_conf(100, "3-9\n")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("no rule of this VM gives it the disk any more", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))

    def test_a_disk_the_host_uses_is_refused(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        subprocess.run(["mkfs.ext2", "-q", "-F", d.dev], check=True, capture_output=True)
        mnt = os.path.join(self.dir, "mnt")
        os.mkdir(mnt)
        argv, env = self.tool.cmd(["100", "post-start"], self.host)
        # mounted in a mount namespace of its own, which the program runs in
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount "$0" "$1" && shift && exec "$@"', d.dev, mnt] + argv,
                           env=env, capture_output=True, text=True, timeout=60)
        self.failed(r)
        self.assertIn("VM 100: disk WD_Elements_57584C-0:0 (sdb, 67.1 MB) is not attached: /dev/sdb is mounted on the host at %s; a disk must be in one place at a time" % mnt, r.stderr)
        self.assertEqual(self.disks(g), {})
        self.ok(self.tool.run(["100", "post-start"], host=self.host))   # unmounted
        self.assertEqual(len(self.disks(g)), 1)

    def test_a_remove_without_the_serial_still_lets_go(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", d))
        env = self.host.disk_env("remove", d.name, d)
        for k in ("ID_SERIAL", "ID_SERIAL_SHORT", "ID_USB_SERIAL", "ID_USB_SERIAL_SHORT", "DEVLINKS"):
            del env[k]
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertIn("VM 100: detached disk %s (" % d.link, r.stdout)
        self.assertIn("its disk is gone from the host", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_a_pulled_disk_leaves_a_vm_whose_rules_changed(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", d))
        os.unlink(os.path.join(self.tool.vm_dir, "100.usb.conf"))
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        self.ok(self.tool.run(host=self.host, env=env))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_a_disk_plugged_again_after_a_missed_remove_replaces_the_dead_one(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        first = self.plug_disk("3-4", "sdb", "57584C")
        self.ok(self.disk_event("add", first))
        self.assertTrue(self.qemu_opens(g, first.dev))
        # pulled out and plugged in again; the remove never reached the
        # program: the link now names the new device, QEMU holds the old one
        self.pull_disk(first)
        again = self.plug_disk("3-4", "sdc", "57584C")
        r = self.ok(self.disk_event("add", again))
        self.assertIn("QEMU holds another device under that name (an earlier disk with this serial, whose removal was missed): replaced", r.stderr)
        self.assertTrue(self.qemu_opens(g, again.dev))
        self.assertFalse(self.qemu_opens(g, first.dev))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        # the same event once more: attached already, nothing replaced
        r = self.ok(self.disk_event("add", again))
        self.assertIn("is attached already", r.stdout)
        self.assertNotIn("replaced", r.stderr)

    def test_a_card_reader_follows_its_medium(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk 000000000819\n")
        d = self.plug_disk("3-4", "sdb", "000000000819", size=0, vendor="Generic", model="SD_MMC")
        r = self.ok(self.disk_event("add", d))         # no card yet
        self.assertIn("disk Generic_SD_MMC_000000000819-0:0 (sdb) has no medium; it is attached when one is put in", r.stdout)
        self.assertEqual(self.disks(g), {})
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("has no medium (a card reader without a card?); it is attached when one is put in", r.stdout)
        d.size = 32 << 20                                # a card goes in
        self.ok(self.disk_event("media", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])
        self.assertTrue(self.qemu_opens(g, d.dev))
        d.size = 0                                       # and out again
        r = self.ok(self.disk_event("media", d))
        self.assertIn("VM 100: detached disk Generic_SD_MMC_000000000819-0:0 (sdb)", r.stdout)
        self.assertEqual((self.disks(g), self.nodes(g)), ({}, []))
        self.assertFalse(self.qemu_opens(g, d.dev))

    def test_ata_passthrough_disk_by_the_drives_serial(self):
        g = self.guest(100, extra=[SCSI])
        self.tool.usb_conf(100, "disk WD-WX12A3456789\n")
        d = self.plug_disk("3-4", "sdb", "0123456789AB", ata_serial="WD-WX12A3456789")
        self.ok(self.disk_event("add", d))
        self.assertEqual([v[0] for v in self.disks(g).values()], ["scsi-hd"])

    def test_two_running_vms_claiming_one_disk_get_neither(self):
        a = self.guest(100, extra=[SCSI])
        b = self.guest(101, extra=[SCSI])
        self.tool.usb_conf(100, "disk 57584C\n")
        self.tool.usb_conf(101, "disk WD_Elements_57584C\n")
        d = self.plug_disk("3-4", "sdb", "57584C")
        r = self.failed(self.disk_event("add", d))
        self.assertIn("is claimed equally by VM 100", r.stderr)
        self.assertIn("keep the disk rule in one of them", r.stderr)
        self.assertEqual((self.disks(a), self.disks(b)), ({}, {}))
        # one of them had it first: it keeps it
        self.tool.usb_conf(101, "")
        self.ok(self.disk_event("add", d))
        self.tool.usb_conf(101, "disk WD_Elements_57584C\n")
        r = self.ok(self.disk_event("add", d))
        self.assertIn("stays with VM 100", r.stdout)
        self.assertEqual((len(self.disks(a)), self.disks(b)), (1, {}))
