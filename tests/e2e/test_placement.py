"""End-to-end tests, area placement (`make check-e2e AREA=placement` runs it alone): which controller
and guest port a device lands on."""
import os

from .harness import Case, stamp


class Placement(Case):
    """Which controller and guest port a device lands on (issue: never in Proxmox's way)."""

    def where(self, g):
        """{"BUS-PORT": (guest bus, guest port)}"""
        return {"%d-%s" % (v["hostbus"], v["hostport"]): (v["bus"], v["port"])
                for v in g.usb_hosts(with_port=True).values()}

    def hmp(self, g, line):
        return g.qmp("human-monitor-command", **{"command-line": line})

    def test_only_port_15_of_proxmox_xhci_and_qm_set_usbN_still_works(self):
        g = self.guest(100)
        self.tool.vm_conf(100, "usb0: host=abcd:0001\nusb1: spice\n")
        g.qmp("device_add", driver="usb-host", id="usb0", vendorid=0xabcd, productid=1, bus="xhci.0", port="1")
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        speeds = ["1.5", "12", "480", "5000", "10000"] + ["480"] * 15
        for i, sp in enumerate(speeds, 1):
            self.host.plug("3-4.%d" % i, 0x1000, i, speed=sp)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        w = self.where(g)
        self.assertEqual(len(w), 20 + 1)
        on_xhci = sorted(k for k, (b, p) in w.items() if b == "xhci.0" and k.startswith("3-"))
        self.assertEqual(on_xhci, ["3-4.1"])
        self.assertEqual(w["3-4.1"], ("xhci.0", "15"))
        self.assertEqual(w["3-4.2"], ("usbhotplug-xhci0.0", "15"))
        self.assertEqual(w["3-4.20"], ("usbhotplug-xhci1.0", "12"))
        self.assertIn("VM 100: added USB controller usbhotplug-xhci0 at pci.1.0x1f for 3-4.2", r.stdout)
        ctrl = g.qmp("qom-get", path="/machine/peripheral/usbhotplug-xhci0", property="parent_bus")
        self.assertTrue(ctrl.endswith("/pci.1/pci.1"), ctrl)
        self.assertEqual(g.qmp("qom-get", path="/machine/peripheral/usbhotplug-xhci0", property="addr"), 0x1F << 3)
        # `qm set --usbN` as Proxmox does it (HMP, port N+1) works for every N
        # Proxmox may have, and Proxmox's own usb0 is untouched
        for n in range(1, 14):
            out = self.hmp(g, "device_add usb-tablet,id=usb%d,bus=xhci.0,port=%d" % (n, n + 1))
            self.assertEqual(out, "", "usb%d: %s" % (n, out))
        names = {d["name"] for d in g.qmp("qom-list", path="/machine/peripheral")}
        self.assertTrue({"usb%d" % n for n in range(14)} <= names)
        self.assertEqual(len(self.where(g)), 21)

    def test_nec_xhci_is_never_touched(self):
        g = self.guest(100, xhci=None, extra=["nec-usb-xhci,id=xhci,bus=pci.1,addr=0x1b"])
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0x1, 0x2)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(self.where(g), {"3-4": ("usbhotplug-xhci0.0", "15")})

    def test_udev_events_and_sync_keep_clear_of_usbN_ports_too(self):
        g = self.guest(100)
        self.tool.vm_conf(100, "".join("usb%d: spice\n" % n for n in range(14)))   # ports 1-14
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.ok(self.tool.run(["sync"], host=self.host))
        self.assertEqual(self.where(g), {"3-4.1": ("xhci.0", "15"), "3-4.2": ("usbhotplug-xhci0.0", "15")})

    def test_port_counts_are_read_from_qemu(self):
        # an xhci whose port 15 has no USB 3 half: a SuperSpeed device goes
        # to the tool's own controller, a USB 2 one to port 15
        g = self.guest(100, xhci="p2=15,p3=4")
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i, sp in enumerate(["480", "5000"], 1):
            self.host.plug("3-4.%d" % i, 0x1000, i, speed=sp)
            self.ok(self.tool.event(self.host, "add", "3-4.%d" % i))
        self.assertEqual(self.where(g), {"3-4.1": ("xhci.0", "15"), "3-4.2": ("usbhotplug-xhci0.0", "15")})

    def test_vm_without_xhci_gets_the_tools_own_controller(self):
        g = self.guest(100, xhci=None)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0xABCD, 0x0001, speed="12")
        self.host.plug("3-4.2", 0xABCD, 0x0002, speed="5000")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(r.stdout.count("added USB controller"), 1, r.stdout)
        self.assertEqual(self.where(g), {"3-4.1": ("usbhotplug-xhci0.0", "15"),
                                         "3-4.2": ("usbhotplug-xhci0.0", "14")})
        # never on the slow UHCI bus
        self.assertNotIn("uhci", str(g.usb_hosts()))

    def test_no_room_says_so_in_one_line(self):
        self.guest(100, xhci=None, bridge=False)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4", 0xABCD, 0x0001)
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(r.stderr, "pve-usb-hotplug: error: VM 100: no free USB 2 port for 3-4 (abcd:0001), and no room "
                         "for another USB controller (no free slot on its PCI bridges pci.1 (slot 31), pci.2 (25-31) or "
                         "pci.4 (4-31)); detach something, or give the VM a PCI bridge\n")

    def test_a_device_added_without_a_port_is_stepped_over(self):
        g = self.guest(100)
        g.qmp("device_add", driver="usb-tablet", id="someone", bus="xhci.0")   # takes port 1
        for p in range(2, 16):
            g.qmp("device_add", driver="usb-tablet", id="t%d" % p, bus="xhci.0")
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.where(g), {"3-4": ("usbhotplug-xhci0.0", "15")})

    def test_the_port_hint_is_only_a_guess(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i in range(1, 4):
            self.host.plug("3-4.%d" % i, 0x1000, i)
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        hint = os.path.join(self.tool.state_dir, "100.ports")
        self.assertTrue(os.path.exists(hint))
        # behind the tool's back: its device goes, and another takes port 15
        g.qmp("device_del", id="usbhost3-4.1")
        g.qmp("device_add", driver="usb-tablet", id="intruder", bus="xhci.0", port="15")
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(self.where(g)["3-4.2"], ("usbhotplug-xhci0.0", "15"))
        # a hint left by another QEMU process is not used
        g.stop()
        g = self.guest(100)
        self.ok(self.tool.event(self.host, "add", "3-4.3"))
        self.assertEqual(self.where(g), {"3-4.3": ("xhci.0", "15")})
        # nor one that is not what the tool writes, nor one naming another bus
        for junk in ("garbage\n", "stamp x\nctrl xhci 99 15 0\n", "\0" * 10,
                     "stamp %s\nctrl uhci 15 15 0\n" % stamp(g)):
            with open(hint, "w") as f:
                f.write(junk)
            self.ok(self.tool.event(self.host, "add", "3-4.1"))
            self.assertEqual(self.where(g)["3-4.1"], ("usbhotplug-xhci0.0", "15"))
            g.qmp("device_del", id="usbhost3-4.1")

    def test_reset_keeps_devices_and_a_restart_gets_them_back(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        for i in range(1, 4):
            self.host.plug("3-4.%d" % i, 0x1000, i)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        before = self.where(g)
        self.assertEqual(len(before), 3)
        g.qmp("system_reset")                          # a reboot inside the guest
        self.assertEqual(self.where(g), before)
        g.stop()                                       # stop/start: a new QEMU
        g = self.guest(100)
        self.assertEqual(self.where(g), {})
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.where(g), before)

    def test_after_proxmox_drops_xhci_sync_brings_everything_back(self):
        # Proxmox unplugs "xhci" with every device on it when the last usbN
        # goes; a bootless test guest cannot complete a PCI unplug, so the
        # state after it is built directly: the VM has no xhci and holds nothing.
        g = self.guest(100, xhci=None)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertEqual(r.stdout.count(" as usbhost"), 2, r.stdout)
        self.assertEqual({b for b, p in self.where(g).values()}, {"usbhotplug-xhci0.0"})
