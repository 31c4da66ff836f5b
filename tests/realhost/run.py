#!/usr/bin/env python3
"""The real-host suite: the installed package in a VM with a real kernel,
the stock systemd-udevd and the shipped rule, USB devices plugged in and
pulled out through the outer QEMU, inner VMs laid out as Proxmox lays them
out. Every assertion reads the inner QEMU's own state (QOM "attached": the
device is really open), never only the program's log.

Outer topology: xhci port 1 a usb-hub (devices at 1-1.N), port 2 free for a
SuperSpeed stick (on the USB 3 bus 2). QEMU's keyboard, mouse and tablet
share one vendor:product (0627:0001)."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bed as bedmod  # noqa: E402
import libvirtsim  # noqa: E402

BED = None
DEB = None


def open_ports(held):
    return sorted(v["hostport"] for v in held.values() if v["attached"])


class RealHost(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global BED
        if BED is None:
            bedmod.prepare()
            cls_dir = tempfile.mkdtemp(prefix="puh-realhost-")
            BED = bedmod.Bed(cls_dir, deb=DEB, inner_accel="tcg")
            # the package enables its listener; the host's policy-rc.d may
            # keep dpkg from starting it
            # dpkg under TCG on a busy machine has taken over a minute
            r = BED.sh("dpkg -i /bed/pkg.deb >/tmp/dpkg.log 2>&1 && udevadm control --reload && "
                       "systemctl start pve-usb-hotplug.service", timeout=600)
            assert r["rc"] == 0, (r, BED.sh("cat /tmp/dpkg.log"))
            # listening once its marker is there (systemctl start returns sooner)
            r = BED.wait_for(lambda: BED.sh("test -e /run/pve-usb-hotplug/listening")["rc"], lambda rc: rc == 0, 20)
            assert r == 0, BED.sh("systemctl status pve-usb-hotplug.service")
        cls.bed = BED

    def setUp(self):
        self.addCleanup(self.nothing_held)
        self.vms = []
        self.devs = []
        self.bed.plug("hub", "usb-hub", "1")
        self.present("1-1")

    def tearDown(self):
        for d in reversed(self.devs):
            try:
                self.bed.unplug(d)
            except Exception:       # noqa: BLE001 - gone already
                pass
        try:
            self.bed.unplug("hub")
        except Exception:           # noqa: BLE001
            pass
        self.settle()
        for vmid in self.vms:
            self.bed.stop_vm(vmid)
            self.tool(str(vmid), "post-stop")   # as Proxmox runs it
        # the listener's files stay
        self.bed.sh("find /run/pve-usb-hotplug -mindepth 1 ! -name listening ! -name held -delete")

    def nothing_held(self):
        """The last cleanup: once the test's guests are gone (some by its
        own cleanups), the listener holds no port before the next test."""
        r = self.bed.wait_for(lambda: self.bed.sh("test -e /run/pve-usb-hotplug/held")["rc"], lambda rc: rc != 0, 20)
        self.assertNotEqual(r, 0, self.bed.sh("cat /run/pve-usb-hotplug/held"))

    def settle(self):
        self.bed.sh("udevadm settle -t 30")

    def present(self, *ports):
        """Waits until the kernel has the devices at ports (settle alone only
        waits for events already queued: a hub's devices come later), then
        until udev has handled them."""
        test = " && ".join("test -e /sys/bus/usb/devices/%s" % p for p in ports)
        r = self.bed.wait_for(lambda: self.bed.sh(test)["rc"], lambda rc: rc == 0, 30)
        self.assertEqual(r, 0, "%s not there" % (ports,))
        self.settle()

    def vm(self, vmid, rules, extra=""):
        self.bed.start_vm(vmid, rules, extra)
        self.vms.append(vmid)

    def plug(self, dev_id, driver, port, **props):
        self.bed.plug(dev_id, driver, port, **props)
        self.devs.append(dev_id)

    def unplug(self, dev_id):
        self.bed.unplug(dev_id)
        self.devs.remove(dev_id)

    def tool(self, *args):
        return self.bed.run(["pve-usb-hotplug"] + list(args))

    def held_now(self, vmid):
        """What the inner VM holds, or None while its QMP socket is busy
        (the program is talking to it; QEMU serves one client): asked again."""
        try:
            return self.bed.held(vmid)
        except RuntimeError:
            return None

    def wait_open(self, vmid, ports, timeout=20):
        held = self.bed.wait_for(lambda: self.held_now(vmid),
                                 lambda h: h is not None and open_ports(h) == sorted(ports), timeout)
        self.assertIsNotNone(held, "QEMU's socket stayed busy")
        self.assertEqual(open_ports(held), sorted(ports), held)
        return held

    def wait_gone(self, vmid, ports=(), timeout=20):
        held = self.bed.wait_for(lambda: self.held_now(vmid),
                                 lambda h: h is not None and sorted(v["hostport"] for v in h.values()) == sorted(ports),
                                 timeout)
        self.assertIsNotNone(held, "QEMU's socket stayed busy")
        self.assertEqual(sorted(v["hostport"] for v in held.values()), sorted(ports), held)

    def test_post_start_attaches_what_is_plugged_behind_a_hub(self):
        self.plug("kbd", "usb-kbd", "1.1")
        self.plug("mouse", "usb-mouse", "1.2")
        self.present("1-1.1", "1-1.2")
        self.vm(100, "1-1\n")
        r = self.tool("100", "post-start")
        self.assertEqual(r["rc"], 0, r)
        self.assertIn("VM 100: added 1-1.1 (0627:0001", r["out"])
        self.wait_open(100, ["1.1", "1.2"])

    def test_plug_and_unplug_through_udev_and_a_hub_pulled_out(self):
        self.vm(100, "1-1\n")
        self.tool("100", "post-start")
        self.plug("kbd", "usb-kbd", "1.3")
        self.wait_open(100, ["1.3"])
        self.unplug("kbd")
        self.wait_gone(100)
        # a hub with devices on it pulled out: every device goes
        self.plug("kbd2", "usb-kbd", "1.4")
        self.plug("tab", "usb-tablet", "1.5")
        self.wait_open(100, ["1.4", "1.5"])
        self.bed.unplug("hub")
        self.devs = []
        self.wait_gone(100)
        self.bed.plug("hub", "usb-hub", "1")

    def test_a_superspeed_stick_lands_on_a_usb3_port(self):
        self.vm(100, "2-2\n")
        self.tool("100", "post-start")
        img = os.path.join(self.bed.share, "stick.img")
        with open(img, "wb") as f:
            f.truncate(16 * 1024 * 1024)
        self.bed.qmp("blockdev-add", driver="raw", **{"node-name": "stick",
                     "file": {"driver": "file", "filename": img}})
        self.addCleanup(lambda: self.bed.qmp("blockdev-del", **{"node-name": "stick"}))
        self.plug("stick", "usb-storage", "2", drive="stick")
        speed = self.bed.wait_for(lambda: self.bed.sh("cat /sys/bus/usb/devices/2-2/speed")["out"].strip(),
                                  lambda s: s != "", 20)
        self.assertEqual(speed, "5000")
        held = self.wait_open(100, ["2"])
        self.assertIn(held["usbhost2-2"]["bus"], ("xhci.0", "usbhotplug-xhci0.0"))
        self.unplug("stick")
        self.wait_gone(100)

    def disks(self, vmid):
        r = self.bed.run(["python3", "/bed/qmpq.py", str(vmid), "disks"])
        return json.loads(r["out"]) if r["rc"] == 0 else None

    def qemu_has_open(self, vmid, dev):
        """Whether the inner QEMU has the host's block device dev open."""
        r = self.bed.sh("ls -l /proc/$(cat /var/run/qemu-server/%d.pid)/fd | grep -c ' -> %s$'" % (vmid, dev))
        return r["out"].strip() not in ("", "0")

    def test_a_usb_disk_becomes_a_scsi_disk_and_leaves_nothing_open(self):
        # a port rule covers the enclosure: the disk rule wins over it
        self.vm(100, "1-1\ndisk PUHDISK1\n", extra="-device virtio-scsi-pci,id=scsihw0,bus=pci.0,addr=0x5")
        # its port is held: the enclosure goes to the host's usb-storage
        cursor = self.post_start_held(100, "1-1")
        img = os.path.join(self.bed.share, "disk.img")
        with open(img, "wb") as f:
            f.truncate(32 * 1024 * 1024)
        self.bed.qmp("blockdev-add", driver="raw", **{"node-name": "disk1",
                     "file": {"driver": "file", "filename": img}})
        self.addCleanup(lambda: self.bed.qmp("blockdev-del", **{"node-name": "disk1"}))
        self.plug("disk1", "usb-storage", "1.2", drive="disk1", serial="PUHDISK1")
        # the kernel's sd device, and udev's by-id link for it
        link = self.bed.wait_for(
            lambda: self.bed.sh("ls /dev/disk/by-id/ | grep PUHDISK1 | grep -v part")["out"].split(),
            lambda links: len(links) > 0, 30)
        self.assertTrue(link, self.bed.sh("ls -l /dev/disk/by-id/; lsblk"))
        dev = self.bed.sh("readlink -f /dev/disk/by-id/%s" % link[0])["out"].strip()
        got = self.bed.wait_for(lambda: self.disks(100),
                                lambda d: d is not None and list(d["devices"].values()) == ["scsi-hd"], 30)
        self.assertEqual(list(got["devices"].values()), ["scsi-hd"],
                         (got, self.bed.sh("journalctl -t pve-usb-hotplug --no-pager | tail -20")))
        self.assertEqual(sorted(got["nodes"].values()), ["/dev/disk/by-id/" + link[0]] * 2)
        self.assertTrue(self.qemu_has_open(100, dev))
        # the enclosure itself is no usb-host of the VM
        self.assertEqual(self.held_now(100), {})
        status = self.tool("status")["out"]
        self.assertRegex(status, r"%s .* QEMU_QEMU_HARDDISK_PUHDISK1-0:0 at 1-1.2  VM 100: attached as scsi-hd usbdisk-" % os.path.basename(dev))
        # pulled out: detached, and the host's device is free again
        self.unplug("disk1")
        got = self.bed.wait_for(lambda: self.disks(100),
                                lambda d: d is not None and d == {"devices": {}, "nodes": {}}, 30)
        self.assertEqual(got, {"devices": {}, "nodes": {}},
                         self.bed.sh("journalctl -t pve-usb-hotplug --no-pager | tail -20"))
        self.assertFalse(self.qemu_has_open(100, dev))
        gone = self.bed.wait_for(lambda: self.bed.sh("test -e /sys/class/block/%s" % os.path.basename(dev))["rc"],
                                 lambda rc: rc != 0, 20)
        self.assertNotEqual(gone, 0, "the kernel still has %s" % dev)
        log = self.bed.sh("journalctl -t pve-usb-hotplug --no-pager")["out"]
        self.assertIn("it was pulled out (data the guest had not written to it yet is lost", log)
        self.assertIn("1-1.2: not passed to a guest: handed to the host's drivers", self.listener_log(cursor))

    def driver(self, iface):
        r = self.bed.sh("basename $(readlink /sys/bus/usb/devices/%s/driver) 2>/dev/null" % iface)
        return r["out"].strip()

    def bound_by_host(self, port):
        """Whether a host HID driver ever announced the device at port."""
        return "-%s/input0" % port in self.bed.sh("dmesg")["out"]

    def listener_log(self, cursor=None):
        """The listener's log after cursor; with none, the cursor of its end."""
        if cursor is None:
            out = self.bed.sh("journalctl -u pve-usb-hotplug.service -n 0 --show-cursor")["out"]
            return out.split("-- cursor: ", 1)[1].strip()
        return self.bed.sh("journalctl -u pve-usb-hotplug.service --after-cursor '%s'" % cursor)["out"]

    def post_start_held(self, vmid, port):
        """post-start, then until the listener holds port for the VM."""
        cursor = self.listener_log()
        self.assertEqual(self.tool(str(vmid), "post-start")["rc"], 0)
        want = "holding port %s (VM %d): the host's drivers stay off what is plugged there" % (port, vmid)
        log = self.bed.wait_for(lambda: self.listener_log(cursor), lambda o: want in o, 20)
        self.assertIn(want, log)
        return cursor

    def test_an_idle_held_hub_suspends_and_a_plug_still_reaches_the_guest(self):
        # the hub's usbfs file is open for its ports, not for I/O: it may
        # runtime-suspend like any idle hub (USBDEVFS_ALLOW_SUSPEND)
        self.vm(100, "1-1\n")
        self.post_start_held(100, "1-1")
        state = "/sys/bus/usb/devices/1-1/power/runtime_status"
        st = self.bed.wait_for(lambda: self.bed.sh("cat %s" % state)["out"].strip(),
                               lambda v: v == "suspended", 30)
        self.assertEqual(st, "suspended", self.bed.sh("grep . /sys/bus/usb/devices/1-1/power/*")["out"])
        self.plug("kbd", "usb-kbd", "1.1")
        self.wait_open(100, ["1.1"])

    def test_a_plug_storm_across_a_listener_restart_loses_nothing(self):
        # every package upgrade restarts the listener: plugs during the
        # restart reach their guest, or the host's drivers, all the same
        self.vm(100, "1-1\ndeny 1-1.4\n")
        self.post_start_held(100, "1-1")
        self.bed.sh("systemctl restart pve-usb-hotplug.service </dev/null >/dev/null 2>&1 &")
        for i, driver in enumerate(["usb-kbd", "usb-mouse", "usb-tablet", "usb-mouse"], 1):
            self.plug("d%d" % i, driver, "1.%d" % i)
        self.present("1-1.1", "1-1.2", "1-1.3", "1-1.4")
        self.wait_open(100, ["1.1", "1.2", "1.3"], timeout=40)
        self.assertEqual(self.bed.wait_for(lambda: self.driver("1-1.4:1.0"), bool, 30), "usbhid",
                         self.bed.sh("journalctl -b -u pve-usb-hotplug.service | tail -30")["out"])
        r = self.bed.wait_for(lambda: self.bed.sh("test -e /run/pve-usb-hotplug/listening")["rc"], lambda rc: rc == 0, 20)
        self.assertEqual(r, 0)

    def test_held_ports_keep_the_host_drivers_off(self):
        # the listener holds the running VM's ports: usbhid never sees
        # a keyboard plugged there, a denied port is not held, a hub is
        # handed to the host's hub driver, the VM's stop hands everything
        # back
        self.bed.sh("dmesg -C")
        self.vm(100, "1-1\ndeny 1-1.2\n")
        cursor = self.post_start_held(100, "1-1")
        self.assertIn("Port 1-1 and below: held for VM 100 by the listener; the host's drivers stay off what is plugged there",
                      self.tool("status")["out"])
        self.assertEqual(json.loads(self.tool("status", "--json")["out"])["held_ports"], [{"port": "1-1", "guest": "VM 100"}])
        self.plug("kbd", "usb-kbd", "1.1", serial="KBD1")
        self.wait_open(100, ["1.1"])
        self.assertFalse(self.bound_by_host("1.1"), self.bed.sh("dmesg")["out"])
        self.plug("mouse", "usb-mouse", "1.2")
        self.assertEqual(self.bed.wait_for(lambda: self.driver("1-1.2:1.0"), bool, 20), "usbhid",
                         self.bed.sh("journalctl -b -u pve-usb-hotplug.service; ls /sys/bus/usb/devices; dmesg | tail")["out"])
        # a hub plugged into a held port works, and its ports are held
        self.plug("hub2", "usb-hub", "1.3")
        self.present("1-1.3")
        self.assertEqual(self.bed.wait_for(lambda: self.driver("1-1.3:1.0"), bool, 20), "hub")
        self.plug("tab", "usb-tablet", "1.3.1")
        self.wait_open(100, ["1.1", "1.3.1"])
        self.assertFalse(self.bound_by_host("1.3.1"), self.bed.sh("dmesg")["out"])
        self.assertEqual(self.driver("1-1.2:1.0"), "usbhid")
        # a device 'sync' takes from the VM (its rules deny its serial
        # now) gets the host's drivers, though its port stays held
        self.bed.sh("printf '1-1\\ndeny 1-1.2\\ndeny serial KBD1\\n' >/etc/pve/qemu-server/100.usb.conf")
        self.assertEqual(self.tool("sync", "100")["rc"], 0)
        self.wait_open(100, ["1.3.1"])
        self.assertEqual(self.bed.wait_for(lambda: self.driver("1-1.1:1.0"), bool, 20), "usbhid")
        # the VM stops: what it had gets the host's drivers
        self.bed.stop_vm(100)
        self.vms.remove(100)
        self.assertEqual(self.tool("100", "post-stop")["rc"], 0)
        self.assertEqual(self.bed.wait_for(lambda: (self.driver("1-1.1:1.0"), self.driver("1-1.3.1:1.0")),
                                           lambda d: d == ("usbhid", "usbhid"), 20), ("usbhid", "usbhid"))
        log = self.listener_log(cursor)
        # a port a deny keeps out is not held: the mouse got usbhid at once
        self.assertNotIn("1-1.2: not passed to a guest", log)
        self.assertIn("1-1.3: not passed to a guest: handed to the host's drivers", log)
        self.assertIn("port 1-1 (VM 100) is held no more", log)
        self.assertEqual(json.loads(self.tool("status", "--json")["out"])["held_ports"], [])
        self.assertIn("1-1.1: no guest has it: handed to the host's drivers", log)
        self.assertIn("1-1.3.1: its port is held no more: handed to the host's drivers", log)

    def test_rules_deny_id_serial_and_two_vms(self):
        # two boards of one model told apart by serial; a keyboard denied
        self.vm(100, "serial BOARD-A\n1-1\ndeny 1-1.6\n")
        self.vm(101, "serial BOARD-B\n")
        self.tool("100", "post-start")
        self.tool("101", "post-start")
        self.plug("a", "usb-kbd", "1.1", serial="BOARD-A")
        self.plug("b", "usb-kbd", "1.2", serial="BOARD-B")
        self.plug("c", "usb-kbd", "1.6")
        self.wait_open(100, ["1.1"])
        self.wait_open(101, ["1.2"])
        r = self.tool("status", "--json")
        st = {d["port"]: d for d in json.loads(r["out"])["devices"]}
        self.assertEqual((st["1-1.1"]["state"], st["1-1.2"]["state"], st["1-1.6"]["state"]),
                         ("attached", "attached", "denied"))

    def test_sync_repairs_and_identify_names_a_real_device(self):
        self.vm(100, "1-1\n")
        self.tool("100", "post-start")
        self.plug("kbd", "usb-kbd", "1.1")
        self.wait_open(100, ["1.1"])
        self.bed.sh("python3 -c \"import sys; sys.path.insert(0,'/bed/lib'); from pvesim import Qmp; "
                    "q=Qmp('/var/run/qemu-server/100.qmp'); q.cmd('device_del', id='usbhost1-1.1')\"")
        self.wait_gone(100)
        r = self.tool("sync", "100")
        self.assertIn("VM 100: added 1-1.1", r["out"])
        self.wait_open(100, ["1.1"])
        self.bed.run(["sh", "-c", "pve-usb-hotplug identify --timeout 60 >/tmp/identify.out 2>&1"],
                     background=True)
        time.sleep(1.5)
        self.plug("mouse", "usb-mouse", "1.7", serial="M7")
        out = self.bed.wait_for(lambda: self.bed.sh("cat /tmp/identify.out")["out"], lambda o: "serial" in o, 30)
        self.assertIn("1-1.7", out)
        self.assertIn("serial M7", out)

    def test_without_the_listener_and_the_rule_nothing_follows(self):
        # what the other scenarios rely on: with the listener stopped and
        # the rule gone, a plug reaches no VM (the suite would catch either
        # broken); the rule alone, or the listener alone, is enough
        rule = "/usr/lib/udev/rules.d/60-pve-usb-hotplug.rules"
        # the listener killed (not restarted, for once): its marker goes all
        # the same, or the rule's unit would stand aside for nothing
        norestart = "/run/systemd/system/pve-usb-hotplug.service.d"
        self.bed.sh("mkdir -p %s && printf '[Service]\\nRestart=no\\n' >%s/test.conf && systemctl daemon-reload && "
                    "systemctl kill -s KILL pve-usb-hotplug.service" % (norestart, norestart))
        self.bed.wait_for(lambda: self.bed.sh("systemctl is-active pve-usb-hotplug.service")["out"].strip(),
                          lambda st: st in ("inactive", "failed"), 20)
        self.bed.sh("rm -r %s && systemctl daemon-reload && mv %s /tmp/rule.off && udevadm control --reload"
                    % (norestart, rule))
        try:
            self.assertEqual(self.bed.sh("test -e /run/pve-usb-hotplug/listening")["rc"], 1)
            self.vm(100, "1-1\n")
            self.tool("100", "post-start")
            self.plug("kbd", "usb-kbd", "1.1")
            self.present("1-1.1")
            time.sleep(3)
            self.assertEqual(self.bed.held(100), {})
            # the rule alone: its pve-usb-hotplug@ unit follows
            self.bed.sh("mv /tmp/rule.off %s && udevadm control --reload" % rule)
            self.plug("kbd2", "usb-kbd", "1.2")
            self.wait_open(100, ["1.2"])
            self.assertIn("pve-usb-hotplug@1-1.2.service",
                          self.bed.sh("systemctl list-units --all 'pve-usb-hotplug@*' --no-legend")["out"]
                          + self.bed.sh("journalctl -u 'pve-usb-hotplug@1-1.2.service' --no-pager")["out"])
            # the listener alone
            self.bed.sh("mv %s /tmp/rule.off && udevadm control --reload && systemctl start pve-usb-hotplug.service" % rule)
            self.bed.wait_for(lambda: self.bed.sh("test -e /run/pve-usb-hotplug/listening")["rc"], lambda rc: rc == 0, 20)
            self.plug("kbd3", "usb-kbd", "1.3")
            self.wait_open(100, ["1.2", "1.3"])
        finally:
            self.bed.sh("test -e /tmp/rule.off && mv /tmp/rule.off %s; udevadm control --reload; "
                        "systemctl start pve-usb-hotplug.service" % rule)
            self.bed.wait_for(lambda: self.bed.sh("test -e /run/pve-usb-hotplug/listening")["rc"], lambda rc: rc == 0, 20)

    def test_a_detach_that_cannot_reach_qemu_is_tried_five_times_by_systemd(self):
        # the retry chain on the real systemd: each try is scheduled from
        # inside the running one, so each needs a unit name of its own
        self.bed.sh("mkdir -p /etc/pve-usb-hotplug.conf.d && printf '[retry]\\ndelay_ms = 1000\\n[lock]\\ntimeout_ms = 300\\n'"
                    " >/etc/pve-usb-hotplug.conf.d/retry.conf")
        self.addCleanup(lambda: self.bed.sh("rm -f /etc/pve-usb-hotplug.conf.d/retry.conf"))
        self.vm(100, "1-1\n")
        self.tool("100", "post-start")
        self.plug("kbd", "usb-kbd", "1.1")
        self.wait_open(100, ["1.1"])
        cursor = self.bed.sh("journalctl -n 0 --show-cursor")["out"].split("-- cursor: ", 1)[1].strip()
        # another run holds VM 100's lock longer than the five tries take
        # (-o: flock itself holds it, not the sleep; killing flock frees it)
        self.bed.sh("flock -o /run/pve-usb-hotplug/100.lock sleep 30 </dev/null >/dev/null 2>&1 &")
        self.addCleanup(lambda: self.bed.sh("pkill -f 'flock -o /run/pve-usb-hotplug/100.lock'"))
        self.unplug("kbd")

        def log():
            return self.bed.sh("journalctl -t pve-usb-hotplug --no-pager -o cat --after-cursor '%s'" % cursor)["out"]
        out = self.bed.wait_for(log, lambda o: "still failing after 5 tries" in o, 60)
        self.assertIn("VM 100: still failing after 5 tries; run 'pve-usb-hotplug sync 100' once it answers", out)
        for n in range(1, 6):
            self.assertIn("VM 100: will try again in 1000 ms ('pve-usb-hotplug sync 100', unit pve-usb-hotplug-retry-100-%d)" % n, out)
        self.assertEqual(out.count("will try again"), 5, out)
        # once the lock is free, sync does what the tries could not
        self.bed.sh("pkill -f 'flock -o /run/pve-usb-hotplug/100.lock'")
        self.assertEqual(self.tool("sync", "100")["rc"], 0)
        self.wait_gone(100)

    def test_a_storm_of_plugs_across_hub_ports(self):
        self.vm(100, "1-1\n")
        self.tool("100", "post-start")
        ports = ["1.%d" % i for i in range(1, 7)]
        for i, p in enumerate(ports):
            self.plug("s%d" % i, "usb-kbd" if i % 2 else "usb-mouse", p)
        self.wait_open(100, ports, timeout=40)
        for i in range(0, 6, 2):
            self.unplug("s%d" % i)
        self.wait_gone(100, ports[1::2], timeout=40)

    # Guests that Proxmox does not run: a QEMU started by hand, a libvirt
    # domain of a libvirtd started here

    def declare(self, text, name, rules):
        self.bed.sh("mkdir -p /etc/pve-usb-hotplug.conf.d && printf '%%s' '%s' >/etc/pve-usb-hotplug.conf.d/guests.conf && "
                    "printf '%%s' '%s' >/etc/pve-usb-hotplug.conf.d/%s.usb.conf" % (text, rules, name))
        self.addCleanup(lambda: self.bed.sh("rm -rf /etc/pve-usb-hotplug.conf.d"))

    def test_a_qemu_started_by_hand(self):
        sock = "/run/desk.qmp"
        pid = self.bed.run(("qemu-system-x86_64 -machine pc -accel tcg -m 64 -nodefaults -display none "
                            "-device qemu-xhci,id=xhci,p2=8,p3=8 -qmp unix:%s,server=on,wait=off" % sock).split(),
                           background=True, log="/tmp/desk.log")["pid"]
        self.addCleanup(lambda: self.bed.sh("kill %d; rm -f %s" % (pid, sock)))
        self.assertEqual(self.bed.wait_for(lambda: self.bed.sh("test -S %s" % sock)["rc"], lambda rc: rc == 0, 30), 0)
        self.declare("[qemu desk]\nqmp = %s\n" % sock, "desk", "1-1\n")
        self.plug("kbd", "usb-kbd", "1.2")
        self.wait_open(sock, ["1.2"])
        self.assertEqual(self.bed.held(sock)["usbhost1-1.2"]["bus"], "xhci.0")
        self.unplug("kbd")
        self.wait_gone(sock)

    def test_a_libvirt_domain(self):
        root = "/tmp/lv"
        uri = "qemu:///system?socket=%s/run/libvirt-sock" % root
        self.bed.run(["unshare", "-m", "--propagation", "private", "sh", "-c", libvirtsim.SCRIPT, "sh", root],
                     background=True, log="/tmp/libvirtd.log")

        def virsh(*args):
            return self.bed.run(["virsh", "-c", uri] + list(args), timeout=120)
        up = self.bed.wait_for(lambda: virsh("version")["rc"], lambda rc: rc == 0, 120)
        self.assertEqual(up, 0, self.bed.sh("tail -20 /tmp/libvirtd.log")["out"])
        self.addCleanup(lambda: self.bed.sh("virsh -c '%s' destroy lab; kill $(cat %s/run/test-libvirtd.pid)"
                                            % (uri, root)))
        # the domain's own XML passes a smartcard reader (QEMU's usb-ccid,
        # 08e6:4433): libvirt's, never the tool's, though the rules claim it
        self.plug("card", "usb-ccid", "1.7")
        self.present("1-1.7")
        own = ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x08e6'/>"
               "<product id='0x4433'/></source></hostdev>")
        with open(os.path.join(self.bed.share, "lab.xml"), "w") as f:
            f.write(libvirtsim.DOMAIN.format(name="lab", qemu="/usr/bin/qemu-system-x86_64",
                                             devices=libvirtsim.XHCI + own))
        for args in (("define", "/bed/lab.xml"), ("start", "lab")):
            r = virsh(*args)
            self.assertEqual(r["rc"], 0, r)

        def attached(alias):
            r = virsh("qemu-monitor-command", "lab", json.dumps(
                {"execute": "qom-get", "arguments": {"path": "/machine/peripheral/" + alias,
                                                     "property": "attached"}}))
            return r["rc"] == 0 and json.loads(r["out"]).get("return") is True
        # plugged before the domain is declared: sync (as libvirt's
        # "started" hook would run it) attaches it
        self.plug("kbd", "usb-kbd", "1.1")
        self.present("1-1.1")
        self.declare("[libvirt lab]\nuri = %s\n" % uri, "lab", "1-1\n")
        r = self.tool("sync", "lab")
        self.assertIn("libvirt domain lab: added 1-1.1 (0627:0001", r["out"], r)
        self.assertNotIn("1-1.7", r["out"] + r["err"])
        r = self.tool("status", "lab", "--json")
        card = {d["port"]: d for d in json.loads(r["out"])["devices"]}["1-1.7"]
        self.assertEqual((card["state"], card["held_by"]), ("libvirt", []))
        self.assertTrue(self.bed.wait_for(lambda: attached("ua-usbhost1-1_1"), bool, 20))
        # plugged now: udev
        self.plug("mouse", "usb-mouse", "1.2")
        self.assertTrue(self.bed.wait_for(lambda: attached("ua-usbhost1-1_2"), bool, 20))
        live = virsh("dumpxml", "lab")["out"]
        self.assertIn("<alias name='ua-usbhost1-1_2'/>", live)
        r = self.tool("status", "lab", "--json")
        st = {d["port"]: d for d in json.loads(r["out"])["devices"]}
        self.assertEqual((st["1-1.1"]["state"], st["1-1.2"]["held_by"]), ("attached", ["lab"]))
        # pulled out: gone from the domain
        self.unplug("mouse")
        gone = self.bed.wait_for(lambda: virsh("dumpxml", "lab")["out"], lambda x: "ua-usbhost1-1_2" not in x, 20)
        self.assertNotIn("ua-usbhost1-1_2", gone)
        self.assertIn("ua-usbhost1-1_1", gone)
        # a storm: four plugged at once, each on a port of its own
        for i in range(3, 7):
            self.plug("s%d" % i, "usb-kbd" if i % 2 else "usb-mouse", "1.%d" % i)
        for i in range(3, 7):
            self.assertTrue(self.bed.wait_for(lambda: attached("ua-usbhost1-1_%d" % i), bool, 40), i)
        live = virsh("dumpxml", "lab")["out"]
        ports = [l for l in live.splitlines() if "<address type='usb'" in l]
        self.assertEqual(len(ports), 6, live)          # and the domain's own reader
        self.assertEqual(len(set(ports)), 6, live)
        self.assertNotIn("ua-usbhost1-1_7", live)


def main():
    global DEB
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", required=True)
    ap.add_argument("-k", dest="pattern", action="append", help="only tests with this in their name (repeatable)")
    a = ap.parse_args()
    DEB = os.path.abspath(a.deb)
    loader = unittest.TestLoader()
    if a.pattern:
        loader.testNamePatterns = ["*%s*" % p for p in a.pattern]
    suite = loader.loadTestsFromTestCase(RealHost)
    r = unittest.TextTestRunner(verbosity=2).run(suite)
    if BED:
        BED.stop()
    failed = len(r.failures) + len(r.errors)
    print("realhost: %d passed, %d failed" % (r.testsRun - failed, failed))
    sys.exit(1 if failed else 0)


main()
