"""End-to-end tests, area rules (`make check-e2e AREA=rules` runs it alone): every rule kind, and
which VM wins."""
import json

from .harness import Case, Host


class Rules(Case):
    """Every rule kind, attached by hostbus + hostport, and which VM wins."""

    def attached(self, g):
        """{id: "BUS-PORT"} as QEMU really has it."""
        return {k: "%d-%s" % (v["hostbus"], v["hostport"]) for k, v in g.usb_hosts().items()}

    def test_path_rule_follows_the_controller_not_the_bus_number(self):
        g = self.guest(100)
        self.host.pci = {3: "0000:00:14.0", 4: "0000:00:1d.0"}
        self.tool.usb_conf(100, "path pci-0000:00:14.0-usb-0:4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.2", 0x1A86, 0x7523)
        self.host.plug("4-4", 0x1A86, 0x7524)           # port 4, another controller
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost3-4.2": "3-4.2"})
        # after a reboot the controller's bus is 7: the rule still finds it
        g.stop()
        g = self.guest(100)
        self.host = Host(self.dir)
        self.host.pci = {7: "0000:00:14.0", 3: "0000:00:1d.0"}
        self.host.hub("7-4")
        self.host.plug("7-4.2", 0x1A86, 0x7523)
        self.host.plug("3-4", 0x1A86, 0x7524)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost7-4.2": "7-4.2"})
        self.host.plug("7-4.3", 0x1A86, 0x7525)
        self.ok(self.tool.event(self.host, "add", "7-4.3"))
        self.assertEqual(g.ports(), ["7-4.2", "7-4.3"])

    def test_id_rules_on_any_port(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "id 046d:c52b\nid 0483:*\n")
        self.host.plug("1-1", 0x046D, 0xC52B)
        self.host.hub("2-3")
        self.host.plug("2-3.1", 0x0483, 0x5740)
        self.host.plug("2-3.2", 0x0483, 0x3748)
        self.host.plug("1-2", 0x046D, 0xC52C)           # another product of the vendor
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost1-1": "1-1", "usbhost2-3.1": "2-3.1",
                                            "usbhost2-3.2": "2-3.2"})
        self.host.plug("5-1", 0x046D, 0xC52B)
        self.ok(self.tool.event(self.host, "add", "5-1"))
        self.assertIn("usbhost5-1", g.usb_hosts())

    def test_serial_picks_one_of_two_identical_boards(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "serial B2 id 0483:5740\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x0483, 0x5740, serial="A1")
        b = self.host.plug("3-4.2", 0x0483, 0x5740, serial="B2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(self.attached(g), {"usbhost3-4.2": "3-4.2"})
        # removal: sysfs is gone, the serial unknown; the port says which
        self.host.unplug("3-4.2")
        self.ok(self.tool.event(self.host, "remove", "3-4.2", dev=b))
        self.assertEqual(g.ports(), [])
        # plugged in elsewhere, it follows
        self.host.plug("1-7", 0x0483, 0x5740, serial="B2")
        self.ok(self.tool.event(self.host, "add", "1-7"))
        self.assertEqual(self.attached(g), {"usbhost1-7": "1-7"})
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual(g.ports(), ["1-7"])

    def test_deny_wins_inside_the_file(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\ndeny 3-4.4        # the host's boot disk\ndeny id 0bda:*\n"
                                "serial KEEP\ndeny serial KEEP\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)
        self.host.plug("3-4.4", 0x0781, 0x5581)
        self.host.plug("3-4.2", 0x0BDA, 0x8153)
        self.host.plug("3-4.3", 0x1111, 0x2222, serial="KEEP")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.1"])
        for p in ("3-4.4", "3-4.2", "3-4.3"):
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual(g.ports(), ["3-4.1"])

    def test_serial_beats_id_beats_port_between_running_vms(self):
        a, b, c = self.guest(100), self.guest(101), self.guest(102)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "id 1234:5678\n")
        self.tool.usb_conf(102, "serial S1\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x1234, 0x5678, serial="S1")
        self.host.plug("3-4.2", 0x1234, 0x5678, serial="S2")
        self.host.plug("3-4.3", 0x1111, 0x2222, serial="S1x")
        for p in ("3-4.1", "3-4.2", "3-4.3"):
            self.ok(self.tool.event(self.host, "add", p))
        self.assertEqual((a.ports(), b.ports(), c.ports()), (["3-4.3"], ["3-4.2"], ["3-4.1"]))
        # a stopped VM does not compete: its device goes to the next best
        c.stop()
        self.host.plug("3-4.5", 0x1234, 0x5678, serial="S1")
        self.ok(self.tool.event(self.host, "add", "3-4.5"))
        self.assertEqual(b.ports(), ["3-4.2", "3-4.5"])

    def test_equal_claims_give_one_line_naming_both_vms(self):
        a, b = self.guest(100), self.guest(101)
        pa = self.tool.usb_conf(100, "id 1234:5678\n")
        pb = self.tool.usb_conf(101, "3-4\nid 1234:5678\n")
        self.host.plug("3-4", 0x1234, 0x5678, product="Board")
        r = self.failed(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(r.stderr, "pve-usb-hotplug: error: 3-4 (1234:5678 \"Board\") is claimed equally by "
                         "VM 100 (%s) and VM 101 (%s), both running: attached to neither; make one rule "
                         "more specific\n" % (pa, pb))
        self.assertEqual(a.ports() + b.ports(), [])
        r = self.failed(self.tool.run(["101", "post-start"], host=self.host))
        self.assertEqual(r.stderr.count("claimed equally"), 1, r.stderr)
        self.assertEqual(a.ports() + b.ports(), [])

    def test_what_proxmox_passes_is_left_to_proxmox(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(100, "name: desk\nusb0: host=046d:c52b,usb3=1\nhookscript: local:snippets/pve-usb-hotplug\n"
                               "[snap]\nusb1: host=3-4.3\n")
        self.tool.vm_conf(101, "usb0: host=3-4.2\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)
        self.host.plug("3-4.2", 0x1111, 0x0001)
        self.host.plug("3-4.3", 0x1111, 0x0002)          # only in a snapshot: ours
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("3-4.1 (046d:c52b) is passed by Proxmox itself (usb0 in VM 100's config); left to Proxmox", r.stdout)
        self.assertIn("3-4.2 (1111:0001) is passed by Proxmox itself (usb0 in VM 101's config); left to Proxmox", r.stdout)
        self.assertEqual(a.ports(), ["3-4.3"])
        r = self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertIn("left to Proxmox", r.stdout)
        self.assertEqual(a.ports() + b.ports(), ["3-4.3"])
        # VM 101 stopped: its usb0 no longer matters
        b.stop()
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(a.ports(), ["3-4.2", "3-4.3"])

    def test_a_starting_vm_takes_only_what_no_other_running_vm_holds(self):
        a = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-4.1\n")               # more specific, but not running yet
        self.host.hub("3-4")
        d = self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(a.ports(), ["3-4.1", "3-4.2"])
        b = self.guest(101)
        r = self.ok(self.tool.run(["101", "post-start"], host=self.host))
        self.assertIn("3-4.1 (1234:5678) stays with VM 100, which has it now ('port 3-4',", r.stdout)
        self.assertEqual((a.ports(), b.ports()), (["3-4.1", "3-4.2"], []))
        # plugged out and in again: now the more specific rule wins
        self.host.unplug("3-4.1")
        self.ok(self.tool.event(self.host, "remove", "3-4.1", dev=d))
        self.host.plug("3-4.1")
        self.ok(self.tool.event(self.host, "add", "3-4.1"))
        self.assertEqual((a.ports(), b.ports()), (["3-4.2"], ["3-4.1"]))

    def test_hostile_device_strings(self):
        g = self.guest(100)
        nasty = b'q"uote\\ back\nnew %n%s%x \x01\x7f\xff\xfe' + b"\xc3\xa9" + b"x" * 200
        self.tool.usb_conf(100, 'serial "%s"\n' % "".join(
            "\\x%02x" % c if c < 0x20 or c >= 0x7f or c in b'"\\' else chr(c) for c in nasty))
        self.host.plug("3-4", 0x1, 0x1, product=nasty, serial=nasty)
        self.host.plug("3-5", 0x1, 0x1, product=b"A" * 4096, serial=nasty[:-1])
        self.host.plug("3-6", 0x1, 0x1, serial=nasty + b"y")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("1 rule(s), all valid", r.stdout)
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4"])
        self.assertIn('added 3-4 (0001:0001 "q\\"uote\\\\ back\\x0anew %n%s%x \\x01\\x7f\\xff\\xfe\\xc3\\xa9xxx', r.stdout)
        self.assertNotIn("\x01", r.stdout + r.stderr)
        r = self.ok(self.tool.event(self.host, "add", "3-5"))
        self.assertEqual(g.ports(), ["3-4"])
        r = self.ok(self.tool.run(["status", "--json"], host=self.host))
        status = json.loads(r.stdout)
        dev = {d["port"]: d for d in status["devices"]}
        self.assertEqual(dev["3-4"]["state"], "waiting")
        # not UTF-8: shown escaped, as in the log
        self.assertEqual(dev["3-4"]["serial"], 'q\\"uote\\\\ back\\x0anew %n%s%x \\x01\\x7f\\xff\\xfe\\xc3\\xa9' + "x" * 200)
        self.assertEqual(dev["3-5"]["product"], "")      # longer than any real device string: dropped
        self.assertEqual(dev["3-6"]["state"], "unclaimed")
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertNotIn("\n new", r.stdout)
