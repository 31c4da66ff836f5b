"""End-to-end tests, area proxmox (`make check-e2e AREA=proxmox` runs it alone): a good Proxmox
citizen: mappings, destroyed VMs, migration, release."""
import json
import os
import socket
import subprocess
import time

from .harness import Case


class Proxmox(Case):
    """A good Proxmox citizen (issue 11)."""

    node = socket.gethostname().split(".")[0]

    def mapping(self, text):
        path = os.path.join(self.dir, "mapping-usb.cfg")
        with open(path, "w") as f:
            f.write(text)
        self.tool.write_settings(extra="[paths]\nmapping_file = %s\n" % path)
        return path

    def test_a_mapped_device_is_left_to_proxmox(self):
        a, b = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(101, "usb0: mapping=desk\nusb1: mapping=board\n")
        self.mapping("desk\n\tmap node=othernode,id=1111:1111\n\tmap node=%s,id=046d:c52b\n"
                     "\tdescription keyboard\n\nboard\n\tmap node=%s,id=0483:5740,path=3-4.3\n"
                     % (self.node, self.node))
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B)     # mapping desk, by id
        self.host.plug("3-4.2", 0x0483, 0x5740)     # board's id, but not its path
        self.host.plug("3-4.3", 0x0483, 0x5740)     # mapping board, by path
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("3-4.1 (046d:c52b) is passed by Proxmox itself (usb0 in VM 101's config, mapping 'desk'); left to Proxmox", r.stdout)
        self.assertIn("3-4.3 (0483:5740) is passed by Proxmox itself (usb1 in VM 101's config, mapping 'board')", r.stdout)
        self.assertEqual(a.ports(), ["3-4.2"])
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertRegex(r.stdout, r"3-4\.1 +046d:c52b .*VM 101: passed by Proxmox itself \(usb0, mapping 'desk'\)")
        j = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        d = [x for x in j["devices"] if x["port"] == "3-4.3"][0]
        self.assertEqual((d["state"], d["claim"]["proxmox_mapping"]), ("proxmox", "board"))

    def test_a_missing_or_malformed_mapping_file_is_a_warning(self):
        self.tool.usb_conf(100, "3-4\n")
        self.tool.vm_conf(100, "usb0: mapping=desk\n")
        path = self.mapping("desk\n\tmap node=%s,id=xyz\n9bad\n" % self.node)
        r = self.ok(self.tool.run(["check", "100"]))
        self.assertIn("%s:2: mapping 'desk': id must be VENDOR:PRODUCT, four hex digits each" % path, r.stderr)
        self.assertIn("%s:3: '9bad' is not a mapping name" % path, r.stderr)
        self.assertIn("VM 100: usb0 uses mapping 'desk', which has no map line for node '%s' in %s" % (self.node, path), r.stderr)
        os.unlink(path)
        r = self.ok(self.tool.run(["check", "100"]))
        self.assertIn("VM 100: usb0 uses mapping 'desk', but %s cannot be read (No such file or directory)" % path, r.stderr)
        # and events still work
        g = self.guest(100)
        self.host.plug("3-4")
        self.ok(self.tool.event(self.host, "add", "3-4"))
        self.assertEqual(g.ports(), ["3-4"])

    def test_rules_left_by_a_destroyed_or_migrated_vm_are_named(self):
        conf = self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        self.tool.vm_conf(101, "memory: 512\n")
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s: there is no 100.conf on this node (the VM was destroyed or migrated away?): a new VM 100 would inherit these rules" % conf, r.stderr)
        self.assertNotIn("101.conf", r.stderr)
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("VM 100: not running, 1 rule(s) in %s, holds 0 device(s)\n  no 100.conf on this node (destroyed or migrated away?)" % conf, r.stdout)
        j = json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)
        self.assertEqual([(v["vmid"], v["vm_config"]) for v in j["vms"]], [(100, False), (101, True)])
        # a starting VM has its conf: pre-start says nothing of it
        r = self.ok(self.tool.run(["101", "pre-start"]))
        self.assertEqual(r.stderr, "")

    def test_a_port_path_qemu_cannot_compare_is_refused(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-14\n")
        port = "3-14"
        for n in (10, 11, 12, 13):
            port += ".%d" % n
            self.host.hub(port)
        self.host.plug(port + ".1", 0x1, 0x2)        # hostport 14.10.11.12.13.1: 16 characters
        self.host.plug("3-14.10.2", 0x1, 0x3)
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("VM 100: cannot pass 3-14.10.11.12.13.1 (0001:0002): its port path '14.10.11.12.13.1' is longer than the 15 characters QEMU compares", r.stderr)
        self.assertEqual(g.ports(), ["3-14.10.2"])

    def migrate(self, src, vmid):
        """Migrates src to a new QEMU started from the Proxmox layout only;
        returns (the source's final migration status, the target)."""
        tdir = os.path.join(self.dir, "target-%d" % vmid)
        os.makedirs(tdir, exist_ok=True)
        sock = os.path.join(tdir, "migrate.sock")
        tgt = self.guest(vmid, qmp_dir=tdir, incoming="unix:" + sock)
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.01)
        src.qmp("migrate", uri="unix:" + sock)
        deadline = time.monotonic() + 60
        while True:
            status = src.qmp("query-migrate").get("status")
            if status in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return status, tgt

    def release(self, g, vmid):
        """pve-usb-hotplug release, with the guest's part played: a bootless
        test guest never acknowledges a PCI unplug, and a system_reset
        completes it as a guest OS would (the tool keeps no QMP connection
        open while it waits)."""
        argv, env = self.tool.cmd(["release", str(vmid)], host=self.host)
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # reset until it is done: the unplug may be asked for late on a
        # busy machine, and a reset before it completes nothing
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                p.wait(timeout=0.3)
                break
            except subprocess.TimeoutExpired:
                try:
                    g.qmp("system_reset")
                except OSError:      # the tool holds the socket: next round
                    pass
        out, err = p.communicate(timeout=60)
        r = subprocess.CompletedProcess(argv, p.returncode, out, err)
        return self.ok(r)

    def test_release_lets_a_migration_complete(self):
        kept, rel = self.guest(100), self.guest(101)
        self.tool.usb_conf(100, "3-4\n")
        self.tool.usb_conf(101, "3-5\n")
        for p in ("3-4", "3-5"):
            self.host.hub(p)
            for i in (1, 2):
                self.host.plug("%s.%d" % (p, i), 0x1000, i)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["101", "post-start"], host=self.host))
        self.assertEqual(len(rel.usb_hosts()), 2)
        # without release, the target cannot take the state
        status, tgt = self.migrate(kept, 100)
        self.assertNotEqual(tgt.proc.wait(timeout=60), 0)
        # QEMU 7.2 and 10: "Unknown savevm section or instance ..."; 11: "Unknown section or instance ..."
        self.assertRegex(tgt.proc.stderr.read().decode(), r"Unknown (savevm )?section or instance '[^']*usb-host'")
        # with it, the migration completes and the target runs on
        r = self.release(rel, 101)
        self.assertIn("VM 101: detached 3-5.1 (usbhost3-5.1): released", r.stdout)
        self.assertIn("VM 101: released: it has only what its 101.conf describes", r.stdout)
        names = {d["name"] for d in rel.qmp("qom-list", path="/machine/peripheral")}
        self.assertFalse({n for n in names if n.startswith("usbhost") or n.startswith("usbhotplug")}, names)
        self.assertIn("xhci", names)
        status, tgt = self.migrate(rel, 101)
        self.assertEqual(status, "completed")
        self.assertIsNone(tgt.proc.poll())
        self.assertIn(tgt.qmp("query-status")["status"], ("paused", "running", "postmigrate", "prelaunch"))

    def test_a_released_vm_is_left_alone_until_sync(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.ok(self.tool.run(["release", "100"], host=self.host))
        self.assertEqual(g.ports(), [])
        self.host.plug("3-4.2")
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(g.ports(), [])
        r = self.ok(self.tool.run(["status"], host=self.host))
        self.assertIn("VM 100: running, released, 1 rule(s)", r.stdout)
        self.assertIn("  released: USB events leave it alone until 'pve-usb-hotplug sync 100' or its next start", r.stdout)
        self.assertTrue(json.loads(self.ok(self.tool.run(["status", "--json"], host=self.host)).stdout)["vms"][0]["released"])
        r = self.ok(self.tool.run(["sync", "100"], host=self.host))
        self.assertIn("VM 100: no longer released; its devices come back", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])
        # a release lasts only as long as its QEMU: a restart is not held back
        self.release(g, 100)
        g.stop()
        g = self.guest(100)
        self.ok(self.tool.event(self.host, "add", "3-4.2"))
        self.assertEqual(g.ports(), ["3-4.2"])
        self.assertEqual(self.tool.run(["release"]).returncode, 2)

    def test_post_start_on_a_migration_target_attaches_nothing(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host, env={"PVE_MIGRATED_FROM": "pve1"}))
        self.assertEqual(r.stdout, "pve-usb-hotplug: VM 100: started as the target of a migration from node pve1: nothing is attached now; run 'pve-usb-hotplug sync 100' when the migration has finished\n")
        self.assertEqual(g.ports(), [])
