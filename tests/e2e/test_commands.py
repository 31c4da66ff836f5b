"""End-to-end tests, area commands (`make check-e2e AREA=commands` runs it alone): what the operator
runs: status, sync, identify, check."""
import json
import os

from .harness import Case, Host


class Commands(Case):
    """What the operator runs: status, sync, identify, check."""

    def scenario(self):
        """Two running VMs, one stopped, Proxmox's own passthrough, a conflict."""
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\ndeny 3-4.5\n")
        self.tool.usb_conf(101, "3-4.2\nid 0951:*\n")
        self.tool.usb_conf(102, "serial STOPPED\n")
        self.tool.usb_conf(103, "3-6\n")
        self.tool.usb_conf(104, "3-6\n")
        self.guest(103)
        self.guest(104)
        self.tool.vm_conf(101, "usb0: host=abcd:0001\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B, product="Receiver", speed="12")
        self.host.hub("3-4.2")
        self.host.plug("3-4.2.1", 0x0483, 0x5740, product="Board", serial="S1")
        self.host.plug("3-4.3", 0xABCD, 0x0001)          # Proxmox's
        self.host.plug("3-4.5", 0x0781, 0x5581)          # denied
        self.host.plug("3-5", 0x0951, 0x1666, speed="5000")
        self.host.plug("3-6", 0x2222, 0x3333)            # conflict
        self.host.plug("3-7", 0x3333, 0x4444, serial="STOPPED")
        self.host.plug("3-8", 0x4444, 0x5555)            # nobody's
        return a, b

    def test_status_json_matches_what_the_guests_have(self):
        a, b = self.scenario()
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["101", "post-start"], host=self.host))
        a.qmp("device_del", id="usbhost3-4.1")           # gone behind the tool's back
        r = self.ok(self.tool.run(["status", "--json"], host=self.host))
        st = json.loads(r.stdout)
        dev = {d["port"]: d for d in st["devices"]}
        self.assertEqual(sorted(dev), ["3-4", "3-4.1", "3-4.2", "3-4.2.1", "3-4.3", "3-4.5", "3-5", "3-6",
                                       "3-7", "3-8"])
        states = {p: d["state"] for p, d in dev.items()}
        # QEMU cannot open a simulated device: what the VMs hold is "waiting"
        # (the real-host suite sees "attached", open)
        self.assertEqual(states, {"3-4": "hub", "3-4.1": "not-attached", "3-4.2": "hub",
                                  "3-4.2.1": "waiting", "3-4.3": "proxmox", "3-4.5": "denied", "3-5": "waiting",
                                  "3-6": "conflict", "3-7": "not-running", "3-8": "unclaimed"})
        self.assertEqual({p for p, d in dev.items() if d["open"]}, set())
        # every one held is what QEMU says, on the VM the status names
        held = {100: a.ports(), 101: b.ports()}
        for p, d in dev.items():
            self.assertEqual(d["held_by"], [str(v) for v in (100, 101) if p in held[v]], p)
            if d["state"] in ("attached", "waiting"):
                self.assertIn(p, held[d["claim"]["vmid"]])
        self.assertEqual(dev["3-4.2.1"]["claim"], {"vmid": 101, "guest": "101", "kind": "proxmox", "label": "VM 101",
                                                    "rule": "port 3-4.2", "line": 1,
                                                    "file": os.path.join(self.tool.vm_dir, "101.usb.conf")})
        self.assertEqual(dev["3-5"]["claim"]["rule"], "id 0951:*")
        self.assertEqual(dev["3-4.3"]["claim"], {"vmid": 101, "guest": "101", "kind": "proxmox", "label": "VM 101",
                                                  "proxmox_usb": 0, "proxmox_mapping": None})
        self.assertEqual((dev["3-6"]["claim"]["rival"], dev["3-6"]["claim"]["rival_label"]), ("104", "VM 104"))
        self.assertEqual(dev["3-7"]["claim"]["vmid"], 102)
        self.assertEqual(dev["3-4.2.1"]["path"], "pci-0000:00:03.0-usb-0:4.2.1")
        self.assertEqual((dev["3-4.2.1"]["product"], dev["3-4.2.1"]["serial"], dev["3-5"]["speed"]),
                         ("Board", "S1", "5000"))
        vms = {v["vmid"]: v for v in st["vms"]}
        self.assertEqual(vms[100]["holds"], a.ports())
        self.assertEqual(vms[101]["holds"], b.ports())
        self.assertFalse(vms[102]["running"])
        # the same as text, a tree
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("Bus 3  pci-0000:00:03.0\n", r.stdout)
        self.assertRegex(r.stdout, r"\n    3-4.1 +046d:c52b +12M  \"Receiver\" +VM 100: NOT attached \('port 3-4', 100.usb.conf:1\)")
        self.assertRegex(r.stdout, r"\n      3-4.2.1 +0483:5740 +480M  \"Board\" +VM 101: added, not open yet \('port 3-4.2', 101.usb.conf:1\)")
        self.assertIn("VM 101: passed by Proxmox itself (usb0)", r.stdout)
        self.assertIn("denied to VM 100 ('deny port 3-4.5', 100.usb.conf:2)", r.stdout)
        self.assertIn("VM 103 and VM 104 claim it equally: attached to neither", r.stdout)
        # one VM: its devices and the hubs above them
        r = self.ok(self.tool.run(["status", "101", "--json"], host=self.host))
        self.assertEqual([d["port"] for d in json.loads(r.stdout)["devices"]],
                         ["3-4", "3-4.2", "3-4.2.1", "3-5"])

    def test_sync_repairs_a_stale_and_a_missing_device(self):
        a, b = self.scenario()
        self.tool.usb_conf(100, "3-4\ndeny 3-4.3\ndeny 3-4.5\n")
        for dev_id, port in (("usbhost3-9", "9"), ("usbhost3-4.1", "4.1"), ("usbhost3-4.3", "4.3"),
                             ("mine", "4.1")):
            a.qmp("device_add", driver="usb-host", id=dev_id, hostbus=3, hostport=port, bus="xhci.0")
        self.host.plug("3-4.4", 0x1, 0x2)                # missing in VM 100
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: detached 3-9 (usbhost3-9): no device is plugged in there any more", r.stdout)
        self.assertIn("VM 100: detached 3-4.3 (usbhost3-4.3): no rule of this VM claims it any more", r.stdout)
        # one added by hand, pinned to nothing, is replaced by a pinned one
        self.assertIn("VM 100: usbhost3-4.1 was left for 0000:0000, and 3-4.1 (046d:c52b \"Receiver\") is plugged in there now: detached it first", r.stdout)
        self.assertIn("VM 100: added 3-4.4 (0001:0002) as usbhost3-4.4 on usbhotplug-xhci0.0", r.stdout)
        self.assertEqual(sorted(a.usb_hosts()), ["mine", "usbhost3-4.1", "usbhost3-4.4"])
        self.assertEqual(b.ports(), [])                  # only the VM named
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("VM 100: in sync; it holds 2 device(s) through pve-usb-hotplug", r.stdout)
        self.assertEqual(b.ports(), ["3-4.2.1", "3-5"])
        self.assertIn("3-6 (2222:3333) is claimed equally by VM 103", r.stderr)
        self.assertEqual(r.stdout.count(" as usbhost"), 2, r.stdout)
        # a device that moved to a more specific VM's rule is taken from the holder only when unheld
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertNotIn(" as usbhost", r.stdout)
        self.assertNotIn("detached", r.stdout)
        r = self.failed(self.tool.run(["sync", "102"], host=self.host))
        self.assertIn("VM 102 is not running; nothing to sync", r.stderr)

    def test_sync_takes_back_what_a_vm_holds_without_rules(self):
        a = self.guest(100)
        a.qmp("device_add", driver="usb-host", id="usbhost3-4", hostbus=3, hostport="4", bus="xhci.0")
        self.host.plug("3-4")
        r = self.ok(self.tool.run(["sync"], host=self.host))
        self.assertIn("no running VM has a .usb.conf", r.stdout)
        self.assertEqual(a.ports(), ["3-4"])             # not named, no rules: untouched
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: detached 3-4 (usbhost3-4): no rule of this VM claims it any more", r.stdout)
        self.assertEqual(a.ports(), [])

    def test_identify_prints_the_lines_for_the_next_device(self):
        self.host.hub("3-4")
        new = Host(self.dir)
        new.pci = {3: "0000:00:14.0"}
        self.host.pci = new.pci
        new.plug("3-4.2", 0x0483, 0x5740, product="Board", serial=b'A "1"\nB', speed="12")
        r = self.ok(self.tool.run_while_plugging(["identify", "--timeout", "20"], self.host, new))
        self.assertIn("Plugged in: 3-4.2\n", r.stdout)
        self.assertIn("  path:     pci-0000:00:14.0-usb-0:4.2\n", r.stdout)
        self.assertIn("  serial:   \"A \\\"1\\\"\\x0aB\"\n", r.stdout)
        lines = [l.split("#")[0].strip() for l in r.stdout.splitlines()[-4:]]
        self.assertEqual(lines, ["port 3-4.2", "path pci-0000:00:14.0-usb-0:4.2", "id 0483:5740",
                                 "serial \"A \\\"1\\\"\\x0aB\" id 0483:5740"])
        # each printed line, put into a .usb.conf, selects the device
        g = self.guest(100)
        self.host.plug("3-4.2", 0x0483, 0x5740, serial=b'A "1"\nB')
        for line in lines:
            self.tool.usb_conf(100, line + "\n")
            self.ok(self.tool.run(["100", "post-start"], host=self.host))
            self.assertEqual(g.ports(), ["3-4.2"], line)
            g.qmp("device_del", id="usbhost3-4.2")
        # a hub is named and waited past; nothing at all is a clear timeout
        hub = Host(self.dir)
        hub.hub("3-5")
        wait = 2
        r = self.failed(self.tool.run_while_plugging(["identify", "--timeout", str(wait)], self.host, hub))
        self.assertIn("3-5 is a hub (05e3:0608); hubs are never passed", r.stdout)
        self.assertIn("no USB device was plugged in within %d s" % wait, r.stderr)

    def test_check_warns_about_equal_claims_and_pre_start_runs_it(self):
        a = self.tool.usb_conf(100, "3-4\nid 046d:c52b\n")
        b = self.tool.usb_conf(101, "port 3-4\nserial X\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s:1: 'port 3-4' is also in %s:1; while VM 100 and VM 101 both run, what it matches goes to neither" % (a, b), r.stderr)
        self.assertEqual(r.stderr.count("is also in"), 1)
        self.tool.usb_conf(101, "port 3-4\nserial \"X\n")
        r = self.ok(self.tool.run(["101", "pre-start"]))
        self.assertIn("%s:2: a quoted value is not closed (missing \"); line ignored" % b, r.stderr)
        self.assertIn("VM 101: USB hot-plug rules have problems (see above); the VM starts anyway", r.stderr)
        self.assertNotIn("error:", r.stderr)

    def test_usage_errors(self):
        for args in (["status", "x"], ["status", "100", "101"], ["sync", "--json"],
                     ["identify", "100"], ["identify", "--timeout", "0"], ["check", "--json"]):
            r = self.tool.run(args)
            self.assertEqual(r.returncode, 2, args)
