"""End-to-end tests, area libvirt (`make check-e2e AREA=libvirt` runs it alone): libvirt domains,
through a libvirtd of the test's own."""
import json
import os
import time
import unittest

from .harness import Case, LoopDisks, libvirtsim


@unittest.skipUnless(libvirtsim.available(), "needs libvirtd, virsh and root (tests/deps.sh installs them)")
class Libvirt(Case, LoopDisks):
    """libvirt domains through a real libvirtd of the test's own. This host
    has no USB devices libvirt could pass (it reads the real /sys), so the
    passthrough itself is proven in the real-host suite; here: what libvirt
    is asked and says, and what is never asked of it."""

    def setUp(self):
        super().setUp()
        self.lv = libvirtsim.Libvirtd(self.dir)
        self.tool.declare("[libvirt lab]\nuri = %s\n" % self.lv.uri)
        self.tool.guest_rules("lab", "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)

    def tearDown(self):
        # before the test's directory (libvirtd's socket) goes
        self.lv.stop()
        super().tearDown()

    def test_a_running_domain_is_asked_through_libvirt(self):
        self.lv.start("lab")
        r = self.failed(self.tool.event(self.host, "add", "3-4.1"))
        # libvirt itself looks for the device on this host, and says so
        self.assertIn("libvirt domain lab: libvirt did not attach 3-4.1 (046d:c52b): ", r.stderr)
        self.assertIn("/sys/bus/usb/devices", r.stderr)
        self.assertNotIn("<hostdev", self.lv.live_xml("lab"))
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["guest"], v["kind"], v["label"], v["running"], v["holds"]) for v in st["vms"]],
                         [("lab", "libvirt", "libvirt domain lab", True, [])])
        self.assertEqual({d["port"]: d["state"] for d in st["devices"]}, {"3-4": "hub", "3-4.1": "not-attached"})
        # nothing of the tool's there: a remove and a release are fine
        r = self.ok(self.tool.event(self.host, "remove", "3-4.1"))
        self.assertIn("libvirt domain lab: 3-4.1 (046d:c52b) was not attached; nothing to detach", r.stdout)
        r = self.ok(self.tool.run(["release", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: released", r.stdout)
        # sync lifts the hold, and asks libvirt again (which again finds no device)
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: no longer released", r.stdout)
        self.assertIn("libvirt domain lab: libvirt did not attach 3-4.1", r.stderr)

    def test_a_usb_disk_goes_to_a_domain_and_leaves_it(self):
        self.tool.guest_rules("lab", "3-4\ndisk 57584C\n")
        self.lv.start("lab", devices=libvirtsim.XHCI + "<controller type='scsi' model='virtio-scsi'/>")
        d = self.plug_disk("3-5", "sdb", "57584C")
        r = self.ok(self.disk_event("add", d))
        self.assertRegex(r.stdout, r"libvirt domain lab: attached disk WD_Elements_57584C-0:0 \(sdb, 67.1 MB\) as a SCSI disk sda \(usbdisk-[0-9a-f]{16}\)")
        xml = self.lv.live_xml("lab")
        self.assertIn("<source dev='%s/%s'" % (self.tool.disk_dir, d.link), xml)
        self.assertRegex(xml, r"<target dev='sda' bus='scsi'/>")
        self.assertRegex(xml, r"<alias name='ua-usbdisk-[0-9a-f]{16}'/>")
        self.assertTrue(self.opened_by_anyone(d.dev))
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(x["state"], x["driver"], x["held_by"]) for x in st["disks"]],
                         [("attached", "scsi-hd", ["lab"])])
        env = self.host.disk_env("remove", d.name, d)
        self.pull_disk(d)
        r = self.ok(self.tool.run(host=self.host, env=env))
        self.assertIn("libvirt domain lab: detached disk WD_Elements_57584C-0:0 (sdb)", r.stdout)
        self.assertNotIn("usbdisk-", self.lv.live_xml("lab"))
        self.assertFalse(self.opened_by_anyone(d.dev))

    def test_a_domain_that_is_not_running_gets_nothing(self):
        self.lv.start("lab")
        self.assertEqual(self.lv.virsh("destroy", "lab").returncode, 0)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("3-4.1 (046d:c52b): no running VM claims it; nothing to do", r.stdout)
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab is not running", r.stderr)

    def test_an_event_for_others_never_loads_libvirt(self):
        self.lv.start("lab")
        self.host.plug("3-5", 0x0781, 0x5581)
        env = {"LD_DEBUG": "files"}
        r = self.ok(self.tool.run(host=self.host, env=dict(self.host.event_env("add", "3-5"), **env)))
        self.assertFalse("file=libvirt.so" in r.stderr, "libvirt was loaded for an event of nobody's device")
        r = self.tool.run(host=self.host, env=dict(self.host.event_env("add", "3-4.1"), **env))
        self.assertTrue("file=libvirt.so.0" in r.stderr, "libvirt was not loaded for its own domain's device")

    def test_the_program_serves_as_libvirts_qemu_hook(self):
        # /etc/libvirt/hooks/qemu DOMAIN OPERATION SUB-OP EXTRA: at
        # "started", a sync of that domain in the background
        self.lv.start("lab")
        self.ok(self.tool.run(["release", "lab"], host=self.host))
        marker = os.path.join(self.tool.state_dir, "libvirt-lab.released")
        self.assertTrue(os.path.exists(marker))
        for args in (["other", "started", "begin", "-"], ["lab", "stopped", "end", "-"]):
            r = self.tool.run(args, host=self.host)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), args)
        self.assertTrue(os.path.exists(marker))
        r = self.tool.run(["lab", "started", "begin", "-"], host=self.host)
        # the hook returns at once, silent; the sync it started lifts the hold
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        deadline = time.monotonic() + 20
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.exists(marker))

    def test_a_stopped_libvirtd_is_told(self):
        self.lv.stop()
        r = self.failed(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("libvirt domain lab: cannot connect to libvirt at %s" % self.lv.uri, r.stderr)
