"""End-to-end tests, area guests (`make check-e2e AREA=guests` runs it alone): QEMU and Xen guests
that Proxmox did not start, declared in the settings."""
import json
import os

from .harness import Case, PlainGuest


class OtherGuests(Case):
    """QEMU guests that Proxmox did not start, declared in the settings."""

    def plain(self, name, args=(), machine="pc", qemu_name=None, sock=None, pidfile=None):
        g = PlainGuest(sock or os.path.join(self.dir, "%s.qmp" % name), args, machine, qemu_name, pidfile)
        self.guests.append(g)
        return g

    def test_udev_add_and_remove_on_the_guests_own_controller(self):
        g = self.plain("desk", ["-device", "qemu-xhci,id=myxhci,p2=4,p3=4"])
        self.tool.declare("# a desktop started by hand\n[qemu desk]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("desk", "3-4\n")
        self.host.hub("3-4")
        d = self.host.plug("3-4.1", 0x046D, 0xC52B)
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("QEMU guest desk: added 3-4.1 (046d:c52b) as usbhost3-4.1 on myxhci.0 port 4", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4.1": {"hostbus": 3, "hostport": "4.1", "bus": "myxhci.0"}})
        self.host.unplug("3-4.1")
        r = self.ok(self.tool.event(self.host, "remove", "3-4.1", dev=d))
        self.assertIn("QEMU guest desk: detached 3-4.1 (046d:c52b) (usbhost3-4.1)", r.stdout)
        self.assertEqual(g.ports(), [])

    def test_a_guest_without_usb_controller_gets_one_on_the_root_bus(self):
        g = self.plain("bare")
        self.tool.declare("[qemu bare]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("bare", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("QEMU guest bare: added USB controller usbhotplug-xhci0 at pci.0.0x1f for 3-4", r.stdout)
        self.assertEqual(g.usb_hosts(), {"usbhost3-4": {"hostbus": 3, "hostport": "4", "bus": "usbhotplug-xhci0.0"}})
        self.assertEqual(g.parent_bus("usbhotplug-xhci0"), "/machine/i440fx/pci.0")

    def test_q35_takes_an_empty_root_port_and_says_so_when_there_is_none(self):
        g = self.plain("q", ["-device", "pcie-root-port,id=rp1,chassis=1,bus=pcie.0,addr=0x5"], machine="q35")
        self.tool.declare("[qemu q]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("q", "3-4\n3-5\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("QEMU guest q: added USB controller usbhotplug-xhci0 at rp1.0x0 for 3-4", r.stdout)
        self.assertEqual(g.ports(), ["3-4"])
        # no room left: q35's root bus takes no hot-plug
        h = self.plain("q2", machine="q35")
        self.tool.declare("[qemu q2]\nqmp = %s\n" % h.qmp_path)
        self.tool.guest_rules("q2", "3-4\n")
        r = self.failed(self.tool.run(["sync", "q2"], host=self.host))
        self.assertIn("QEMU guest q2: no free USB 2 port for 3-4 (0483:5740), and no room for another USB controller "
                      "(no free slot on a PCI bridge, an i440fx root bus or an empty pcie-root-port)", r.stderr)

    def test_xen_guest_is_found_by_name_among_the_domids(self):
        xen = os.path.join(self.dir, "xen")
        os.makedirs(xen)
        other = self.plain("o", ["-device", "qemu-xhci,id=xhci0"], qemu_name="other",
                           sock=os.path.join(xen, "qmp-libxl-3"))
        # libxl's usbctrl of version 3 is an nec-usb-xhci
        win = self.plain("w", ["-device", "nec-usb-xhci,id=xenusb-0,p2=15,p3=15"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-7"))
        self.tool.declare("[xen win10]\nqmp = %s/qmp-libxl-*\n" % xen)
        self.tool.guest_rules("win10", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("Xen guest win10: added 3-4 (0483:5740) as usbhost3-4 on xenusb-0.0 port 15", r.stdout)
        self.assertEqual((win.ports(), other.ports()), (["3-4"], []))
        # the domain restarts with a new domid: the same rules follow it
        win.stop()
        win = self.plain("w2", ["-device", "qemu-xhci,id=xhci0"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-8"))
        self.ok(self.tool.run(["sync", "win10"], host=self.host))
        self.assertEqual((win.ports(), other.ports()), (["3-4"], []))
        # two QEMUs with that name: neither is guessed
        dup = self.plain("w3", ["-device", "qemu-xhci,id=xhci0"], qemu_name="win10",
                         sock=os.path.join(xen, "qmp-libxl-9"))
        r = self.failed(self.tool.run(["sync", "win10"], host=self.host))
        self.assertIn("Xen guest win10: %s/qmp-libxl-* finds more than one QEMU; their -name is the same: make it tell them apart" % xen,
                      r.stderr)
        self.assertEqual(dup.ports(), [])

    def test_status_check_sync_and_release_name_the_guest(self):
        g = self.plain("lab", ["-device", "qemu-xhci,id=x,p2=8,p3=8"])
        self.tool.declare("[qemu lab]\nqmp = %s\n" % g.qmp_path)
        rules = self.tool.guest_rules("lab", "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740, product="Board")
        self.host.plug("3-4.2", 0x0483, 0x5741)
        # started without a hook: sync attaches what is plugged in
        r = self.ok(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: added 3-4.1 (0483:5740 \"Board\") as usbhost3-4.1 on x.0 port 8", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        dev = {d["port"]: d for d in st["devices"]}
        self.assertEqual(dev["3-4.1"]["claim"], {"guest": "lab", "kind": "qemu", "label": "QEMU guest lab",
                                                  "rule": "port 3-4", "file": rules, "line": 1})
        self.assertEqual(dev["3-4.1"]["held_by"], ["lab"])
        self.assertEqual([(v["guest"], v["kind"], v["running"], v["holds"], v["qmp"]) for v in st["vms"]],
                         [("lab", "qemu", True, ["3-4.1", "3-4.2"], g.qmp_path)])
        r = self.ok(self.tool.run(["status", "lab"], host=self.host))
        self.assertRegex(r.stdout, r"3-4.1 +0483:5740 .* QEMU guest lab: added, not open yet \('port 3-4', lab.usb.conf:1\)")
        self.assertIn("QEMU guest lab: running, 1 rule(s) in %s, holds 2 device(s)" % rules, r.stdout)
        r = self.ok(self.tool.run(["check", "lab"]))
        self.assertIn("%s: 1 rule(s), all valid" % rules, r.stdout)
        r = self.ok(self.tool.run(["release", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: released: everything pve-usb-hotplug added is gone", r.stdout)
        self.assertEqual(g.ports(), [])
        # held back: a plug leaves it alone until sync
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), [])
        r = self.ok(self.tool.run(["sync", "lab"], host=self.host))
        self.assertIn("QEMU guest lab: no longer released; its devices come back", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        # a name nobody declared
        r = self.tool.run(["status", "nosuch"], host=self.host)
        self.assertEqual(r.returncode, 2)
        self.assertIn("'nosuch' is neither a VM id (100 to 999999999) nor a guest declared in %s "
                      "([qemu NAME], [xen NAME] or [libvirt NAME])" % self.tool.config, r.stderr)

    def test_a_pid_file_says_whether_it_runs(self):
        pidfile = os.path.join(self.dir, "p.pid")
        g = self.plain("p", ["-device", "qemu-xhci,id=x"], pidfile=pidfile)
        self.tool.declare("[qemu p]\nqmp = %s\npidfile = %s\n" % (g.qmp_path, pidfile))
        self.tool.guest_rules("p", "3-4\n")
        self.host.plug("3-4", 0x0483, 0x5740)
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])
        # killed: its socket file stays, the pid file names a dead process
        g.proc.kill()
        g.proc.wait()
        self.assertTrue(os.path.exists(g.qmp_path))
        r = self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertIn("3-4 (0483:5740): no running VM claims it; nothing to do", r.stdout)
        st = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["guest"], v["running"]) for v in st["vms"]], [("p", False)])

    def test_proxmox_vms_and_other_guests_share_the_rules(self):
        vm = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        g = self.plain("desk", ["-device", "qemu-xhci,id=x"])
        self.tool.declare("[qemu desk]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("desk", "3-4.2\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740)
        self.host.plug("3-4.2", 0x046D, 0xC52B)
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        r = self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertIn("QEMU guest desk: added 3-4.2 (046d:c52b)", r.stdout)
        self.assertEqual((vm.ports(), g.ports()), (["3-4.1"], ["3-4.2"]))
        # the same claim in both: a new device goes to neither, and check
        # says so
        self.tool.guest_rules("desk", "3-4\n")
        self.host.plug("3-4.3", 0x1111, 0x2222)
        r = self.failed(self.tool.event(self.host, "add", "3-4.3"))
        self.assertIn("is claimed equally by VM 100 (%s) and QEMU guest desk (%s)"
                      % (os.path.join(self.tool.vm_dir, "100.usb.conf"), os.path.join(self.tool.config + ".d", "desk.usb.conf")),
                      r.stderr)
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("while VM 100 and QEMU guest desk both run, what it matches goes to neither", r.stderr)

    def test_a_storm_for_a_guest_without_controller_and_a_proxmox_vm(self):
        # the first plugs race to add the guest's controller: one is added
        vm, g = self.guest(100), self.plain("bare")
        self.tool.usb_conf(100, "3-4\n")
        self.tool.declare("[qemu bare]\nqmp = %s\n" % g.qmp_path)
        self.tool.guest_rules("bare", "3-5\n")
        self.host.hub("3-4")
        self.host.hub("3-5")
        devices = ["3-4.%d" % i for i in range(1, 6)] + ["3-5.%d" % i for i in range(1, 7)]
        for i, p in enumerate(devices):
            self.host.plug(p, 0x2000, i)
        chains = {p: ["add", "remove", "add"] if i % 3 else ["add", "remove", "add", "remove"]
                  for i, p in enumerate(devices)}
        self.assertEqual(self.storm(chains), [])
        want = sorted(p for p in devices if chains[p][-1] == "add")
        self.assertEqual(sorted(vm.ports() + g.ports()), want)
        self.assertEqual(sorted(g.ports()), [p for p in want if p.startswith("3-5")])
        names = [d["name"] for d in g.qmp("qom-list", path="/machine/peripheral")]
        self.assertEqual([n for n in names if n.startswith("usbhotplug-xhci")], ["usbhotplug-xhci0"])

    def test_declarations_are_checked_line_by_line(self):
        path = self.tool.declare("[qemu 123]\nqmp = /x\n"
                                 "[qemu good]\nqmp = relative\ncolour = red\n"
                                 "[qemu noqmp]\nrules = /r\n"
                                 "[xen good]\nqmp = /y\n")
        r = self.tool.run(["check"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("[qemu 123]"), 1, r.stderr)   # told once, not per key
        self.assertIn("%s:1: [qemu 123]: a guest's name is 1 to 48 letters, digits, '_', '.' or '-', starting "
                      "with a letter or a digit, and not only digits (those are Proxmox VMIDs)" % path, r.stderr)
        self.assertIn("%s:4: qmp must be an absolute path (got 'relative')" % path, r.stderr)
        self.assertIn("%s:5: unknown key 'colour' in section [qemu good]; known: qmp, qemu_name, pidfile, rules" % path,
                      r.stderr)
        self.assertIn("%s:6: [qemu noqmp] needs 'qmp = PATH', its QMP socket (QEMU's -qmp unix:PATH,server=on,wait=off)"
                      % path, r.stderr)
        self.assertIn("%s:8: 'good' is declared as [qemu good] already (%s:3); a name names one guest" % (path, path),
                      r.stderr)
        # a declared guest without its rules file is told about
        self.tool.declare("[qemu lonely]\nqmp = /nonexistent.qmp\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("QEMU guest lonely (%s:1): there is no %s; it gets no devices until there is"
                      % (os.path.join(self.tool.config + ".d", "guests.conf"),
                         os.path.join(self.tool.config + ".d", "lonely.usb.conf")), r.stderr)
